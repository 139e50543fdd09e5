"""Rule sim_moral_machines: generated Moral Machines scenarios and their counterfactual pairs."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.steps import build_moral_machines  # noqa: E402

build_moral_machines(snakemake.params.settings, snakemake.output.scenarios, snakemake.output.pairs)
