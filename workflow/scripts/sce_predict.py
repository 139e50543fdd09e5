"""Rule sce_predict: the model labels every grid point, one chat each."""

# Everything under the guard: vLLM starts its workers with "spawn", which re-imports the main module
# (and would otherwise re-open, and empty, this job's log).
if __name__ == "__main__":
    from selfexplain.runlog import to_log_file

    to_log_file(snakemake.log[0])

    from selfexplain.sce.steps import run_predict

    run_predict(
        model=snakemake.wildcards.model,
        entry_json=snakemake.params.model,
        dataset=snakemake.wildcards.grid,
        grid_path=snakemake.input.grid,
        template_path=snakemake.input.template,
        journal=snakemake.params.journal,
        out=snakemake.output[0],
        progress=snakemake.params.progress,
    )
