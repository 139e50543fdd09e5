"""Rule sim_transcripts: sampled chats of one reference model and its predictors, as a table and an HTML page."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.simulatability.transcripts import build  # noqa: E402
from selfexplain.transcripts import Sampling  # noqa: E402

build(
    reference=snakemake.wildcards.reference,
    reference_entry_json=snakemake.params.model,
    predictor_entries_json=snakemake.params.predictors,
    eval_set_path=snakemake.input.eval_set,
    reference_path=snakemake.input.reference,
    predictions_paths=list(snakemake.input.predictions),
    observations_path=snakemake.input.observations,
    prompt_dir=snakemake.params.prompt_dir,
    table_out=snakemake.output.table,
    page_out=snakemake.output.page,
    sampling=Sampling.of(snakemake.params.settings),
)
