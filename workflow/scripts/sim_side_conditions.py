"""Rule sim_side_conditions: the explanation, the reference's thinking (cot) and no reference case, side by side."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.side import run_conditions  # noqa: E402

run_conditions(snakemake.input[0], snakemake.output.table, snakemake.output.figure)
