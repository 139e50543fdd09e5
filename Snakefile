# selfexplain: do large language models know why they answer as they do?
# Entry point: validates the config, includes the rule files and names the default targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/sce.smk"
include: "rules/simulatability.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
