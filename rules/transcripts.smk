# Transcripts: per run, sampled chats in full (every failure, egregious case and invalid counterfactual up to a cap,
# plus a seeded sample) as results/transcripts/{study}/{run}.parquet (one schema for every run: see
# selfexplain.transcripts) and a self-contained page in results/report/transcripts/, registered for `--report`.
TRANSCRIPTS = config["transcripts"]
from selfexplain.report import TRANSCRIPTS_CATEGORY


localrules:
    sce_transcripts,
    sim_transcripts,


# Tables and pages of every run's transcripts (none when the config turns them off); all_targets() adds them.
TRANSCRIPT_RUNS = [f"sce/{m}__{d}__{p}" for m, d, p in sce_runs()] + [
    f"simulatability/{r}" for r in sim_references()
]
TRANSCRIPT_TARGETS = [
    result_path(f"{folder}/{run}.{ext}")
    for run in (TRANSCRIPT_RUNS if TRANSCRIPTS["enabled"] else [])
    for folder, ext in (("transcripts", "parquet"), ("report/transcripts", "html"))
]
# Catalog entries of the predictors as JSON, to rebuild their prompts and check them against the journal keys.
SIM_PREDICTOR_ENTRIES = {
    p: json.dumps(CATALOG[p].raw, sort_keys=True) for p in sim_predictors()
}


rule sce_transcripts:
    input:
        predictions=rules.sce_predict.output[0],
        counterfactuals=rules.sce_elicit.output[0],
        scores=rules.sce_score.output.scores,
        first_template=first_pass_template,
        template=followup_template,
    output:
        table=result_path("transcripts/sce/{model}__{grid}__{prompt}.parquet"),
        page=report(
            result_path("report/transcripts/sce/{model}__{grid}__{prompt}.html"),
            caption="../workflow/report/transcripts.rst",
            category=TRANSCRIPTS_CATEGORY,
            subcategory="sce",
            labels={"model": "{model}", "dataset": "{grid}", "prompt": "{prompt}"},
        ),
    log:
        "logs/sce_transcripts/{model}__{grid}__{prompt}.log",
    conda:
        ENV
    params:
        model=model_entry(),
        settings=TRANSCRIPTS,
    script:
        "../workflow/scripts/transcripts_sce.py"


rule sim_transcripts:
    input:
        eval_set=rules.sim_eval_set.output[0],
        reference=rules.sim_reference.output[0],
        predictions=sim_predictions_of,
        observations=rules.sim_metrics.output.observations,
    output:
        table=result_path("transcripts/simulatability/{reference}.parquet"),
        page=report(
            result_path("report/transcripts/simulatability/{reference}.html"),
            caption="../workflow/report/transcripts.rst",
            category=TRANSCRIPTS_CATEGORY,
            subcategory="simulatability",
            labels={"reference": "{reference}"},
        ),
    log:
        "logs/sim_transcripts/{reference}.log",
    conda:
        ENV
    params:
        model=model_entry("reference"),
        predictors=SIM_PREDICTOR_ENTRIES,
        prompt_dir=sim_prompt_dir(),
        settings=TRANSCRIPTS,
    script:
        "../workflow/scripts/transcripts_sim.py"
