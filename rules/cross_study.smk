# The cross-study view: for every model that is both an sce model and a simulatability reference, its sce validity
# and minimality beside its NSG, with a rank correlation across models (selfexplain.cross_study). Runs only when
# both studies run and share at least one model.
from selfexplain.report import CROSS_STUDY_CATEGORY as CROSS_CATEGORY

# The sce follow-up prompts compared (those of the two that the config runs).
CROSS_PROMPTS = [p for p in ("standard", "minimal") if p in SCE["prompts"]]


# Models that are both sce models and simulatability references (sce order), the sce scores tables the view reads
# (model, grid, prompt), and its targets (none unless both studies run and share a model).
CROSS_MODELS = (
    [m for m in study_models("sce") if m in set(sim_references())]
    if {"sce", "simulatability"} <= set(STUDIES)
    else []
)
CROSS_RUNS = [
    (m, g, p) for m in CROSS_MODELS for g in SCE["datasets"] for p in CROSS_PROMPTS
]
CROSS_TARGETS = (
    [
        result_path("cross_study/summary.csv"),
        result_path("cross_study/correlations.csv"),
        result_path("cross_study/validity_vs_nsg.png"),
    ]
    if CROSS_MODELS and CROSS_PROMPTS
    else []
)


localrules:
    cross_study_summary,
    cross_study_plot,


rule cross_study_summary:
    input:
        sce=result_path("sce/summary.csv"),
        sim=result_path("simulatability/summary.csv"),
        scores=[
            result_path(f"sce/{m}/{g}/{p}/scores.parquet") for m, g, p in CROSS_RUNS
        ],
    output:
        table=report(
            result_path("cross_study/summary.csv"),
            caption="../workflow/report/cross_study.rst",
            category=CROSS_CATEGORY,
            labels={"content": "summary table (CSV download)"},
        ),
        correlations=report(
            result_path("cross_study/correlations.csv"),
            caption="../workflow/report/cross_study.rst",
            category=CROSS_CATEGORY,
            labels={"content": "rank correlations (CSV download)"},
        ),
    log:
        "logs/cross_study/summary.log",
    conda:
        ENV
    params:
        runs=CROSS_RUNS,
        models=CROSS_MODELS,
        prompts=CROSS_PROMPTS,
        predictors=config["cross_study"]["predictors"],
        resamples=config["cross_study"]["bootstrap"]["resamples"],
        seed=config["cross_study"]["bootstrap"]["seed"],
    script:
        "../workflow/scripts/cross_study_summary.py"


rule cross_study_plot:
    input:
        table=rules.cross_study_summary.output.table,
        correlations=rules.cross_study_summary.output.correlations,
    output:
        report(
            result_path("cross_study/validity_vs_nsg.png"),
            caption="../workflow/report/cross_study.rst",
            category=CROSS_CATEGORY,
            labels={"content": "validity and minimality vs NSG (figure)"},
        ),
    log:
        "logs/cross_study/plot.log",
    conda:
        ENV
    script:
        "../workflow/scripts/cross_study_plot.py"
