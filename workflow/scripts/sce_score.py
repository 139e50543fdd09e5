"""Rule sce_score: validity and minimality of one run's counterfactuals."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.sce.steps import score_file  # noqa: E402

score_file(
    table_path=snakemake.input.counterfactuals,
    dataset=snakemake.wildcards.grid,
    scores_out=snakemake.output.scores,
    metrics_out=snakemake.output.metrics,
    distance=snakemake.params.distance,
    distance_convention=snakemake.params.distance_convention,
    resamples=snakemake.params.bootstrap["resamples"],
    seed=snakemake.params.bootstrap["seed"],
    grid_path=snakemake.input.grid,
    requery_path=snakemake.input.requery or None,
)
