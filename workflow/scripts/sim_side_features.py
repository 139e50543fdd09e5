"""Rule sim_side_features: egregious rate and answer-change rate per changed feature, with relative risks."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.side import run_features  # noqa: E402

run_features(
    observation_paths=list(snakemake.input.observations),
    eval_set_path=snakemake.input.eval_set,
    bootstrap=snakemake.params.bootstrap,
    min_changed=snakemake.params.min_changed,
    table_out=snakemake.output.table,
    figures_out={"egregious": snakemake.output.egregious, "answer_change": snakemake.output.answer_change},
)
