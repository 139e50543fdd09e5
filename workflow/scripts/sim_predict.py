"""Rule sim_predict: one predictor guesses one reference model's counterfactual answers, with and without its
explanation."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module.
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.simulatability.steps import run_predict

    run_predict(
        reference=snakemake.wildcards.reference,
        predictor=snakemake.wildcards.predictor,
        entry_json=snakemake.params.model,
        eval_set_path=snakemake.input.eval_set,
        reference_path=snakemake.input.reference,
        prompt_dir=snakemake.params.prompt_dir,
        journal=snakemake.params.journal,
        out=snakemake.output[0],
        conditions=snakemake.params.conditions,
        repeats=snakemake.params.repeats,
        progress=snakemake.params.progress,
    )
