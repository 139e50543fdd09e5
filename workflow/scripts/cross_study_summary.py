"""Rule cross_study_summary: sce validity and minimality beside NSG for the models of both studies."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.cross_study import summarise  # noqa: E402

summarise(
    snakemake.input.sce,
    snakemake.input.sim,
    {tuple(run): path for run, path in zip(snakemake.params.runs, snakemake.input.scores, strict=True)},
    snakemake.params.models,
    snakemake.params.prompts,
    snakemake.output.table,
    snakemake.output.correlations,
    predictors=snakemake.params.predictors,
    resamples=snakemake.params.resamples,
    seed=snakemake.params.seed,
)
