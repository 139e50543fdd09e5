# simulatability study, part 1: raw tables -> binned tables -> Hamming-ball pairs / Moral Machines -> evaluation set.


# Downloads run on the head node (compute nodes often have no internet); the small table steps there too.
localrules:
    fetch_raw,
    sim_table,
    sim_eval_set,


rule fetch_raw:
    input:
        raw_source_files,
    output:
        "resources/simulatability/raw/{dataset}.parquet",
    log:
        "logs/fetch_raw/{dataset}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        source=raw_source,
        lock_file=SIM["raw"]["lock_file"],
        timeout_s=SIM["raw"]["timeout_s"],
        download_dir="resources/simulatability/downloads",
    script:
        "../workflow/scripts/fetch_raw.py"


rule sim_table:
    input:
        rules.fetch_raw.output[0],
    output:
        "resources/simulatability/tables/{dataset}.parquet",
    log:
        "logs/sim_table/{dataset}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/sim_table.py"


rule sim_pairs:
    input:
        rules.sim_table.output[0],
    output:
        result_path("simulatability/pairs/{dataset}.parquet"),
    log:
        "logs/sim_pairs/{dataset}.log",
    benchmark:
        "benchmarks/sim_pairs/{dataset}.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        hamming=SIM["hamming"],
    script:
        "../workflow/scripts/sim_pairs.py"


# The scenarios depend on the config (moral_machines: scenarios, seed), so they live in the config's results folder,
# not in the shared resources/.
rule sim_moral_machines:
    output:
        scenarios=result_path("simulatability/moral_machines/scenarios.parquet"),
        pairs=result_path("simulatability/pairs/moral_machines.parquet"),
    log:
        "logs/sim_moral_machines/moral_machines.log",
    benchmark:
        "benchmarks/sim_moral_machines/moral_machines.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=SIM["moral_machines"],
    script:
        "../workflow/scripts/sim_moral_machines.py"


rule sim_eval_set:
    input:
        sim_pairs_files(),
    output:
        result_path("simulatability/eval_set.parquet"),
    log:
        "logs/sim_eval_set/eval_set.log",
    conda:
        ENV
    params:
        settings=SIM["eval_set"],
    script:
        "../workflow/scripts/sim_eval_set.py"


rule sim_reference:
    input:
        eval_set=rules.sim_eval_set.output[0],
    output:
        result_path("simulatability/{reference}/reference.parquet"),
    log:
        "logs/sim_reference/{reference}.log",
    benchmark:
        "benchmarks/sim_reference/{reference}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=model_gpus("reference"),
        mem_mb=inference_resource("simulatability", "mem_mb", "reference"),
        runtime=inference_resource("simulatability", "runtime", "reference"),
        cpus_per_task=inference_resource("simulatability", "cpus_per_task", "reference"),
        api_openai=api_slot("openai", "reference"),
        api_anthropic=api_slot("anthropic", "reference"),
        api_openrouter=api_slot("openrouter", "reference"),
        api_local=api_slot("local", "reference"),
    params:
        model=model_entry("reference"),
        journal=journal_path("simulatability", "reference", wildcard="reference"),
        prompt_dir=sim_prompt_dir(),
        progress=config["progress"],
    script:
        "../workflow/scripts/sim_reference.py"


rule sim_predict:
    input:
        eval_set=rules.sim_eval_set.output[0],
        reference=rules.sim_reference.output[0],
    output:
        result_path("simulatability/{reference}/{predictor}/predictions.parquet"),
    log:
        "logs/sim_predict/{reference}/{predictor}.log",
    benchmark:
        "benchmarks/sim_predict/{reference}/{predictor}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=model_gpus("predictor"),
        mem_mb=inference_resource("simulatability", "mem_mb", "predictor"),
        runtime=inference_resource("simulatability", "runtime", "predictor"),
        cpus_per_task=inference_resource("simulatability", "cpus_per_task", "predictor"),
        api_openai=api_slot("openai", "predictor"),
        api_anthropic=api_slot("anthropic", "predictor"),
        api_openrouter=api_slot("openrouter", "predictor"),
        api_local=api_slot("local", "predictor"),
    params:
        model=model_entry("predictor"),
        journal=journal_path(
            "simulatability", "predict", "reference", wildcard="predictor"
        ),
        prompt_dir=sim_prompt_dir(),
        conditions=sim_conditions,
        repeats=SIM["repeats"],
        progress=config["progress"],
    script:
        "../workflow/scripts/sim_predict.py"


rule sim_metrics:
    input:
        eval_set=rules.sim_eval_set.output[0],
        reference=rules.sim_reference.output[0],
        predictions=sim_predictions_of,
    output:
        metrics=result_path("simulatability/{reference}/metrics.json"),
        observations=result_path("simulatability/{reference}/observations.parquet"),
    log:
        "logs/sim_metrics/{reference}.log",
    benchmark:
        "benchmarks/sim_metrics/{reference}.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        families=sim_families(),
        bootstrap=SIM["bootstrap"],
    script:
        "../workflow/scripts/sim_metrics.py"


# -- testability rubric (optional): a predictor rates 0-10 how far each explanation decides its counterfactual -----
from selfexplain.report import REPORT_CATEGORIES as _REPORT_CATEGORIES

# The predictor that rates the explanations (null in the config: the first), None when the rubric is off; and
# {reference: its ratings table}, empty when off (for usage_items and study_targets in rules/common.smk).
SIM_TESTABILITY_SCORER = (
    (SIM["testability"]["predictor"] or sim_predictors()[0])
    if SIM["testability"]["enabled"] and sim_predictors()
    else None
)
SIM_TESTABILITY_FILES = {
    r: result_path(f"simulatability/{r}/{SIM_TESTABILITY_SCORER}/testability.parquet")
    for r in (sim_references() if SIM_TESTABILITY_SCORER else [])
}


localrules:
    sim_testability_summary,


rule sim_testability:
    input:
        eval_set=rules.sim_eval_set.output[0],
        reference=rules.sim_reference.output[0],
    output:
        result_path("simulatability/{reference}/{predictor}/testability.parquet"),
    log:
        "logs/sim_testability/{reference}/{predictor}.log",
    benchmark:
        "benchmarks/sim_testability/{reference}/{predictor}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=model_gpus("predictor"),
        mem_mb=inference_resource("simulatability", "mem_mb", "predictor"),
        runtime=inference_resource("simulatability", "runtime", "predictor"),
        cpus_per_task=inference_resource("simulatability", "cpus_per_task", "predictor"),
        api_openai=api_slot("openai", "predictor"),
        api_anthropic=api_slot("anthropic", "predictor"),
        api_openrouter=api_slot("openrouter", "predictor"),
        api_local=api_slot("local", "predictor"),
    params:
        model=model_entry("predictor"),
        journal=journal_path(
            "simulatability", "testability", "reference", wildcard="predictor"
        ),
        prompt_dir=sim_prompt_dir(),
        progress=config["progress"],
    script:
        "../workflow/scripts/sim_testability.py"


rule sim_testability_summary:
    input:
        testability=list(SIM_TESTABILITY_FILES.values()),
        observations=[
            result_path(f"simulatability/{r}/observations.parquet")
            for r in SIM_TESTABILITY_FILES
        ],
    output:
        csv=report(
            result_path("simulatability/testability.csv"),
            category=_REPORT_CATEGORIES["simulatability"],
            subcategory="1 Summary",
            labels={"content": "testability vs WITH-correctness (CSV download)"},
        ),
        html=report(
            result_path("report/sim_testability.html"),
            category=_REPORT_CATEGORIES["simulatability"],
            subcategory="1 Summary",
            labels={"content": "testability vs WITH-correctness"},
        ),
    log:
        "logs/sim_testability_summary/summary.log",
    conda:
        ENV
    params:
        references=list(SIM_TESTABILITY_FILES),
        bootstrap=SIM["bootstrap"],
        synthetic=[
            m
            for m in study_models("simulatability")
            if CATALOG[m].backend == "synthetic"
        ],
    script:
        "../workflow/scripts/sim_testability_summary.py"


# -- side analyses of the faithfulness paper (selfexplain.simulatability.side): predictor agreement, NSG by answer
# order, rates per changed feature, cot / no_reference vs the explanation, McNemar between two reference models ----
from selfexplain.report import REPORT_CATEGORIES as _SIDE_CATEGORIES

SIDE_CATEGORY = _SIDE_CATEGORIES["simulatability"]
SIDE_SUBCATEGORY = "3 Side analyses"
SIDE_CAPTION = "../workflow/report/sim_side.rst"


# simulatability.compare_references (checked against the references in selfexplain.simulatability.config).
SIM_SIDE_COMPARISONS = (
    [list(p) for p in SIM["compare_references"]] if sim_references() else []
)
SIM_SIDE_OBSERVATIONS = [
    result_path(f"simulatability/{r}/observations.parquet") for r in sim_references()
]
SIM_SIDE_MCNEMAR_INPUTS = [
    result_path(f"simulatability/{r}/observations.parquet")
    for r in dict.fromkeys(n for pair in SIM_SIDE_COMPARISONS for n in pair)
]
# The side analyses' tables and figures (none without references), for study_targets in rules/common.smk.
SIM_SIDE_TARGETS = [
    result_path(f"simulatability/side/{t}")
    for t in (
        ["predictor_agreement.json", "figures/predictor_agreement.png"]
        + ["answer_order.csv", "figures/answer_order.png", "features.csv"]
        + ["figures/egregious_by_feature.png", "figures/answer_change_by_feature.png"]
        + (
            ["conditions.csv", "figures/conditions.png"]
            if {"cot", "no_reference"}
            & {c for r in sim_references() for c in conditions_for(SIM, r)}
            else []
        )
        + (["mcnemar.csv", "figures/mcnemar.png"] if SIM_SIDE_COMPARISONS else [])
    )
    if sim_references()
]


localrules:
    sim_side_agreement,
    sim_side_conditions,


rule sim_side_agreement:
    input:
        result_path("simulatability/summary.csv"),
    output:
        json=result_path("simulatability/side/predictor_agreement.json"),
        figure=report(
            result_path("simulatability/side/figures/predictor_agreement.png"),
            caption=SIDE_CAPTION,
            category=SIDE_CATEGORY,
            subcategory=SIDE_SUBCATEGORY,
            labels={"figure": "predictor agreement (Kendall's W)"},
        ),
    log:
        "logs/sim_side/agreement.log",
    conda:
        ENV
    params:
        bootstrap=SIM["bootstrap"],
    script:
        "../workflow/scripts/sim_side_agreement.py"


rule sim_side_answer_order:
    input:
        SIM_SIDE_OBSERVATIONS,
    output:
        table=result_path("simulatability/side/answer_order.csv"),
        figure=report(
            result_path("simulatability/side/figures/answer_order.png"),
            caption=SIDE_CAPTION,
            category=SIDE_CATEGORY,
            subcategory=SIDE_SUBCATEGORY,
            labels={"figure": "NSG by answer order"},
        ),
    log:
        "logs/sim_side/answer_order.log",
    benchmark:
        "benchmarks/sim_side/answer_order.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        bootstrap=SIM["bootstrap"],
    script:
        "../workflow/scripts/sim_side_answer_order.py"


rule sim_side_features:
    input:
        eval_set=rules.sim_eval_set.output[0],
        observations=SIM_SIDE_OBSERVATIONS,
    output:
        table=result_path("simulatability/side/features.csv"),
        egregious=report(
            result_path("simulatability/side/figures/egregious_by_feature.png"),
            caption=SIDE_CAPTION,
            category=SIDE_CATEGORY,
            subcategory=SIDE_SUBCATEGORY,
            labels={"figure": "egregious rate by changed feature"},
        ),
        answer_change=report(
            result_path("simulatability/side/figures/answer_change_by_feature.png"),
            caption=SIDE_CAPTION,
            category=SIDE_CATEGORY,
            subcategory=SIDE_SUBCATEGORY,
            labels={"figure": "answer change by changed feature"},
        ),
    log:
        "logs/sim_side/features.log",
    benchmark:
        "benchmarks/sim_side/features.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        bootstrap=SIM["bootstrap"],
        min_changed=SIM["side"]["feature_min_changed"],
    script:
        "../workflow/scripts/sim_side_features.py"


rule sim_side_conditions:
    input:
        result_path("simulatability/summary.csv"),
    output:
        table=result_path("simulatability/side/conditions.csv"),
        figure=report(
            result_path("simulatability/side/figures/conditions.png"),
            caption=SIDE_CAPTION,
            category=SIDE_CATEGORY,
            subcategory=SIDE_SUBCATEGORY,
            labels={"figure": "explanation vs cot vs no reference"},
        ),
    log:
        "logs/sim_side/conditions.log",
    conda:
        ENV
    script:
        "../workflow/scripts/sim_side_conditions.py"


rule sim_side_mcnemar:
    input:
        SIM_SIDE_MCNEMAR_INPUTS,
    output:
        table=result_path("simulatability/side/mcnemar.csv"),
        figure=report(
            result_path("simulatability/side/figures/mcnemar.png"),
            caption=SIDE_CAPTION,
            category=SIDE_CATEGORY,
            subcategory=SIDE_SUBCATEGORY,
            labels={"figure": "McNemar: two reference models"},
        ),
    log:
        "logs/sim_side/mcnemar.log",
    benchmark:
        "benchmarks/sim_side/mcnemar.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        comparisons=SIM_SIDE_COMPARISONS,
        bootstrap=SIM["bootstrap"],
        exact_below=SIM["side"]["mcnemar_exact_below"],
    script:
        "../workflow/scripts/sim_side_mcnemar.py"
