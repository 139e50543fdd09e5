"""Rule sce_grid: the full input grid of one sce dataset."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.sce.steps import make_grid  # noqa: E402

make_grid(snakemake.wildcards.grid, snakemake.output[0])
