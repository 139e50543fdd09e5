"""Rule sim_testability_summary: the testability rating's correlation with WITH-correctness, per reference model,
with cluster-bootstrap CIs (CSV and report page)."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.testability import correlate_files  # noqa: E402

references = list(snakemake.params.references)
correlate_files(
    testability_paths=dict(zip(references, snakemake.input.testability, strict=True)),
    observations_paths=dict(zip(references, snakemake.input.observations, strict=True)),
    bootstrap=snakemake.params.bootstrap,
    out_csv=snakemake.output.csv,
    out_html=snakemake.output.html,
    synthetic=snakemake.params.synthetic,
)
