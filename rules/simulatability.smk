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
        "results/simulatability/pairs/{dataset}.parquet",
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


rule sim_moral_machines:
    output:
        scenarios="resources/simulatability/moral_machines/scenarios.parquet",
        pairs="results/simulatability/pairs/moral_machines.parquet",
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
        "results/simulatability/eval_set.parquet",
    log:
        "logs/sim_eval_set/eval_set.log",
    conda:
        ENV
    params:
        settings=SIM["eval_set"],
    script:
        "../workflow/scripts/sim_eval_set.py"
