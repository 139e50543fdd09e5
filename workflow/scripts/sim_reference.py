"""Rule sim_reference: the reference model answers every question of the eval set with a self-explanation."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module.
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.simulatability.steps import run_stage

    run_stage("sim_reference", snakemake.wildcards, snakemake.input, snakemake.params, snakemake.output[0])
