"""Rule sim_metrics: NSG and every other metric of one reference model, with cluster-bootstrap CIs."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.steps import score_reference  # noqa: E402

score_reference(
    reference_name=snakemake.wildcards.reference,
    eval_set_path=snakemake.input.eval_set,
    reference_path=snakemake.input.reference,
    predictions_paths=list(snakemake.input.predictions),
    families=snakemake.params.families,
    bootstrap=snakemake.params.bootstrap,
    metrics_out=snakemake.output.metrics,
    observations_out=snakemake.output.observations,
)
