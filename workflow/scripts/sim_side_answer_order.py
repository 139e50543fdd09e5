"""Rule sim_side_answer_order: NSG with the reference's answer stated first vs last."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.side import run_answer_order  # noqa: E402

run_answer_order(list(snakemake.input), snakemake.params.bootstrap, snakemake.output.table, snakemake.output.figure)
