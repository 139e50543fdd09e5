"""Rule sim_table: the raw table cleaned and binned as the original, each row with its label and text."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.steps import build_table  # noqa: E402

build_table(snakemake.wildcards.dataset, snakemake.input[0], snakemake.output[0])
