"""Rule sim_testability: one predictor rates from 0 to 10 how far each of a reference model's explanations decides
its counterfactual (the optional testability rubric)."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module.
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.simulatability.testability import run_testability

    run_testability(
        reference=snakemake.wildcards.reference,
        predictor=snakemake.wildcards.predictor,
        entry_json=snakemake.params.model,
        eval_set_path=snakemake.input.eval_set,
        reference_path=snakemake.input.reference,
        prompt_dir=snakemake.params.prompt_dir,
        journal=snakemake.params.journal,
        out=snakemake.output[0],
        progress=snakemake.params.progress,
    )
