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
        conditions=SIM["conditions"],
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
