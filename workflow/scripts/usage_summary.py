"""Rule usage_summary: tokens and cost per model and rule."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.llm.usage import write_usage  # noqa: E402

write_usage([tuple(i) for i in snakemake.params.tables], snakemake.params.entries, snakemake.output[0])
