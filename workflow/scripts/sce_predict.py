"""Rule sce_predict: the model labels every grid point, one chat each."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.sce.steps import run_predict  # noqa: E402

run_predict(
    model=snakemake.wildcards.model,
    entry_json=snakemake.params.model,
    dataset=snakemake.wildcards.dataset,
    grid_path=snakemake.input.grid,
    template_path=snakemake.input.template,
    journal=snakemake.params.journal,
    out=snakemake.output[0],
    progress=snakemake.params.progress,
)
