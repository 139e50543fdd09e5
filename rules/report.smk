# Summary tables and figures, registered for `snakemake --report`.


localrules:
    usage_summary,
    sce_summary,
    sce_plot,
    sce_plot_boundary,
    sim_summary,
    sim_plot,


rule sce_summary:
    input:
        sce_metrics_files(),
    output:
        report(
            "results/sce/summary.csv",
            caption="../workflow/report/sce_summary.rst",
            category="sce",
            labels={"table": "summary"},
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
            "results/sce/figures/validity_vs_minimality.png",
            caption="../workflow/report/sce_scatter.rst",
            category="sce",
            labels={"figure": "validity vs minimality"},
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
            "results/sce/figures/boundary/{model}__{grid}__{prompt}.png",
            caption="../workflow/report/sce_boundary.rst",
            category="sce",
            subcategory="decision boundaries",
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
            "results/usage.csv",
            caption="../workflow/report/usage.rst",
            category="usage",
            labels={"table": "usage"},
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
            "results/simulatability/summary.csv",
            caption="../workflow/report/sim_summary.rst",
            category="simulatability",
            labels={"table": "summary"},
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
            "results/simulatability/figures/{figure}.png",
            caption="../workflow/report/sim_figures.rst",
            category="simulatability",
            labels={"figure": "{figure}"},
        ),
    log:
        "logs/sim_plot/{figure}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/sim_plot.py"
