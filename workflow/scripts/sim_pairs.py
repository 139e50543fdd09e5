"""Rule sim_pairs: Hamming-ball counterfactual pairs of one tabular dataset, in both answer orders."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.steps import build_pairs  # noqa: E402

build_pairs(snakemake.wildcards.dataset, snakemake.input[0], snakemake.output[0], snakemake.params.hamming)
