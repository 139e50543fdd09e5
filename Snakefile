# selfexplain: do large language models know why they answer as they do?
# Entry point: validates the config, includes the rule files and names the default targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# `snakemake --report report.html` opens on this page (it includes the front page the workflow builds).
report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/sce.smk"
include: "rules/simulatability.smk"
include: "rules/report.smk"
include: "rules/cross_study.smk"
include: "rules/transcripts.smk"


rule all:
    default_target: True
    input:
        all_targets(),
