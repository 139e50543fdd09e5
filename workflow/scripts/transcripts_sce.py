"""Rule sce_transcripts: sampled chats of one sce run, as a table and an HTML page."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.sce.transcripts import build  # noqa: E402
from selfexplain.transcripts import Sampling  # noqa: E402

build(
    model=snakemake.wildcards.model,
    entry_json=snakemake.params.model,
    grid=snakemake.wildcards.grid,
    prompt=snakemake.wildcards.prompt,
    predictions_path=snakemake.input.predictions,
    counterfactuals_path=snakemake.input.counterfactuals,
    scores_path=snakemake.input.scores,
    first_template_path=snakemake.input.first_template,
    template_path=snakemake.input.template,
    table_out=snakemake.output.table,
    page_out=snakemake.output.page,
    sampling=Sampling.of(snakemake.params.settings),
)
