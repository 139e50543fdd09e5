"""Rule sim_side_mcnemar: WITH-explanation correctness of two reference models, paired one to one, McNemar's test."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.side import run_mcnemar  # noqa: E402

run_mcnemar(
    observation_paths=list(snakemake.input),
    comparisons=snakemake.params.comparisons,
    bootstrap=snakemake.params.bootstrap,
    exact_below=snakemake.params.exact_below,
    table_out=snakemake.output.table,
    figure_out=snakemake.output.figure,
)
