"""Rule sim_reference: the reference model answers every question of the eval set with a self-explanation."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module.
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.simulatability.steps import run_reference

    run_reference(
        model=snakemake.wildcards.reference,
        entry_json=snakemake.params.model,
        eval_set_path=snakemake.input.eval_set,
        prompt_dir=snakemake.params.prompt_dir,
        journal=snakemake.params.journal,
        out=snakemake.output[0],
        progress=snakemake.params.progress,
    )
