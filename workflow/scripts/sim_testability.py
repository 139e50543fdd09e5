"""Rule sim_testability: one predictor rates from 0 to 10 how far each of a reference model's explanations decides
its counterfactual (the optional testability rubric)."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module.
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.simulatability.steps import run_stage

    run_stage("sim_testability", snakemake.wildcards, snakemake.input, snakemake.params, snakemake.output[0])
