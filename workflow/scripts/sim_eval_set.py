"""Rule sim_eval_set: the evaluation set drawn from every dataset's pairs."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.steps import build_eval_set  # noqa: E402

build_eval_set(list(snakemake.input), snakemake.output[0], snakemake.params.settings)
