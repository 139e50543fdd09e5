"""Rule sce_plot: validity against mean RCF_A, as in the paper's scatter."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

import pandas as pd  # noqa: E402

from selfexplain.sce.plots import plot_validity_vs_minimality  # noqa: E402

plot_validity_vs_minimality(pd.read_csv(snakemake.input[0]), snakemake.output[0])
