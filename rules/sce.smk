# sce study: grid -> first-pass labels -> counterfactual follow-up (-> re-query) -> validity and minimality.
from selfexplain.sce.config import verify_methods


localrules:
    sce_grid,


# Validity checks scored (lookup always; requery when listed in sce.verify).
SCE_VERIFY = verify_methods(SCE)


rule sce_grid:
    output:
        "resources/sce/{grid}/grid.parquet",
    log:
        "logs/sce_grid/{grid}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/sce_grid.py"


rule sce_predict:
    input:
        grid=rules.sce_grid.output[0],
        template=first_pass_template,
    output:
        result_path("sce/{model}/{grid}/predictions.parquet"),
    log:
        "logs/sce_predict/{model}/{grid}.log",
    benchmark:
        "benchmarks/sce_predict/{model}/{grid}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=model_gpus(),
        mem_mb=inference_resource("sce", "mem_mb"),
        runtime=inference_resource("sce", "runtime"),
        cpus_per_task=inference_resource("sce", "cpus_per_task"),
        api_openai=api_slot("openai"),
        api_anthropic=api_slot("anthropic"),
        api_openrouter=api_slot("openrouter"),
        api_local=api_slot("local"),
    params:
        model=model_entry(),
        journal=journal_path("sce", "predict", "grid"),
        progress=config["progress"],
    script:
        "../workflow/scripts/sce_predict.py"


rule sce_elicit:
    input:
        predictions=rules.sce_predict.output[0],
        first_template=first_pass_template,
        template=followup_template,
    output:
        result_path("sce/{model}/{grid}/{prompt}/counterfactuals.parquet"),
    log:
        "logs/sce_elicit/{model}/{grid}/{prompt}.log",
    benchmark:
        "benchmarks/sce_elicit/{model}/{grid}/{prompt}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=model_gpus(),
        mem_mb=inference_resource("sce", "mem_mb"),
        runtime=inference_resource("sce", "runtime"),
        cpus_per_task=inference_resource("sce", "cpus_per_task"),
        api_openai=api_slot("openai"),
        api_anthropic=api_slot("anthropic"),
        api_openrouter=api_slot("openrouter"),
        api_local=api_slot("local"),
    params:
        model=model_entry(),
        journal=journal_path("sce", "elicit", "grid", "prompt"),
        seed=SCE["seed"],
        progress=config["progress"],
    script:
        "../workflow/scripts/sce_elicit.py"


# verify: requery asks every readable counterfactual again as a first-pass question, in a fresh chat.
rule sce_requery:
    input:
        counterfactuals=rules.sce_elicit.output[0],
        first_template=first_pass_template,
    output:
        result_path("sce/{model}/{grid}/{prompt}/requery.parquet"),
    log:
        "logs/sce_requery/{model}/{grid}/{prompt}.log",
    benchmark:
        "benchmarks/sce_requery/{model}/{grid}/{prompt}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=model_gpus(),
        mem_mb=inference_resource("sce", "mem_mb"),
        runtime=inference_resource("sce", "runtime"),
        cpus_per_task=inference_resource("sce", "cpus_per_task"),
        api_openai=api_slot("openai"),
        api_anthropic=api_slot("anthropic"),
        api_openrouter=api_slot("openrouter"),
        api_local=api_slot("local"),
    params:
        model=model_entry(),
        journal=journal_path("sce", "requery", "grid", "prompt"),
        progress=config["progress"],
    script:
        "../workflow/scripts/sce_requery.py"


rule sce_score:
    input:
        counterfactuals=rules.sce_elicit.output[0],
        grid=rules.sce_grid.output[0],
        # the run's re-query table when verify lists requery
        requery=lambda w: (
            expand(rules.sce_requery.output[0], **w)[0]
            if "requery" in SCE_VERIFY
            else []
        ),
    output:
        scores=result_path("sce/{model}/{grid}/{prompt}/scores.parquet"),
        metrics=result_path("sce/{model}/{grid}/{prompt}/metrics.json"),
    log:
        "logs/sce_score/{model}/{grid}/{prompt}.log",
    benchmark:
        "benchmarks/sce_score/{model}/{grid}/{prompt}.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        distance=prompt_distance,
        distance_convention=SCE["distance_convention"],
        bootstrap=SCE["bootstrap"],
    script:
        "../workflow/scripts/sce_score.py"
