"""Rule sce_plot_boundary: one model's decision boundary with its counterfactuals as arrows."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.io import read_table  # noqa: E402
from selfexplain.sce.plots import plot_decision_boundary  # noqa: E402
from selfexplain.tabular.features import load_dataset_spec  # noqa: E402

w = snakemake.wildcards
plot_decision_boundary(
    load_dataset_spec(w.grid),
    read_table(snakemake.input.grid),
    read_table(snakemake.input.scores),
    snakemake.output[0],
    title=f"{w.model} · {w.grid} · {w.prompt}",
    max_arrows=snakemake.params.max_arrows,
)
