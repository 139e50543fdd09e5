"""Rule sce_summary: one table over every model, dataset and prompt."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.sce.steps import summarise_runs  # noqa: E402

summarise_runs(list(snakemake.input), [tuple(r) for r in snakemake.params.runs], snakemake.output[0])
