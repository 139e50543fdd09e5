"""Rule sim_summary: one table over every reference model (pooled, per dataset, per predictor)."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.steps import summarise_references  # noqa: E402

summarise_references(list(snakemake.input), snakemake.output[0])
