# Summary tables, figures and the front page, registered for `snakemake --report`. The report opens on the front
# page (the workflow description includes report/front_page_fragment.html of the results folder); its categories
# sort by name.
from selfexplain.report import (
    CROSS_STUDY_CATEGORY,
    OVERVIEW,
    REPORT_CATEGORIES,
    TRANSCRIPTS_CATEGORY,
    model_facts,
)

SCE_CATEGORY = REPORT_CATEGORIES["sce"]
SIM_CATEGORY = REPORT_CATEGORIES["simulatability"]


localrules:
    usage_summary,
    sce_summary,
    sce_plot,
    sce_plot_boundary,
    sim_summary,
    sim_plot,
    report_front_page,
    report_sce_table,
    report_sim_table,
    report_usage_table,


# Catalog facts of every model of the run (roles: sce, reference, predictor), for the front page and the badges.
REPORT_MODELS = model_facts(
    CATALOG,
    sce=study_models("sce"),
    references=sim_references(),
    predictors=sim_predictors(),
)
SYNTHETIC = [m["name"] for m in REPORT_MODELS if m["backend"] == "synthetic"]
# Summaries for the headline numbers; metrics, eval set and inference tables for sizes and provenance (empty lists
# for a study not run).
FRONT_PAGE_INPUTS = {
    "sce_summary": [result_path("sce/summary.csv")] if "sce" in STUDIES else [],
    "sim_summary": (
        [result_path("simulatability/summary.csv")] if sim_references() else []
    ),
    "eval_set": (
        [result_path("simulatability/eval_set.parquet")]
        if "simulatability" in STUDIES
        else []
    ),
    "sce_metrics": sce_metrics_files(),
    "sim_metrics": sim_metrics_files(),
    "tables": [item[0] for item in all_usage_items()],
}


rule report_front_page:
    input:
        **FRONT_PAGE_INPUTS,
    output:
        page=report(
            result_path("report/front_page.html"),
            caption="../workflow/report/front_page.rst",
            category=OVERVIEW,
            labels={"content": "front page"},
        ),
        fragment=result_path("report/front_page_fragment.html"),
    log:
        "logs/report_front_page/front_page.log",
    conda:
        ENV
    params:
        studies=STUDIES,
        models=REPORT_MODELS,
        sce=SCE if "sce" in STUDIES else None,
        simulatability=SIM if "simulatability" in STUDIES else None,
        # categories of rule files included after this one, so looked up when the job is built
        sections=lambda wildcards: [
            c
            for c, targets in (
                (CROSS_STUDY_CATEGORY, CROSS_TARGETS),
                (TRANSCRIPTS_CATEGORY, TRANSCRIPT_TARGETS),
            )
            if targets
        ],
    script:
        "../workflow/scripts/report_front_page.py"


rule report_sce_table:
    input:
        result_path("sce/summary.csv"),
    output:
        report(
            result_path("report/sce_summary.html"),
            caption="../workflow/report/sce_summary_table.rst",
            category=SCE_CATEGORY,
            subcategory="1 Summary",
            labels={"content": "summary table"},
        ),
    log:
        "logs/report_tables/sce_summary.log",
    conda:
        ENV
    params:
        kind="sce_summary",
        synthetic=SYNTHETIC,
    script:
        "../workflow/scripts/report_table.py"


rule report_sim_table:
    input:
        result_path("simulatability/summary.csv"),
    output:
        report(
            result_path("report/sim_summary.html"),
            caption="../workflow/report/sim_summary_table.rst",
            category=SIM_CATEGORY,
            subcategory="1 Summary",
            labels={"content": "summary table"},
        ),
    log:
        "logs/report_tables/sim_summary.log",
    conda:
        ENV
    params:
        kind="sim_summary",
        synthetic=SYNTHETIC,
    script:
        "../workflow/scripts/report_table.py"


rule report_usage_table:
    input:
        result_path("usage.csv"),
    output:
        report(
            result_path("report/usage.html"),
            caption="../workflow/report/usage_table.rst",
            category=OVERVIEW,
            labels={"content": "usage table"},
        ),
    log:
        "logs/report_tables/usage.log",
    conda:
        ENV
    params:
        kind="usage",
        synthetic=SYNTHETIC,
    script:
        "../workflow/scripts/report_table.py"


rule sce_summary:
    input:
        sce_metrics_files(),
    output:
        report(
            result_path("sce/summary.csv"),
            caption="../workflow/report/sce_summary.rst",
            category=SCE_CATEGORY,
            subcategory="1 Summary",
            labels={"content": "summary table (CSV download)"},
        ),
    log:
        "logs/sce_summary/summary.log",
    conda:
        ENV
    params:
        runs=sce_runs(),
    script:
        "../workflow/scripts/sce_summary.py"


rule sce_plot:
    input:
        rules.sce_summary.output[0],
    output:
        report(
            result_path("sce/figures/validity_vs_minimality.png"),
            caption="../workflow/report/sce_scatter.rst",
            category=SCE_CATEGORY,
            subcategory="1 Summary",
            labels={"content": "validity vs minimality (figure)"},
        ),
    log:
        "logs/sce_plot/validity_vs_minimality.log",
    conda:
        ENV
    script:
        "../workflow/scripts/sce_plot.py"


rule sce_plot_boundary:
    input:
        scores=rules.sce_score.output.scores,
        grid=rules.sce_grid.output[0],
    output:
        report(
            result_path("sce/figures/boundary/{model}__{grid}__{prompt}.png"),
            caption="../workflow/report/sce_boundary.rst",
            category=SCE_CATEGORY,
            subcategory="2 Decision boundaries",
            labels={"model": "{model}", "dataset": "{grid}", "prompt": "{prompt}"},
        ),
    log:
        "logs/sce_plot_boundary/{model}__{grid}__{prompt}.log",
    conda:
        ENV
    params:
        max_arrows=SCE["figures"]["max_arrows"],
    script:
        "../workflow/scripts/sce_plot_boundary.py"


rule usage_summary:
    input:
        [item[0] for item in all_usage_items()],
    output:
        report(
            result_path("usage.csv"),
            caption="../workflow/report/usage.rst",
            category=OVERVIEW,
            labels={"content": "usage table (CSV download)"},
        ),
    log:
        "logs/usage_summary/usage.log",
    conda:
        ENV
    params:
        tables=all_usage_items(),
        entries=catalog_entries(),
    script:
        "../workflow/scripts/usage_summary.py"


rule sim_summary:
    input:
        sim_metrics_files(),
    output:
        report(
            result_path("simulatability/summary.csv"),
            caption="../workflow/report/sim_summary.rst",
            category=SIM_CATEGORY,
            subcategory="1 Summary",
            labels={"content": "summary table (CSV download)"},
        ),
    log:
        "logs/sim_summary/summary.log",
    conda:
        ENV
    script:
        "../workflow/scripts/sim_summary.py"


rule sim_plot:
    input:
        rules.sim_summary.output[0],
    output:
        report(
            result_path("simulatability/figures/{figure}.png"),
            caption="../workflow/report/sim_figures.rst",
            category=SIM_CATEGORY,
            subcategory="2 Figures",
            labels=lambda wildcards: {"figure": SIM_FIGURES[wildcards.figure]},
        ),
    log:
        "logs/sim_plot/{figure}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/sim_plot.py"
