"""Rule cross_study_plot: sce validity and minimality against NSG, one point per model of both studies."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

import pandas as pd  # noqa: E402

from selfexplain.cross_study import plot_validity_vs_nsg  # noqa: E402

plot_validity_vs_nsg(pd.read_csv(snakemake.input.table), pd.read_csv(snakemake.input.correlations), snakemake.output[0])
