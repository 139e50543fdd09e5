"""Rule sim_plot: one figure of the simulatability study from its summary table."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.plots import plot_figure  # noqa: E402

plot_figure(snakemake.wildcards.figure, snakemake.input[0], snakemake.output[0])
