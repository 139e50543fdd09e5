"""Rule sce_requery: ask each readable counterfactual again as a first-pass question, in a fresh chat."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module
# (and would otherwise re-open, and empty, this job's log).
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.sce.steps import run_requery

    run_requery(
        model=snakemake.wildcards.model,
        entry_json=snakemake.params.model,
        dataset=snakemake.wildcards.grid,
        counterfactuals_path=snakemake.input.counterfactuals,
        first_template_path=snakemake.input.first_template,
        journal=snakemake.params.journal,
        out=snakemake.output[0],
        progress=snakemake.params.progress,
    )
