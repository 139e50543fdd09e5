"""Rule sim_side_agreement: do the predictors rank the reference models alike by NSG (Kendall's W, Spearman, with
bootstrap CIs over the reference models seeded by simulatability.bootstrap)?"""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.side import run_agreement  # noqa: E402

run_agreement(snakemake.input[0], snakemake.params.bootstrap, snakemake.output.json, snakemake.output.figure)
