"""Rule sce_grid: the dataset's full input grid."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.sce.steps import make_grid  # noqa: E402

make_grid(snakemake.wildcards.dataset, snakemake.output[0])
