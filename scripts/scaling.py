"""Write docs/scaling.md: jobs per rule, GPU-hours per model, API cost and wall-clock on N GPUs, from the DAG.

The job list comes from `snakemake --dry-run` on the config (nothing is typed by hand); token counts come from
rendering the real prompts of every job (about 4 characters per token); GPU throughput comes from the published
figures cited in the output, scaled by model size. The simulatability eval set is not built by a dry run, so it is
built here offline the way the workflow builds it (same pairs code, same draw) from the shared fixtures: raw tables
where a fixture has them, else the original study's pair files (see `SIM_RAW_FIXTURES`, `SIM_ORIGINAL_FIXTURES`;
folder from SELFEXPLAIN_FIXTURES, default ../shared/fixtures). Run from the repository root:

    .venv/bin/python scripts/scaling.py --configfile config/paper.yaml --out docs/scaling.md
"""

from __future__ import annotations

import argparse
import collections
import copy
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
FIXTURES = Path(os.environ.get("SELFEXPLAIN_FIXTURES", REPO.parent / "shared" / "fixtures"))

# Published reference: Llama-3.3-70B bf16 on 8x A100-80GB, vLLM, TP 8: ~18,200 prefill and ~1,480 decode tokens/s
# (evokernel case llama33-a100x8-vllm-001, consistent with vLLM's public benchmarks); H100-80GB gives about 2x the
# throughput of A100 under vLLM (Lambda, "vllm-benchmark", benchmark_v0.md). Per H100 for a 70B model:
PREFILL_PER_GPU_70B = 18_200 * 2 / 8  # tokens/s
DECODE_PER_GPU_70B = 1_480 * 2 / 8  # tokens/s
STARTUP_HOURS = 20 / 60  # loading weights and warming up, per job
CHARS_PER_TOKEN = 4.0
ANSWER_TOKENS = {"first": 12, "followup": 40, "reasoning_prompt": 400}
REASONING_MODEL_SHARE_OF_MAX = 0.6  # R1 distills think: assume 60 % of max_tokens per answer


def dry_run(configfile: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(REPO / "config", Path(tmp) / "config")
        cmd = [
            str(Path(sys.executable).with_name("snakemake")),
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            tmp,
            "--configfile",
            str(configfile.resolve()),
            "-n",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return result.stdout + result.stderr


def parse_jobs(text: str) -> list[dict[str, str]]:
    jobs = []
    for block in re.split(r"\n(?=rule |localrule )", text):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        job = {"rule": head.group(1)}
        wildcards = re.search(r"wildcards: (.*)", block)
        if wildcards:
            job.update(dict(kv.split("=", 1) for kv in wildcards.group(1).split(", ")))
        resources = re.search(r"resources: (.*)", block)
        if resources:
            job.update({f"res_{k}": v for k, v in (kv.split("=", 1) for kv in resources.group(1).split(", "))})
        jobs.append(job)
    return jobs


def params_b(model_id: str) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)\s*[bB]\b", model_id.replace("-", " "))
    return float(match.group(1)) if match else 70.0


def job_tokens(job: dict[str, str], config: dict, catalog: dict) -> tuple[float, float]:
    """(prompt tokens, output tokens) of one inference job, from its real prompts."""
    from selfexplain.llm.catalog import parse_entry
    from selfexplain.prompts import load_template
    from selfexplain.sce.prompts import first_pass_fields, followup_fields
    from selfexplain.tabular.features import load_dataset_spec
    from selfexplain.tabular.grids import build_grid

    sce = config.get("sce", {})
    prompt_dir = REPO / sce.get("prompt_dir", "config/prompts/sce")
    spec = load_dataset_spec(job["grid"])
    descriptions = build_grid(spec)["description"]
    first = load_template(prompt_dir, sce.get("first_pass", "first_pass"), spec.name)
    first_chars = sum(len(first.render(first_pass_fields(spec, d))) for d in descriptions)
    entry = parse_entry(job["model"], catalog[job["model"]])
    thinking = (
        "DeepSeek-R1" in entry.model_id or bool(entry.sampling.thinking) or entry.sampling.reasoning_effort is not None
    )
    answer = entry.sampling.max_tokens * REASONING_MODEL_SHARE_OF_MAX if thinking else None
    n = len(descriptions)
    if job["rule"] == "sce_predict":
        return first_chars / CHARS_PER_TOKEN, n * (answer or ANSWER_TOKENS["first"])
    followup = load_template(prompt_dir, job["prompt"], spec.name).render(followup_fields(spec, spec.options[0]))
    prompt = first_chars / CHARS_PER_TOKEN + n * (len(followup) / CHARS_PER_TOKEN + ANSWER_TOKENS["first"])
    default = ANSWER_TOKENS["reasoning_prompt"] if "reasoning" in job["prompt"] else ANSWER_TOKENS["followup"]
    return prompt, n * (answer or default)


# -- simulatability ---------------------------------------------------------------------------------------------
# Where the offline eval-set estimate takes each dataset's pairs from: a raw table in the shared fixtures (pairs
# built by our own code, as the workflow builds them), else the original study's pair file (its texts, made by the
# original renderer), else generated (Moral Machines).
SIM_RAW_FIXTURES = {
    "attrition": "simulatability_raw/ibm_hr.csv",
    "breast_cancer_recurrence": "simulatability_raw/breast-cancer.data",
    "income": "simulatability_raw/adult.data",
    "pima_diabetes": "simulatability_raw/pima-indians-diabetes.data.csv",
}
SIM_ORIGINAL_FIXTURES = {
    "bank_marketing": "simulatability_original/bank_marketing_counterfactual_dataset_balanced.parquet",
    "heart_disease": "simulatability_original/heart_disease_counterfactual_dataset_balanced.parquet",
}
# Output assumptions (tokens per answer; not measured: replace them with the journals' counts, results/usage.csv,
# once the first jobs have run).
SIM_REFERENCE_ANSWER_TOKENS = 350  # the tagged answer: answer, explanation, factors, other details, confidence
SIM_EXPLANATION_TOKENS = 200  # explanation and factors of a centre answer, as a predictor is shown them
SIM_PREDICTION_TOKENS = 20  # "[ANSWER] ... [CONFIDENCE] ..."
# Thinking tokens per answer (reference, prediction) by model-id prefix, for models that think. Assumptions for a
# short tabular judgement, between the few hundred tokens a one-step decision needs and the budgets the catalog
# allows; Qwen3 thinks at length even on easy questions, GPT-5-mini/nano at medium spend more than GPT-5.2 at
# medium, Gemini's default is its high thinking level.
SIM_THINKING_TOKENS = {
    "Qwen/Qwen3": (1200, 800),
    "openai/gpt-oss": (600, 400),
    "gpt-5-mini": (1000, 600),
    "gpt-5-nano": (1000, 600),
    "gpt-5.2": (500, 300),
    "claude-": (800, 500),
    "google/gemini-3-flash-preview": (800, 500),
    "google/gemini-3-pro-preview": (800, 500),
}
SIM_DEFAULT_THINKING = {"google/gemini-3-flash-preview": (1200, 800)}  # no effort sent: the provider's default
# Throughput scaling by parameters: active parameters for mixture-of-experts models (gpt-oss-20b: 3.6B active of
# 21B, OpenAI's model card), and no model counted below 1.5B (below that a decode step is bound by per-step CPU and
# kernel-launch overhead, not by weights; assumption).
ACTIVE_PARAMS_B = {"openai/gpt-oss-20b": 3.6}
MIN_SCALING_PARAMS_B = 1.5
CHECKPOINT_GB = {"openai/gpt-oss-20b": 13.0}  # MXFP4 checkpoint; others bf16, 2 bytes per parameter
# Engine start per vLLM job (see the text written under the loading table for the sources):
LOAD_BOOT_S = 30.0  # process start, imports, engine set-up before the engine logs anything
LOAD_READ_GB_PER_S = 1.0  # weights read from a cluster filesystem (cold); a hot page cache is several times faster
LOAD_COMPILE_S = 25.0  # torch.compile loaded from vLLM's compile cache (the first job of a model compiles: ~+50 s)
LOAD_GRAPH_S = ((14.0, 15.0), (40.0, 30.0), (math.inf, 60.0))  # CUDA-graph capture by model size (B, seconds)
# The drain at the end of a job: its last, longest answers decode one sequence at a time, at about 60 % of the HBM
# bandwidth of an H100 (3.35 TB/s) over the bytes of the active weights per token.
H100_HBM_BYTES_PER_S = 3.35e12
SINGLE_STREAM_EFFICIENCY = 0.6
GROUPING_SAVINGS_THRESHOLD = 0.10  # grouping is worth a rule change when it saves at least this share
SCE_START_S = STARTUP_HOURS * 3600  # the sce table's flat start-up allowance, for the sensitivity check


@dataclass(frozen=True)
class SimModel:
    """What the estimate needs of a catalog entry."""

    name: str
    backend: str
    model_id: str
    gpus: int
    max_tokens: int
    thinks: bool
    reference_thinking: float
    prediction_thinking: float
    price_in: float | None
    price_out: float | None
    provider: str | None
    concurrency: int

    @property
    def size_b(self) -> float:
        return ACTIVE_PARAMS_B.get(self.model_id, params_b(self.model_id))

    @property
    def total_b(self) -> float:
        return params_b(self.model_id)


def thinking_tokens(model_id: str, sampling: dict[str, Any], max_tokens: int) -> tuple[bool, float, float]:
    """(thinks, thinking tokens per reference answer, per prediction) of a catalog entry's settings."""
    thinks = bool(sampling.get("thinking")) or sampling.get("reasoning_effort") is not None
    thinks = thinks or sampling.get("thinking_budget") is not None or model_id.startswith(("gpt-5", "o1", "o3", "o4"))
    default = not thinks and model_id in SIM_DEFAULT_THINKING
    if default:
        return True, *SIM_DEFAULT_THINKING[model_id]
    if not thinks:
        return False, 0.0, 0.0
    for prefix, (reference, prediction) in SIM_THINKING_TOKENS.items():
        if model_id.startswith(prefix):
            return True, float(reference), float(prediction)
    share = REASONING_MODEL_SHARE_OF_MAX * max_tokens
    return True, share, share


def sim_model(name: str, raw: dict[str, Any]) -> SimModel:
    from selfexplain.llm.catalog import parse_entry

    sampling = raw.get("sampling") or {}
    max_tokens = int(sampling.get("max_tokens", 1000))
    thinks, reference, prediction = thinking_tokens(raw["model_id"], sampling, max_tokens)
    prices = raw.get("prices") or {}
    return SimModel(
        name=name,
        backend=raw["backend"],
        model_id=raw["model_id"],
        gpus=int(raw.get("gpus", 0)),
        max_tokens=max_tokens,
        thinks=thinks,
        reference_thinking=reference,
        prediction_thinking=prediction,
        price_in=prices.get("input_per_mtok"),
        price_out=prices.get("output_per_mtok"),
        provider=parse_entry(name, raw).api_provider,
        concurrency=int(raw.get("concurrency", 8)),
    )


def sim_config(configfile: Path) -> dict[str, Any]:
    """The config as the workflow sees it (configfile merged over config/config.yaml, defaults filled)."""
    import yaml

    from selfexplain.config import validate_config

    def merge(base: dict, over: dict) -> dict:
        out = copy.deepcopy(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    merged = merge(yaml.safe_load((REPO / "config/config.yaml").read_text()), yaml.safe_load(configfile.read_text()))
    schemas = REPO / "workflow" / "schemas"
    config, _ = validate_config(merged, schemas / "config.schema.yaml", schemas / "catalog.schema.yaml", REPO)
    return config


def sim_pairs(sim: dict[str, Any], fixtures: Path) -> tuple[Any, dict[str, str]]:
    """Every configured dataset's pairs table, built offline, and where each came from."""
    import pandas as pd

    from selfexplain.simulatability import moral_machines as mm
    from selfexplain.simulatability.builtin import MORAL_MACHINES
    from selfexplain.simulatability.datasets import load_spec, read_raw
    from selfexplain.simulatability.original import import_original
    from selfexplain.simulatability.steps import ball_params, loaded_table, pairs_from_table

    tables, sources = [], {}
    for dataset in sim["datasets"]:
        if dataset == MORAL_MACHINES:
            settings = sim["moral_machines"]
            scenarios = mm.generate_scenarios(settings["scenarios"], settings["seed"])
            tables.append(mm.pair_scenarios(scenarios, settings["seed"], both_orders=settings["both_orders"]))
            sources[dataset] = f"generated ({settings['scenarios']:,} scenarios, seed {settings['seed']})"
        elif dataset in SIM_RAW_FIXTURES and (fixtures / SIM_RAW_FIXTURES[dataset]).exists():
            path = fixtures / SIM_RAW_FIXTURES[dataset]
            table = loaded_table(dataset, read_raw(load_spec(dataset), path))
            tables.append(pairs_from_table(dataset, table, ball_params(sim["hamming"], dataset)))
            sources[dataset] = f"built from the raw table `{SIM_RAW_FIXTURES[dataset]}`"
        elif dataset in SIM_ORIGINAL_FIXTURES and (fixtures / SIM_ORIGINAL_FIXTURES[dataset]).exists():
            tables.append(import_original(fixtures / SIM_ORIGINAL_FIXTURES[dataset]))
            sources[dataset] = f"the original study's pairs `{SIM_ORIGINAL_FIXTURES[dataset]}` (no raw fixture)"
        else:
            raise SystemExit(
                f"simulatability dataset {dataset}: no offline source for its texts under {fixtures} "
                "(set SELFEXPLAIN_FIXTURES to the shared fixtures folder)"
            )
    return pd.concat(tables, ignore_index=True), sources


@dataclass(frozen=True)
class SimPrompts:
    """Requests and prompt tokens of one reference job and of one predictor job (before per-model additions)."""

    eval_rows: dict[str, int]
    questions: int
    reference_prompt_tokens: float
    pairs: int
    predictor_requests: dict[str, int]  # per condition, repeats included
    predictor_prompt_tokens: dict[str, float]  # per condition, repeats included, without explanation or thinking


def sim_prompts(sim: dict[str, Any], eval_set: Any) -> SimPrompts:
    """Render every reference question and every predictor question of the eval set with the real templates."""
    from selfexplain.prompts import load_template
    from selfexplain.simulatability.answers import questions
    from selfexplain.simulatability.prompts import (
        PREDICTOR_TEMPLATES,
        REFERENCE_TEMPLATES,
        predictor_fields,
        reference_fields,
    )

    prompt_dir = REPO / sim["prompt_dir"]
    table = questions(eval_set)
    chars = 0
    for dataset, answer_first, question in zip(table["dataset"], table["answer_first"], table["question"], strict=True):
        template = load_template(prompt_dir, REFERENCE_TEMPLATES[bool(answer_first)], dataset)
        chars += len(template.render(reference_fields(dataset, question)))
    requests: dict[str, int] = {}
    tokens: dict[str, float] = {}
    for condition in sim["conditions"]:
        chars_c = 0
        for pair in eval_set.itertuples(index=False):
            template = load_template(prompt_dir, PREDICTOR_TEMPLATES[condition], pair.dataset)
            fields = predictor_fields(pair.dataset, pair.centre_text, pair.centre_label, pair.counterfactual_text)
            chars_c += len(template.render(fields))
        requests[condition] = len(eval_set) * sim["repeats"]
        tokens[condition] = chars_c / CHARS_PER_TOKEN * sim["repeats"]
    return SimPrompts(
        eval_rows=eval_set["dataset"].value_counts(sort=False).to_dict(),
        questions=len(table),
        reference_prompt_tokens=chars / CHARS_PER_TOKEN,
        pairs=len(eval_set),
        predictor_requests=requests,
        predictor_prompt_tokens=tokens,
    )


@dataclass(frozen=True)
class SimJob:
    """One inference job of the simulatability study: its requests, tokens and (vLLM) GPU time."""

    rule: str
    model: SimModel
    reference: SimModel
    requests: int
    prompt_tokens: float
    output_tokens: float
    max_output_tokens: float  # every answer at max_tokens (upper bound)


def reference_job(model: SimModel, prompts: SimPrompts) -> SimJob:
    n = prompts.questions
    return SimJob(
        rule="sim_reference",
        model=model,
        reference=model,
        requests=n,
        prompt_tokens=prompts.reference_prompt_tokens,
        output_tokens=n * (SIM_REFERENCE_ANSWER_TOKENS + model.reference_thinking),
        max_output_tokens=n * model.max_tokens,
    )


def predictor_job(model: SimModel, reference: SimModel, prompts: SimPrompts) -> SimJob:
    """Every pair's centre assumed readable (an upper bound: the original kept about 6,000-7,000 of 7,000)."""
    requests, prompt = 0, 0.0
    for condition, n in prompts.predictor_requests.items():
        shown = {"with_explanation": SIM_EXPLANATION_TOKENS, "cot": reference.reference_thinking}.get(condition, 0.0)
        if condition == "cot" and not reference.thinks:
            continue  # no thinking to show: those rows are skipped
        requests += n
        prompt += prompts.predictor_prompt_tokens[condition] + n * shown
    return SimJob(
        rule="sim_predict",
        model=model,
        reference=reference,
        requests=requests,
        prompt_tokens=prompt,
        output_tokens=requests * (SIM_PREDICTION_TOKENS + model.prediction_thinking),
        max_output_tokens=requests * model.max_tokens,
    )


def throughput(model: SimModel) -> tuple[float, float]:
    """(prefill, decode) tokens/s of one job's engine on `gpus` H100s, from the 70B reference figures."""
    scale = 70.0 / max(model.size_b, MIN_SCALING_PARAMS_B)
    gpus = max(1, model.gpus)
    return PREFILL_PER_GPU_70B * scale * gpus, DECODE_PER_GPU_70B * scale * gpus


def inference_hours(model: SimModel, prompt_tokens: float, output_tokens: float) -> float:
    """Wall-clock hours of a job's batched inference (no start-up)."""
    prefill, decode = throughput(model)
    return (prompt_tokens / prefill + output_tokens / decode) / 3600


def load_seconds(model: SimModel) -> float:
    """Engine start of one vLLM job: boot, weights, compile cache, CUDA graphs."""
    weights_gb = CHECKPOINT_GB.get(model.model_id, 2.0 * model.total_b)
    graphs = next(seconds for limit, seconds in LOAD_GRAPH_S if model.total_b <= limit)
    return LOAD_BOOT_S + weights_gb / LOAD_READ_GB_PER_S + LOAD_COMPILE_S + graphs


def single_stream_tokens_per_s(model: SimModel) -> float:
    bytes_per_token = (CHECKPOINT_GB[model.model_id] * 1e9 * model.size_b / model.total_b
                       if model.model_id in CHECKPOINT_GB else 2.0 * model.size_b * 1e9)  # fmt: skip
    return SINGLE_STREAM_EFFICIENCY * H100_HBM_BYTES_PER_S * max(1, model.gpus) / bytes_per_token


def drain_seconds(model: SimModel, answer_tokens: float) -> float:
    """The tail of a job: its longest answer (max_tokens for a thinking model) decoded as a single sequence."""
    longest = model.max_tokens if model.thinks else answer_tokens
    return longest / single_stream_tokens_per_s(model)


def overhead_hours(model: SimModel, answer_tokens: float, start_s: float | None = None) -> float:
    """Per-job wall-clock hours that do not depend on the job's size: engine start (`start_s` instead of the
    estimate when given) and drain."""
    start = load_seconds(model) if start_s is None else start_s
    return (start + drain_seconds(model, answer_tokens)) / 3600


def job_gpu_hours(job: SimJob, output_tokens: float | None = None) -> float:
    if job.model.backend != "vllm":
        return 0.0
    out = job.output_tokens if output_tokens is None else output_tokens
    answer = out / max(job.requests, 1)
    return (inference_hours(job.model, job.prompt_tokens, out) + overhead_hours(job.model, answer)) * job.model.gpus


def api_cost(job: SimJob) -> float | None:
    if job.model.backend == "vllm" or job.model.price_in is None or job.model.price_out is None:
        return None
    return (job.prompt_tokens * job.model.price_in + job.output_tokens * job.model.price_out) / 1e6


def wall_clock(total_gpu_hours: float, longest_job_hours: float, gpus: int) -> float:
    """Lower bound of the wall-clock on `gpus` GPUs: the work spread evenly, but no shorter than the longest job."""
    return max(total_gpu_hours / gpus, longest_job_hours)


@dataclass(frozen=True)
class Grouping:
    """One vLLM predictor: its predictor jobs run one per reference (as the rules do) or as one job."""

    model: SimModel
    jobs: int
    inference_hours: float  # all of its jobs, wall-clock on its own GPUs
    overhead_hours: float  # per job: engine start and drain
    drain_hours: float  # per job: the drain part
    per_job_gpu_hours: float
    grouped_gpu_hours: float
    longest_per_job: float
    longest_grouped: float

    @property
    def saved(self) -> float:
        return self.per_job_gpu_hours - self.grouped_gpu_hours


def grouping(model: SimModel, jobs: list[SimJob], start_s: float | None = None) -> Grouping:
    answer = sum(j.output_tokens for j in jobs) / max(sum(j.requests for j in jobs), 1)
    hours = [inference_hours(model, j.prompt_tokens, j.output_tokens) for j in jobs]
    overhead = overhead_hours(model, answer, start_s)
    return Grouping(
        model=model,
        jobs=len(jobs),
        inference_hours=sum(hours),
        overhead_hours=overhead,
        drain_hours=drain_seconds(model, answer) / 3600,
        per_job_gpu_hours=(sum(hours) + len(jobs) * overhead) * model.gpus,
        grouped_gpu_hours=(sum(hours) + overhead) * model.gpus,
        longest_per_job=max(hours) + overhead,
        longest_grouped=sum(hours) + overhead,
    )


def break_even_overhead_hours(g: Grouping, share: float = GROUPING_SAVINGS_THRESHOLD) -> float:
    """Per-job overhead at which grouping would save `share` of the predictor's per-job GPU-hours:
    (n - 1) o = share (I + n o)  =>  o = share I / (n - 1 - share n)."""
    n = g.jobs
    return share * g.inference_hours / (n - 1 - share * n) if n > 1 else math.inf


def break_even_start_s(groups: list[Grouping], share: float = GROUPING_SAVINGS_THRESHOLD) -> float:
    """Engine start per job (seconds, the same for every predictor; drains as estimated) at which grouping all of
    `groups` saves `share` of their GPU-hours. With start s, drain d, inference I, n jobs and g GPUs per predictor:
    sum g (n - 1)(s + d) = share * sum g (I + n (s + d)), linear in s."""
    a = sum(g.model.gpus * ((g.jobs - 1) - share * g.jobs) for g in groups)
    b = sum(
        g.model.gpus * (share * g.inference_hours + (share * g.jobs - (g.jobs - 1)) * g.drain_hours) for g in groups
    )
    return b / a * 3600 if a > 0 else math.inf


def crossover_gpus(total_per_job: float, total_grouped: float, longest_per_job: float, longest_grouped: float) -> float:
    """Cluster size above which per-job predictors finish sooner than grouped ones (wall-clock lower bounds):
    grouped is bounded by its longest job once N > total_grouped / longest_grouped, per-job by total / N."""
    if longest_grouped <= longest_per_job:
        return math.inf
    return total_per_job / longest_grouped


def simulatability_sections(args: argparse.Namespace, jobs: list[dict[str, str]], catalog: dict) -> dict[str, Any]:
    """The simulatability study's tables (markdown lines), its GPU-hours and longest GPU job under both plans."""
    from selfexplain.simulatability.pairs import sample_eval_set

    sim = sim_config(args.configfile)["simulatability"]
    ref_names = [j["reference"] for j in jobs if j["rule"] == "sim_reference"]
    pred_pairs = [(j["reference"], j["predictor"]) for j in jobs if j["rule"] == "sim_predict"]
    if not ref_names:
        return {"lines": [], "gpu_hours": 0.0, "grouped_gpu_hours": 0.0, "longest": 0.0, "longest_grouped": 0.0}
    pairs, sources = sim_pairs(sim, args.fixtures)
    eval_cfg = sim["eval_set"]
    eval_set = sample_eval_set(pairs, eval_cfg["size"], eval_cfg["unit"], eval_cfg["seed"])
    prompts = sim_prompts(sim, eval_set)
    # config order (the dry run lists jobs in no fixed order)
    ref_names = sorted(ref_names, key=sim["references"].index)
    pred_pairs = sorted(pred_pairs, key=lambda rp: (sim["predictors"].index(rp[1]), sim["references"].index(rp[0])))
    models = {n: sim_model(n, catalog[n]) for n in dict.fromkeys([*ref_names, *(p for _, p in pred_pairs)])}
    sim_jobs = [reference_job(models[r], prompts) for r in ref_names]
    sim_jobs += [predictor_job(models[p], models[r], prompts) for r, p in pred_pairs]

    rows = prompts.eval_rows
    lines = [
        "## Simulatability: the evaluation set and its prompts",
        "",
        "A dry run does not build the evaluation set, so it is built here offline with the workflow's own code and "
        f"the config's draw ({eval_cfg['size']:,} {eval_cfg['unit']} per dataset, seed {eval_cfg['seed']}), "
        "and every reference and predictor prompt is rendered with the real templates "
        f"(`{sim['prompt_dir']}`, {CHARS_PER_TOKEN:.0f} characters per token). Texts per dataset:",
        "",
        "| dataset | eval rows | texts from |",
        "| --- | ---: | --- |",
        *[f"| {d} | {rows.get(d, 0):,} | {sources[d]} |" for d in sim["datasets"]],
        f"| **total** | **{prompts.pairs:,}** | |",
        "",
        f"A reference job asks {prompts.questions:,} questions (each (dataset, row, answer order) once: centres and "
        f"counterfactuals share rows), {prompts.reference_prompt_tokens / max(prompts.questions, 1):,.0f} prompt "
        f"tokens each on average. A predictor job asks {sum(prompts.predictor_requests.values()):,} questions "
        f"({', '.join(f'{c}: {n:,}' for c, n in prompts.predictor_requests.items())}; repeats {sim['repeats']}), "
        "assuming every centre answer is readable (an upper bound: the original kept about 6,000-7,000 of 7,000 "
        f"pairs per predictor); a with-explanation prompt adds the explanation, assumed {SIM_EXPLANATION_TOKENS} "
        "tokens.",
        "",
    ]

    # Per model and role.
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for job in sim_jobs:
        role = "reference" if job.rule == "sim_reference" else "predictor"
        row = table.setdefault((job.model.name, role), collections.defaultdict(float))
        row["jobs"] += 1
        row["requests"] += job.requests
        row["prompt"] += job.prompt_tokens
        row["output"] += job.output_tokens
        row["gpu_hours"] += job_gpu_hours(job)
        row["gpu_hours_max"] += job_gpu_hours(job, job.max_output_tokens)
        cost = api_cost(job)
        row["cost"] += cost or 0.0
        row["priced"] = cost is not None
    total_gpu = sum(r["gpu_hours"] for r in table.values())
    total_gpu_max = sum(r["gpu_hours_max"] for r in table.values())
    total_cost = sum(r["cost"] for r in table.values())
    lines += [
        "## Simulatability: inference per model",
        "",
        f"Visible output assumed per answer: {SIM_REFERENCE_ANSWER_TOKENS} tokens for a reference answer (answer, "
        f"explanation, factors, other details, confidence), {SIM_PREDICTION_TOKENS} for a prediction. Thinking "
        "tokens per answer (reference / prediction) are assumptions by model, for a short tabular judgement: "
        + "; ".join(f"`{k}` {r} / {p}" for k, (r, p) in SIM_THINKING_TOKENS.items())
        + "; "
        + "; ".join(
            f"`{k}` with no effort sent (the provider's default) {r} / {p}"
            for k, (r, p) in SIM_DEFAULT_THINKING.items()
        )
        + ". Nothing is measured yet: replace them with the journals' token counts (`results/usage.csv`) after the "
        "first jobs. The last GPU column is the bound where every answer runs to its max_tokens (what "
        "`selfexplain.llm.sizing` reserves as Slurm runtime). GPU-hours include each job's engine start and drain "
        "(next section). API cost is tokens times the catalog's list prices (thinking billed as output).",
        "",
        "| model | role | backend | jobs | GPUs per job | requests (k) | prompt tokens (M) | thinking per answer "
        "| output tokens (M) | GPU-hours (H100) | GPU-hours at max_tokens | API cost (USD) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (name, role), row in table.items():
        m = models[name]
        thinking = m.reference_thinking if role == "reference" else m.prediction_thinking
        vllm = m.backend == "vllm"
        cost = f"{row['cost']:,.0f}" if row["priced"] else ("-" if vllm else "no price")
        lines.append(
            f"| {name} | {role} | {m.backend} | {int(row['jobs'])} | {m.gpus} | {row['requests'] / 1e3:,.0f} | "
            f"{row['prompt'] / 1e6:.1f} | {thinking:,.0f} | {row['output'] / 1e6:.1f} | "
            f"{row['gpu_hours']:.1f} | {row['gpu_hours_max']:.1f} | {cost} |"
            if vllm
            else f"| {name} | {role} | {m.backend} | {int(row['jobs'])} | 0 | {row['requests'] / 1e3:,.0f} | "
            f"{row['prompt'] / 1e6:.1f} | {thinking:,.0f} | {row['output'] / 1e6:.1f} | API | API | {cost} |"
        )
    lines += [
        f"| **total** | | | | | | | | | **{total_gpu:.1f}** | **{total_gpu_max:.1f}** | **{total_cost:,.0f}** |",
        "",
        "Throughput from the figures under the sce table above, scaled by 70 / (billions of parameters), with "
        "active parameters for mixture-of-experts models ("
        + ", ".join(f"{k}: {v}B" for k, v in ACTIVE_PARAMS_B.items())
        + f", OpenAI's model card) and no model counted below {MIN_SCALING_PARAMS_B}B (below that a decode step is "
        "bound by per-step overhead, not weights; assumption).",
        "",
    ]

    # Loading and drain per vLLM model.
    vllm_models = [m for m in models.values() if m.backend == "vllm"]
    lines += [
        "### Engine start and drain per vLLM job",
        "",
        "| model | parameters (B) | GPUs | weights (GB) | engine start (s) | drain (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in vllm_models:
        weights = CHECKPOINT_GB.get(m.model_id, 2.0 * m.total_b)
        answer = SIM_REFERENCE_ANSWER_TOKENS + m.reference_thinking
        lines.append(
            f"| {m.name} | {m.total_b:g} | {m.gpus} | {weights:.1f} | {load_seconds(m):.0f} | "
            f"{drain_seconds(m, answer):.0f} |"
        )
    lines += [
        "",
        f"Engine start = {LOAD_BOOT_S:.0f} s boot (process start, imports and engine set-up before vLLM logs its "
        "first step: about 25-30 s unlogged in vLLM issue #20264) + weights read at "
        f"{LOAD_READ_GB_PER_S:g} GB/s (a cold read from a cluster filesystem, assumption; from a hot page cache "
        "70 GB load in about 10 s, vLLM issue #19824) + "
        f"{LOAD_COMPILE_S:.0f} s torch.compile from vLLM's compile cache (25 s of a 132 s warm start of a 70B "
        "model, vLLM issue #20402; the first job of each model compiles cold, about 70 s for a 70B model, "
        "#19824) + CUDA-graph capture "
        + ", ".join(f"{sec:.0f} s up to {lim:g}B" for lim, sec in LOAD_GRAPH_S if math.isfinite(lim))
        + f", {LOAD_GRAPH_S[-1][1]:.0f} s above (10-17 s for 8B models in vLLM PR #11005 and issue #20264, 60 s for "
        "a 70B model on 8 GPUs in #19824). Weights are 2 bytes per parameter in bf16 (gpt-oss-20b: its 13 GB MXFP4 "
        "checkpoint). Drain = the job's longest answer (max_tokens for a thinking model: among thousands of "
        "thinking answers some run to the cap) decoded alone at "
        f"{SINGLE_STREAM_EFFICIENCY:.0%} of an H100's {H100_HBM_BYTES_PER_S / 1e12:.2f} TB/s over the active "
        "weights' bytes per token, while the rest of the GPU idles. Both are per job, whatever its size.",
        "",
    ]

    # One predictor engine per job, or one per predictor.
    predictor_jobs = {m.name: [j for j in sim_jobs if j.rule == "sim_predict" and j.model.name == m.name]
                      for m in vllm_models}  # fmt: skip
    groups = [grouping(models[n], js) for n, js in predictor_jobs.items() if js]
    slow_start = [grouping(models[n], js, SCE_START_S) for n, js in predictor_jobs.items() if js]
    ref_jobs = [j for j in sim_jobs if j.rule == "sim_reference"]
    ref_gpu = sum(job_gpu_hours(j) for j in ref_jobs)
    ref_longest = max(
        (inference_hours(j.model, j.prompt_tokens, j.output_tokens)
         + overhead_hours(j.model, j.output_tokens / max(j.requests, 1))
         for j in ref_jobs if j.model.backend == "vllm"),
        default=0.0,
    )  # fmt: skip
    per_job = sum(g.per_job_gpu_hours for g in groups)
    grouped = sum(g.grouped_gpu_hours for g in groups)
    lines += [
        "## Predictor engines: one per job or one per predictor",
        "",
        "`sim_predict` runs one job per (reference, predictor), so a vLLM predictor starts its engine (and drains "
        "its tail) once per reference model. The alternative is one job per predictor that answers the questions "
        "of every reference with one engine. Per vLLM predictor:",
        "",
        "| predictor | GPUs | jobs | inference per job (h) | start + drain per job (min) | GPU-hours, per job "
        "| GPU-hours, grouped | saved | longest job, per job (h) | longest job, grouped (h) | break-even start + "
        "drain (min) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for g in groups:
        lines.append(
            f"| {g.model.name} | {g.model.gpus} | {g.jobs} | {g.inference_hours / g.jobs:.2f} | "
            f"{g.overhead_hours * 60:.1f} | {g.per_job_gpu_hours:.1f} | {g.grouped_gpu_hours:.1f} | "
            f"{g.saved:.1f} ({g.saved / g.per_job_gpu_hours:.1%}) | {g.longest_per_job:.2f} | "
            f"{g.longest_grouped:.1f} | {break_even_overhead_hours(g) * 60:.1f} |"
        )
    lines += [
        f"| **total** | | | | | **{per_job:.1f}** | **{grouped:.1f}** | **{per_job - grouped:.1f} "
        f"({(per_job - grouped) / per_job if per_job else 0.0:.1%})** | | | |",
        "",
        f"Break-even: the start + drain per job at which grouping would save {GROUPING_SAVINGS_THRESHOLD:.0%} of "
        f"that predictor's GPU-hours ((n - 1) o = {GROUPING_SAVINGS_THRESHOLD:.0%} x (I + n o) for n jobs, "
        "inference I in all, overhead o per job).",
        "",
    ]
    more, api_wall_clock = api_lines(sim_jobs)
    lines += more
    return {
        "api_wall_clock": api_wall_clock,
        "lines": lines,
        "ref_gpu_hours": ref_gpu,
        "ref_longest": ref_longest,
        "groups": groups,
        "slow_start": slow_start,
        "api_cost": total_cost,
    }


def api_slots(profile: Path = REPO / "profiles" / "default" / "config.yaml") -> dict[str, int]:
    """Concurrent jobs per API provider: the profile's global `api_<provider>` resources."""
    import yaml

    resources = (yaml.safe_load(profile.read_text()) or {}).get("resources") or []
    pairs = (item.split("=", 1) for item in resources if str(item).startswith("api_"))
    return {name.removeprefix("api_"): int(value) for name, value in pairs}


def api_lines(sim_jobs: list[SimJob]) -> tuple[list[str], float]:
    """API cost and job time per provider (jobs of one provider share its global Snakemake resource), and the
    slowest provider's wall-clock."""
    from selfexplain.llm.sizing import API_REASONING_SECONDS_PER_REQUEST, API_SECONDS_PER_REQUEST

    rows: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    for job in sim_jobs:
        if job.model.backend == "vllm":
            continue
        provider = job.model.provider
        per_request = API_REASONING_SECONDS_PER_REQUEST if job.model.thinks else API_SECONDS_PER_REQUEST
        row = rows[provider]
        row["jobs"] += 1
        row["requests"] += job.requests
        row["hours"] += job.requests * per_request / job.model.concurrency / 3600
        row["cost"] += api_cost(job) or 0.0
    slots = api_slots()
    wall = {p: r["hours"] / max(1, slots.get(p, 1)) for p, r in rows.items()}
    lines = [
        "## Simulatability: API cost and time",
        "",
        f"Job hours: requests x {API_REASONING_SECONDS_PER_REQUEST:.0f} s per reasoning request "
        f"({API_SECONDS_PER_REQUEST:.0f} s otherwise; `selfexplain.llm.sizing`) / the catalog's concurrency. Jobs of "
        "one provider run as many at once as the profile's `api_<provider>` resource allows "
        "(`profiles/default/config.yaml`), which bounds the provider's wall-clock if its rate limits allow that "
        "many requests in flight.",
        "",
        "| provider | jobs | requests (k) | job hours | jobs at once | wall-clock (h) | cost (USD) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for provider, row in sorted(rows.items()):
        at_once = max(1, slots.get(provider, 1))
        lines.append(
            f"| {provider} | {int(row['jobs'])} | {row['requests'] / 1e3:,.0f} | {row['hours']:.1f} | {at_once} | "
            f"{row['hours'] / at_once:.1f} | {row['cost']:,.0f} |"
        )
    total = sum(r["cost"] for r in rows.values())
    lines += [
        f"| **total** | | | | | | **{total:,.0f}** |",
        "",
        "Prices are the catalog's public list prices (standard tier, no caching); OpenRouter passes the provider's "
        "price through. Anthropic's Message Batches API (catalog `batch: true`) halves Claude's share, at up to a "
        "day's latency per job.",
        "",
    ]
    return lines, max(wall.values(), default=0.0)


UNESTIMATED = ("sce_requery", "sim_testability")  # inference rules whose requests the tables below leave out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, default=REPO / "config/paper.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "docs/scaling.md")
    parser.add_argument("--gpus", default="4,8,16,32", help="cluster sizes for the wall-clock table")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="shared fixtures (simulatability texts)")
    args = parser.parse_args()
    args.configfile = args.configfile.resolve()  # the docstring's relative path, too

    import yaml

    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config = {**base, **yaml.safe_load(args.configfile.read_text())}
    catalog = yaml.safe_load((REPO / config.get("catalog", "config/models.yaml")).read_text())["models"]
    jobs = parse_jobs(dry_run(args.configfile))
    per_rule = collections.Counter(j["rule"] for j in jobs)

    models: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    gpu_jobs: list[float] = []
    for job in jobs:
        if job["rule"] not in ("sce_predict", "sce_elicit"):
            continue
        raw = catalog[job["model"]]
        row = models[job["model"]]
        prompt, output = job_tokens(job, config, catalog)
        row["jobs"] += 1
        row["prompt_tokens"] += prompt
        row["output_tokens"] += output
        row["backend"] = raw["backend"]
        gpus = int(job.get("res_gpu", raw.get("gpus", 0)) or 0)
        row["gpus_per_job"] = gpus
        if raw["backend"] == "vllm" and gpus:
            scale = 70.0 / params_b(raw["model_id"])
            seconds = prompt / (PREFILL_PER_GPU_70B * scale * gpus) + output / (DECODE_PER_GPU_70B * scale * gpus)
            hours = (seconds / 3600 + STARTUP_HOURS) * gpus
            row["gpu_hours"] += hours
            gpu_jobs.append(hours / gpus)

    lines = [
        "# Scale of the full reproduction",
        "",
        f"Generated by `scripts/scaling.py --configfile {args.configfile.relative_to(REPO)}` from the workflow's DAG "
        "(`snakemake --dry-run`); do not edit by hand.",
        "",
        "## Jobs per rule",
        "",
        "| rule | jobs |",
        "| --- | ---: |",
        *[f"| {rule} | {count} |" for rule, count in sorted(per_rule.items())],
        f"| **total** | **{sum(per_rule.values())}** |",
        "",
        *(
            [
                "Not yet in the GPU-hour and cost estimates below: "
                + ", ".join(f"`{r}` ({per_rule[r]} jobs)" for r in UNESTIMATED if per_rule.get(r))
                + ". `sce_requery` asks one first-pass-sized question per readable counterfactual (about as many "
                "requests as `sce_elicit`, with short answers); `sim_testability` asks one 0-10 rating per pair of "
                "the rating predictor.",
                "",
            ]
            if any(per_rule.get(r) for r in UNESTIMATED)
            else []
        ),
        "## Inference per model",
        "",
        "Prompt tokens are counted from the rendered prompts (4 characters per token); output tokens assume "
        f"{ANSWER_TOKENS['first']} per first answer, {ANSWER_TOKENS['followup']} per counterfactual "
        f"({ANSWER_TOKENS['reasoning_prompt']} for the minimal_reasoning prompt) and, for thinking and "
        "reasoning models, "
        f"{REASONING_MODEL_SHARE_OF_MAX:.0%} of max_tokens per answer.",
        "",
        "| model | backend | jobs | GPUs per job | prompt tokens (M) | output tokens (M) | GPU-hours (H100) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    total_gpu_hours = 0.0
    for name, row in models.items():
        total_gpu_hours += row["gpu_hours"]
        gpu_hours = f"{row['gpu_hours']:.1f}" if row["backend"] == "vllm" else "API"
        lines.append(
            f"| {name} | {row['backend']} | {int(row['jobs'])} | {int(row['gpus_per_job'])} | "
            f"{row['prompt_tokens'] / 1e6:.2f} | {row['output_tokens'] / 1e6:.2f} | {gpu_hours} |"
        )
    lines += [
        f"| **total** | | | | | | **{total_gpu_hours:.1f}** |",
        "",
        "GPU throughput: Llama-3.3-70B in bf16 under vLLM reaches about 18,200 prefill and 1,480 decode tokens/s on "
        "8x A100-80GB (evokernel case `llama33-a100x8-vllm-001`, in line with vLLM's public benchmarks), and an "
        "H100 gives about twice an A100's vLLM throughput (Lambda, `LambdaLabsML/vllm-benchmark`). Per H100 that is "
        f"{PREFILL_PER_GPU_70B:,.0f} prefill and {DECODE_PER_GPU_70B:,.0f} decode tokens/s for a 70B model, scaled "
        f"by 70 / (billions of parameters) for smaller models, plus {STARTUP_HOURS * 60:.0f} minutes of start-up per "
        "job. Prefix caching (on) shares each first turn between the first pass and its follow-ups, so prefill is "
        "overestimated here.",
        "",
    ]
    sim = simulatability_sections(args, jobs, catalog)
    lines += sim["lines"]
    plans = predictor_plans(sim, total_gpu_hours, max(gpu_jobs, default=0.0))
    per_job = plans["per job"]
    lines += [
        "## Wall-clock on a cluster with N GPUs",
        "",
        "Both studies; jobs run side by side as GPUs allow and a job cannot be shorter than its own run time (a lower "
        "bound: queueing and the order of dependent jobs add to it). Total GPU-hours: "
        f"{per_job.gpu_hours:.1f} (sce {total_gpu_hours:.1f}, simulatability "
        f"{per_job.gpu_hours - total_gpu_hours:.1f}) with one predictor engine per job, as the rules run it; the "
        "other columns are the alternatives of the predictor-engine decision below.",
        "",
        "| GPUs | wall-clock (hours) |" + "".join(f" {name} (hours) |" for name in list(plans)[1:]),
        "| ---: | ---: |" + " ---: |" * (len(plans) - 1),
    ]
    for n in map(int, args.gpus.split(",")):
        lines.append(f"| {n} | " + " | ".join(f"{plan.wall_clock(n):.1f}" for plan in plans.values()) + " |")
    lines += [
        "",
        f"API models add no GPU time; their jobs are bounded by provider rate limits "
        f"(catalog `rate_limits`, `concurrency`). Longest single GPU job: {per_job.longest:.2f} h.",
        "",
    ]
    if sim.get("api_wall_clock"):
        lines[-1:-1] = [
            "",
            f"The simulatability API jobs run beside the GPU jobs; at the profile's jobs per provider the slowest "
            f"provider needs about {sim['api_wall_clock']:.0f} h (API section), which can bound the reproduction "
            "too: raise `api_<provider>` within the account's rate limits to shorten it.",
        ]
    if sim["lines"]:
        slow = predictor_plans({**sim, "groups": sim["slow_start"]}, total_gpu_hours, max(gpu_jobs, default=0.0))
        lines += decision_lines(sim, plans, slow)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(
        f"wrote {args.out} ({sum(per_rule.values())} jobs, {per_job.gpu_hours:.1f} GPU-hours; "
        + ", ".join(f"{name}: {plan.gpu_hours:.1f}" for name, plan in list(plans.items())[1:])
        + f"; API ${sim.get('api_cost', 0.0):,.0f})"
    )


@dataclass(frozen=True)
class Plan:
    """GPU-hours of the whole reproduction and its longest GPU job under one way of running the predictors."""

    gpu_hours: float
    longest: float
    grouped: tuple[str, ...] = ()

    def wall_clock(self, gpus: int) -> float:
        return wall_clock(self.gpu_hours, self.longest, gpus)


def predictor_plans(sim: dict[str, Any], sce_gpu_hours: float, sce_longest: float) -> dict[str, Plan]:
    """Per job (the rules), all vLLM predictors grouped, and only those for which grouping alone saves at least the
    threshold share of their GPU-hours (short jobs, where the start weighs most)."""
    groups: list[Grouping] = sim.get("groups", [])
    base = sce_gpu_hours + sim.get("ref_gpu_hours", 0.0)
    floor = max(sce_longest, sim.get("ref_longest", 0.0))
    per_job = Plan(base + sum(g.per_job_gpu_hours for g in groups), max([floor, *(g.longest_per_job for g in groups)]))
    plans = {"per job": per_job}
    if not groups:
        return plans
    plans["all grouped"] = Plan(
        base + sum(g.grouped_gpu_hours for g in groups),
        max([floor, *(g.longest_grouped for g in groups)]),
        tuple(g.model.name for g in groups),
    )
    worth = [g for g in groups if g.saved >= GROUPING_SAVINGS_THRESHOLD * g.per_job_gpu_hours]
    plans["short ones grouped"] = Plan(
        base + sum(g.grouped_gpu_hours if g in worth else g.per_job_gpu_hours for g in groups),
        max([floor, *((g.longest_grouped if g in worth else g.longest_per_job) for g in groups)]),
        tuple(g.model.name for g in worth),
    )
    return plans


def decision_lines(sim: dict[str, Any], plans: dict[str, Plan], slow_plans: dict[str, Plan]) -> list[str]:
    """The predictor-engine decision, from the numbers (`slow_plans`: the same with the sce table's flat start)."""
    groups: list[Grouping] = sim["groups"]
    per_job, grouped, short = plans["per job"], plans["all grouped"], plans["short ones grouped"]
    predictor_hours = sum(g.per_job_gpu_hours for g in groups)
    saved = per_job.gpu_hours - grouped.gpu_hours
    saved_share = saved / predictor_hours if predictor_hours else 0.0
    short_saved = per_job.gpu_hours - short.gpu_hours
    crossover = crossover_gpus(per_job.gpu_hours, grouped.gpu_hours, per_job.longest, grouped.longest)
    slow_job, slow_grouped = slow_plans["per job"], slow_plans["all grouped"]
    slow_crossover = crossover_gpus(slow_job.gpu_hours, slow_grouped.gpu_hours, slow_job.longest, slow_grouped.longest)
    biggest = max(groups, key=lambda g: g.longest_grouped)
    start_estimate = [load_seconds(g.model) for g in groups]
    break_even = break_even_start_s(groups)
    slow = sim["slow_start"]
    slow_saved = sum(g.saved for g in slow)
    slow_share = slow_saved / sum(g.per_job_gpu_hours for g in slow)
    group = saved_share >= GROUPING_SAVINGS_THRESHOLD
    verdict = (
        "**Decision: group the vLLM predictor jobs** (one engine per predictor for all references)."
        if group
        else "**Decision: keep one job per (reference, predictor)**, as the rules do; do not group."
    )
    short_text = (
        f"Grouping only the predictors for which it clears the threshold on their own ({', '.join(short.grouped)}: "
        "short jobs, where the start weighs most) saves "
        f"{short_saved:.1f} GPU-hours ({short_saved / per_job.gpu_hours:.1%} of the reproduction) and makes its "
        f"longest job {short.longest:.1f} h: too little to justify a second kind of predictor rule."
        if short.grouped
        else "No single predictor clears the threshold on its own."
    )
    return [
        "## Decision: predictor engines",
        "",
        verdict,
        "",
        f"* GPU-hours: grouping every vLLM predictor saves {saved:.1f} GPU-hours, {saved_share:.1%} of the vLLM "
        f"predictors' {predictor_hours:.1f} and {saved / per_job.gpu_hours:.1%} of the whole reproduction; the "
        f"threshold for changing the rules is {GROUPING_SAVINGS_THRESHOLD:.0%} of the predictors' GPU-hours. "
        f"Break-even: an engine start of {break_even / 60:.1f} minutes per job (estimated "
        f"{min(start_estimate) / 60:.1f}-{max(start_estimate) / 60:.1f}); with the sce table's flat "
        f"{SCE_START_S / 60:.0f} minutes grouping would save {slow_saved:.1f} GPU-hours ({slow_share:.1%}).",
        f"* Wall-clock: grouping turns {biggest.model.name} into one {biggest.longest_grouped:.1f} h job on "
        f"{biggest.model.gpus} GPUs instead of {biggest.jobs} jobs of {biggest.longest_per_job:.2f} h, so on more "
        f"than {crossover:.0f} GPUs (break-even cluster size: per-job GPU-hours / longest grouped job) the grouped "
        f"plan finishes later (table above; {slow_crossover:.0f} GPUs with {SCE_START_S / 60:.0f}-minute starts), "
        "and unlike the API jobs (about "
        f"{sim.get('api_wall_clock', 0.0):.0f} h at the profile's settings, shorter with more `api_<provider>` "
        "slots) that job cannot be shortened by adding resources. A grouped job also waits for every reference "
        "(the API ones included) before its first prediction, where a per-job prediction starts as soon as its "
        "reference is done, and a failure or a Slurm time limit then hits a day-long job.",
        f"* {short_text}",
        "* Revisit with measurements: every output's provenance records the engine start (`engine_start_s`), and "
        "`results/usage.csv` the tokens; if starts on the cluster exceed the break-even above, group the short "
        "predictors first.",
        "",
    ]


if __name__ == "__main__":
    main()
