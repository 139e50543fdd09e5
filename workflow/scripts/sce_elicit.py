"""Rule sce_elicit: continue each chat and ask for a counterfactual with the other label."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module
# (and would otherwise re-open, and empty, this job's log).
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.sce.steps import run_elicit

    run_elicit(
        model=snakemake.wildcards.model,
        entry_json=snakemake.params.model,
        dataset=snakemake.wildcards.grid,
        predictions_path=snakemake.input.predictions,
        first_template_path=snakemake.input.first_template,
        template_path=snakemake.input.template,
        journal=snakemake.params.journal,
        out=snakemake.output[0],
        seed=snakemake.params.seed,
        progress=snakemake.params.progress,
    )
