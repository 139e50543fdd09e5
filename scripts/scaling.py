"""Write docs/scaling.md: jobs per rule, GPU-hours per model, API cost and wall-clock on N GPUs, from the DAG, and
what each optional part of the config adds (sce re-query, testability rubric, comparison-only references, extra
conditions), so a user can decide which to run.

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


def first_pass_estimate(
    rows: int, first_pass_tokens: float, answer_tokens: float, share: float = 1.0
) -> tuple[float, float, float]:
    """(requests, prompt tokens, output tokens) of first-pass questions asked on `share` of a grid's `rows` records,
    whose first-pass prompts total `first_pass_tokens`: the first pass itself (every row), or the re-query (one
    question per readable counterfactual, its record about as long as a grid point's)."""
    requests = rows * share
    return requests, first_pass_tokens * share, requests * answer_tokens


def job_tokens(job: dict[str, str], config: dict, catalog: dict) -> tuple[float, float, float]:
    """(requests, prompt tokens, output tokens) of one sce inference job, from its real prompts."""
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
        "DeepSeek-R1" in entry.model_id
        or bool(entry.sampling.thinking)
        or entry.sampling.reasoning_effort not in (None, "none")
    )
    answer = entry.sampling.max_tokens * REASONING_MODEL_SHARE_OF_MAX if thinking else None
    n = len(descriptions)
    if job["rule"] in ("sce_predict", "sce_requery"):
        share = REQUERY_READABLE_SHARE if job["rule"] == "sce_requery" else 1.0
        return first_pass_estimate(n, first_chars / CHARS_PER_TOKEN, answer or ANSWER_TOKENS["first"], share)
    followup = load_template(prompt_dir, job["prompt"], spec.name).render(followup_fields(spec, spec.options[0]))
    prompt = first_chars / CHARS_PER_TOKEN + n * (len(followup) / CHARS_PER_TOKEN + ANSWER_TOKENS["first"])
    default = ANSWER_TOKENS["reasoning_prompt"] if "reasoning" in job["prompt"] else ANSWER_TOKENS["followup"]
    return n, prompt, n * (answer or default)


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
# The figures above are for effort medium (what every reference and predictor of the paper's tables uses); the
# reasoning-effort variants (compare_references) scale them: none does not think, low half, high twice (assumption:
# OpenAI documents only that more effort spends more reasoning tokens). A thinking budget without an effort (Claude)
# counts as the effort whose OpenRouter budget share of max_tokens is nearest (low 20 %, medium 50 %, high 80 %).
SIM_EFFORT_SCALE = {"none": 0.0, "minimal": 0.25, "low": 0.5, "medium": 1.0, "high": 2.0}
BUDGET_SHARE_EFFORT = {0.2: "low", 0.5: "medium", 0.8: "high"}
SIM_RATING_TOKENS = 5  # a testability rating: "one whole number from 0 to 10, and nothing else"
# sce_requery asks one first-pass question per readable counterfactual of a (model, grid, prompt) run, at most one
# per grid row; assumed: every row yields a readable counterfactual (an upper bound), each record about as long as a
# grid point's.
REQUERY_READABLE_SHARE = 1.0
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


def effort(sampling: dict[str, Any], max_tokens: int) -> str | None:
    """The reasoning effort a catalog entry asks for: its `reasoning_effort`, else the effort whose budget share is
    nearest its `thinking_budget`, else None (the model's default)."""
    if sampling.get("reasoning_effort") is not None:
        return str(sampling["reasoning_effort"])
    if sampling.get("thinking") is False:
        return "none"
    budget = sampling.get("thinking_budget")
    if budget is None:
        return None
    share = budget / max(max_tokens, 1)
    return BUDGET_SHARE_EFFORT[min(BUDGET_SHARE_EFFORT, key=lambda s: abs(s - share))]


def thinking_tokens(model_id: str, sampling: dict[str, Any], max_tokens: int) -> tuple[bool, float, float]:
    """(thinks, thinking tokens per reference answer, per prediction) of a catalog entry's settings."""
    level = effort(sampling, max_tokens)
    if level == "none":
        return False, 0.0, 0.0
    thinks = bool(sampling.get("thinking")) or level is not None or model_id.startswith(("gpt-5", "o1", "o3", "o4"))
    default = not thinks and model_id in SIM_DEFAULT_THINKING
    if default:
        return True, *SIM_DEFAULT_THINKING[model_id]
    if not thinks:
        return False, 0.0, 0.0
    scale = SIM_EFFORT_SCALE.get(level, 1.0) if level else 1.0
    for prefix, (reference, prediction) in SIM_THINKING_TOKENS.items():
        if model_id.startswith(prefix):
            return True, reference * scale, prediction * scale
    share = min(REASONING_MODEL_SHARE_OF_MAX * scale, 1.0) * max_tokens
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
    predictor_requests: dict[str, int]  # per condition (every condition some reference has), repeats included
    predictor_prompt_tokens: dict[str, float]  # per condition, repeats included, without explanation or thinking
    testability_prompt_tokens: float = 0.0  # all pairs' rating prompts, without the explanation (0: rubric off)


def sim_prompts(sim: dict[str, Any], eval_set: Any) -> SimPrompts:
    """Render every reference question, every predictor question (under every condition some reference's predictors
    answer) and, with the testability rubric on, every rating prompt of the eval set with the real templates."""
    from selfexplain.prompts import load_template
    from selfexplain.simulatability.answers import questions
    from selfexplain.simulatability.config import all_conditions
    from selfexplain.simulatability.prompts import (
        PREDICTOR_TEMPLATES,
        REFERENCE_TEMPLATES,
        predictor_fields,
        reference_fields,
    )
    from selfexplain.simulatability.testability import TEMPLATE as TESTABILITY_TEMPLATE

    prompt_dir = REPO / sim["prompt_dir"]
    table = questions(eval_set)
    chars = 0
    for dataset, answer_first, question in zip(table["dataset"], table["answer_first"], table["question"], strict=True):
        template = load_template(prompt_dir, REFERENCE_TEMPLATES[bool(answer_first)], dataset)
        chars += len(template.render(reference_fields(dataset, question)))
    fields = [
        (pair.dataset, predictor_fields(pair.dataset, pair.centre_text, pair.centre_label, pair.counterfactual_text))
        for pair in eval_set.itertuples(index=False)
    ]
    requests: dict[str, int] = {}
    tokens: dict[str, float] = {}
    for condition in all_conditions(sim):
        chars_c = sum(
            len(load_template(prompt_dir, PREDICTOR_TEMPLATES[condition], dataset).render(f)) for dataset, f in fields
        )
        requests[condition] = len(eval_set) * sim["repeats"]
        tokens[condition] = chars_c / CHARS_PER_TOKEN * sim["repeats"]
    rating_chars = 0
    if sim["testability"]["enabled"]:
        rating_chars = sum(len(load_template(prompt_dir, TESTABILITY_TEMPLATE, d).render(f)) for d, f in fields)
    return SimPrompts(
        eval_rows=eval_set["dataset"].value_counts(sort=False).to_dict(),
        questions=len(table),
        reference_prompt_tokens=chars / CHARS_PER_TOKEN,
        pairs=len(eval_set),
        predictor_requests=requests,
        predictor_prompt_tokens=tokens,
        testability_prompt_tokens=rating_chars / CHARS_PER_TOKEN,
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


def sim_job(rule: str, model: SimModel, reference: SimModel, requests: int, prompt: float, answer: float) -> SimJob:
    """A job of `requests` answers of `answer` tokens each (and the bound where each runs to max_tokens)."""
    return SimJob(rule, model, reference, requests, prompt, requests * answer, requests * model.max_tokens)


def reference_job(model: SimModel, prompts: SimPrompts) -> SimJob:
    answer = SIM_REFERENCE_ANSWER_TOKENS + model.reference_thinking
    return sim_job("sim_reference", model, model, prompts.questions, prompts.reference_prompt_tokens, answer)


def predictor_job(model: SimModel, reference: SimModel, prompts: SimPrompts, conditions: list[str]) -> SimJob:
    """The predictor's questions on `reference` under `conditions` (`config.conditions_for`). Every pair's centre
    assumed readable (an upper bound: the original kept about 6,000-7,000 of 7,000); a cot prompt shows the centre
    answer's thinking, assumed as long as the reference's thinking per answer."""
    requests, prompt = 0, 0.0
    for condition in conditions:
        n = prompts.predictor_requests[condition]
        shown = {"with_explanation": SIM_EXPLANATION_TOKENS, "cot": reference.reference_thinking}.get(condition, 0.0)
        if condition == "cot" and not reference.thinks:
            continue  # no thinking to show: those rows are skipped
        requests += n
        prompt += prompts.predictor_prompt_tokens[condition] + n * shown
    answer = SIM_PREDICTION_TOKENS + model.prediction_thinking
    return sim_job("sim_predict", model, reference, requests, prompt, answer)


def testability_job(model: SimModel, reference: SimModel, prompts: SimPrompts) -> SimJob:
    """The rater's 0-10 ratings of `reference`'s explanations: one request per pair (an upper bound: pairs whose
    centre answer is unreadable or has no explanation are skipped), its prompt the rubric with the explanation."""
    n = prompts.pairs
    prompt = prompts.testability_prompt_tokens + n * SIM_EXPLANATION_TOKENS
    return sim_job("sim_testability", model, reference, n, prompt, SIM_RATING_TOKENS + model.prediction_thinking)


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


SIM_ROLES = {"sim_reference": "reference", "sim_predict": "predictor", "sim_testability": "rater (testability)"}


@dataclass(frozen=True)
class Part:
    """What an optional part of the reproduction adds: requests, GPU-hours (H100) and API cost (USD)."""

    requests: float = 0.0
    gpu_hours: float = 0.0
    api_cost: float = 0.0

    def __add__(self, other: Part) -> Part:
        return Part(self.requests + other.requests, self.gpu_hours + other.gpu_hours, self.api_cost + other.api_cost)

    def __sub__(self, other: Part) -> Part:
        return Part(self.requests - other.requests, self.gpu_hours - other.gpu_hours, self.api_cost - other.api_cost)


def job_part(job: SimJob) -> Part:
    return Part(job.requests, job_gpu_hours(job), api_cost(job) or 0.0)


def sim_parts(sim_jobs: list[SimJob], compared: list[str], base_job: Any) -> dict[str, Part]:
    """The simulatability study's optional parts, each job counted once: the testability ratings; everything of the
    comparison-only references (answers and predictions, extra conditions included); and, for the other references,
    what their `side.extra_conditions` add to a predictor job (the job minus `base_job(job)`, the same job under
    `conditions` only; engine start and drain are paid anyway)."""
    parts = {"testability": Part(), "comparison references": Part(), "extra conditions": Part()}
    for job in sim_jobs:
        if job.rule == "sim_testability":
            parts["testability"] += job_part(job)
        elif job.reference.name in compared:
            parts["comparison references"] += job_part(job)
        elif job.rule == "sim_predict":
            parts["extra conditions"] += job_part(job) - job_part(base_job(job))
    return parts


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
    from selfexplain.simulatability.config import comparison_only_references, conditions_for, run_references
    from selfexplain.simulatability.pairs import sample_eval_set

    sim = sim_config(args.configfile)["simulatability"]
    ref_names = [j["reference"] for j in jobs if j["rule"] == "sim_reference"]
    pred_pairs = [(j["reference"], j["predictor"]) for j in jobs if j["rule"] == "sim_predict"]
    rated = [(j["reference"], j["predictor"]) for j in jobs if j["rule"] == "sim_testability"]
    if not ref_names:
        return {"lines": [], "parts": {}}
    pairs, sources = sim_pairs(sim, args.fixtures)
    eval_cfg = sim["eval_set"]
    eval_set = sample_eval_set(pairs, eval_cfg["size"], eval_cfg["unit"], eval_cfg["seed"])
    prompts = sim_prompts(sim, eval_set)
    # config order (the dry run lists jobs in no fixed order)
    runs, compared = run_references(sim), comparison_only_references(sim)
    ref_names = sorted(ref_names, key=runs.index)
    pred_pairs = sorted(pred_pairs, key=lambda rp: (sim["predictors"].index(rp[1]), runs.index(rp[0])))
    rated = sorted(rated, key=lambda rp: runs.index(rp[0]))
    names = [*ref_names, *(p for _, p in pred_pairs), *(p for _, p in rated)]
    models = {n: sim_model(n, catalog[n]) for n in dict.fromkeys(names)}
    sim_jobs = [reference_job(models[r], prompts) for r in ref_names]
    sim_jobs += [predictor_job(models[p], models[r], prompts, conditions_for(sim, r)) for r, p in pred_pairs]
    sim_jobs += [testability_job(models[p], models[r], prompts) for r, p in rated]

    def base_job(job: SimJob) -> SimJob:
        return predictor_job(job.model, job.reference, prompts, sim["conditions"])

    parts = sim_parts(sim_jobs, compared, base_job)

    rows = prompts.eval_rows
    extra: dict[tuple[str, ...], list[str]] = collections.defaultdict(list)
    for condition, names_c in sim["side"]["extra_conditions"].items():
        extra[tuple(names_c)].append(condition)
    per_condition = prompts.pairs * sim["repeats"]
    job_sizes = sorted({sum(prompts.predictor_requests[c] for c in conditions_for(sim, r)) for r in runs})
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
        f"tokens each on average. A predictor job asks {per_condition:,} questions per condition (repeats "
        f"{sim['repeats']}): {' and '.join(sim['conditions'])} for every reference"
        + "".join(
            f", plus {' and '.join(cs)} for {', '.join(refs)} (`side.extra_conditions`)" for refs, cs in extra.items()
        )
        + f", so {' or '.join(f'{n:,}' for n in job_sizes)} questions per job, assuming every centre answer is "
        "readable (an upper bound: the original kept about 6,000-7,000 of 7,000 pairs per predictor). Prompt "
        "tokens per question without what the reference wrote: "
        + ", ".join(
            f"{c} {prompts.predictor_prompt_tokens[c] / max(n, 1):,.0f}" for c, n in prompts.predictor_requests.items()
        )
        + f". A with-explanation prompt adds the explanation, assumed {SIM_EXPLANATION_TOKENS} tokens; a cot prompt "
        "adds the reference's thinking on the centre question, assumed as long as the reference's thinking per "
        "answer (next table: 1,200 tokens for Qwen3) and present on every centre answer (rows without it are "
        "skipped); a no_reference prompt shows the counterfactual alone.",
        "",
    ]
    if compared:
        lines += [
            f"Models named only in `compare_references` ({', '.join(compared)}) answer like the references and every "
            "predictor predicts them under their conditions, for the McNemar comparison only (they stay out of the "
            "summary): `comparison reference` rows below. Their thinking per answer scales the model's "
            "medium-effort figure by its effort ("
            + ", ".join(f"{k} {v:g}x" for k, v in SIM_EFFORT_SCALE.items())
            + "; a Claude thinking budget counts as the effort whose OpenRouter share of max_tokens is nearest: "
            + ", ".join(f"{v} {k:.0%}" for k, v in BUDGET_SHARE_EFFORT.items())
            + "; assumption).",
            "",
        ]
    if rated:
        raters = ", ".join(dict.fromkeys(p for _, p in rated))
        lines += [
            f"Testability rubric (`sim_testability`): {raters} rates each pair of {len(rated)} references once, "
            f"{prompts.pairs:,} requests per job (an upper bound: pairs whose centre answer is unreadable or "
            f"unexplained are skipped), {prompts.testability_prompt_tokens / max(prompts.pairs, 1):,.0f} prompt "
            f"tokens per rating plus the explanation ({SIM_EXPLANATION_TOKENS}), a {SIM_RATING_TOKENS}-token reply "
            "plus the rater's thinking per prediction.",
            "",
        ]

    # Per model and role.
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for job in sim_jobs:
        comparison = job.rule == "sim_reference" and job.model.name in compared
        role = "comparison reference" if comparison else SIM_ROLES[job.rule]
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
        thinking = m.reference_thinking if role.endswith("reference") else m.prediction_thinking
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
    other_jobs = [j for j in sim_jobs if j.rule != "sim_predict"]  # references and testability ratings
    other_gpu = sum(job_gpu_hours(j) for j in other_jobs)
    other_longest = max(
        (inference_hours(j.model, j.prompt_tokens, j.output_tokens)
         + overhead_hours(j.model, j.output_tokens / max(j.requests, 1))
         for j in other_jobs if j.model.backend == "vllm"),
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
        "other_gpu_hours": other_gpu,
        "other_longest": other_longest,
        "groups": groups,
        "slow_start": slow_start,
        "api_cost": total_cost,
        "parts": parts,
        "requests": float(sum(j.requests for j in sim_jobs)),
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


# Inference rules (those with `api_<provider>` resources) this script estimates; any other one in the DAG stops it, so
# a new inference rule cannot be left out of the totals unnoticed.
ESTIMATED_RULES = ("sce_predict", "sce_elicit", "sce_requery", "sim_reference", "sim_predict", "sim_testability")


def unestimated_rules(jobs: list[dict[str, str]]) -> list[str]:
    """Inference rules of the DAG (jobs with an `api_<provider>` resource) that have no estimate here."""
    inference = {j["rule"] for j in jobs if any(key.startswith("res_api_") for key in j)}
    return sorted(inference - set(ESTIMATED_RULES))


@dataclass
class SceInference:
    """The sce study's inference: per-model rows, each GPU job's hours, and what `verify: requery` adds."""

    models: dict[str, dict[str, float]]
    gpu_job_hours: list[float]
    requery: Part
    requery_start_gpu_hours: float  # the flat start-up share of requery's GPU-hours

    @property
    def gpu_hours(self) -> float:
        return sum(row["gpu_hours"] for row in self.models.values())

    @property
    def api_cost(self) -> float:
        return sum(row["cost"] for row in self.models.values())


def sce_inference(jobs: list[dict[str, str]], config: dict, catalog: dict) -> SceInference:
    models: dict[str, dict[str, Any]] = collections.defaultdict(lambda: collections.defaultdict(float))
    gpu_jobs: list[float] = []
    requery, requery_start = Part(), 0.0
    for job in jobs:
        if job["rule"] not in ("sce_predict", "sce_elicit", "sce_requery"):
            continue
        raw = catalog[job["model"]]
        row = models[job["model"]]
        requests, prompt, output = job_tokens(job, config, catalog)
        row["jobs"] += 1
        row["requests"] += requests
        row["prompt_tokens"] += prompt
        row["output_tokens"] += output
        row["backend"] = raw["backend"]
        gpus = int(job.get("res_gpu", raw.get("gpus", 0)) or 0)
        row["gpus_per_job"] = gpus
        hours, cost = 0.0, 0.0
        if raw["backend"] == "vllm" and gpus:
            scale = 70.0 / params_b(raw["model_id"])
            seconds = prompt / (PREFILL_PER_GPU_70B * scale * gpus) + output / (DECODE_PER_GPU_70B * scale * gpus)
            hours = (seconds / 3600 + STARTUP_HOURS) * gpus
            gpu_jobs.append(hours / gpus)
        prices = raw.get("prices") or {}
        if raw["backend"] != "vllm" and {"input_per_mtok", "output_per_mtok"} <= set(prices):
            cost = (prompt * prices["input_per_mtok"] + output * prices["output_per_mtok"]) / 1e6
            row["priced"] = True
        row["gpu_hours"] += hours
        row["cost"] += cost
        if job["rule"] == "sce_requery":
            requery += Part(requests, hours, cost)
            requery_start += STARTUP_HOURS * gpus if hours else 0.0
    return SceInference(dict(models), gpu_jobs, requery, requery_start)


def sce_lines(sce: SceInference) -> list[str]:
    lines = [
        "## Inference per model",
        "",
        "Prompt tokens are counted from the rendered prompts (4 characters per token); output tokens assume "
        f"{ANSWER_TOKENS['first']} per first answer, {ANSWER_TOKENS['followup']} per counterfactual "
        f"({ANSWER_TOKENS['reasoning_prompt']} for the minimal_reasoning prompt) and, for thinking and "
        "reasoning models, "
        f"{REASONING_MODEL_SHARE_OF_MAX:.0%} of max_tokens per answer. `verify: requery` (`sce_requery`) asks the "
        "first-pass question again on every readable counterfactual of a (model, grid, prompt) run, in a fresh chat "
        "(the first-pass template filled with the counterfactual's record); assumed: "
        f"{REQUERY_READABLE_SHARE:.0%} of the grid's rows yield one (an upper bound: at most one per row), each as "
        "long as a grid point's record, answered like a first-pass question (thinking models: "
        f"{REASONING_MODEL_SHARE_OF_MAX:.0%} of max_tokens, as above). API cost is tokens times the catalog's "
        "list prices.",
        "",
        "| model | backend | jobs | GPUs per job | requests (k) | prompt tokens (M) | output tokens (M) "
        "| GPU-hours (H100) | API cost (USD) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in sce.models.items():
        vllm = row["backend"] == "vllm"
        gpu_hours = f"{row['gpu_hours']:.1f}" if vllm else "API"
        cost = "-" if vllm else (f"{row['cost']:,.0f}" if row.get("priced") else "no price")
        lines.append(
            f"| {name} | {row['backend']} | {int(row['jobs'])} | {int(row['gpus_per_job'])} | "
            f"{row['requests'] / 1e3:,.0f} | {row['prompt_tokens'] / 1e6:.2f} | {row['output_tokens'] / 1e6:.2f} | "
            f"{gpu_hours} | {cost} |"
        )
    lines += [
        f"| **total** | | | | | | | **{sce.gpu_hours:.1f}** | **{sce.api_cost:,.0f}** |",
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
    return lines


PART_WALL_CLOCK_GPUS = 8  # the cluster size of the optional parts' wall-clock column
PART_NOTES = {
    "requery": "`sce.verify: [lookup]` (drops `sce_requery`)",
    "testability": "`simulatability.testability.enabled: false`",
    "comparison references": "drop the pairs from `simulatability.compare_references`",
    "extra conditions": "empty `simulatability.side.extra_conditions`",
}


def part_lines(parts: dict[str, Part], total: Part, plan: Plan, gpus: int) -> list[str]:
    """The optional parts' cost, each on its own, and the reproduction without any of them."""
    core = total - sum(parts.values(), Part())
    lines = [
        "## Optional parts",
        "",
        "What each optional part of the config adds to the totals above (each job counted once: the comparison-only "
        "references with everything their predictors answer; for the other references, only the extra conditions' "
        "questions in predictor jobs that run anyway, so no engine start). Wall-clock: the GPU lower bound on "
        f"{gpus} GPUs, one predictor engine per job.",
        "",
        f"| part | how to leave it out | requests (k) | GPU-hours (H100) | API cost (USD) | wall-clock on {gpus} GPUs "
        "saved (h) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, part in parts.items():
        saved = plan.wall_clock(gpus) - wall_clock(plan.gpu_hours - part.gpu_hours, plan.longest, gpus)
        lines.append(
            f"| {name} | {PART_NOTES[name]} | {part.requests / 1e3:,.0f} | {part.gpu_hours:.1f} | "
            f"{part.api_cost:,.0f} | {saved:.1f} |"
        )
    core_wall = wall_clock(core.gpu_hours, plan.longest, gpus)
    lines += [
        f"| **without all of them** | | {core.requests / 1e3:,.0f} | {core.gpu_hours:.1f} | {core.api_cost:,.0f} | "
        f"{core_wall:.1f} h in all |",
        f"| **total** | | {total.requests / 1e3:,.0f} | {total.gpu_hours:.1f} | {total.api_cost:,.0f} | "
        f"{plan.wall_clock(gpus):.1f} h in all |",
        "",
    ]
    return lines


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
    missing = unestimated_rules(jobs)
    if missing:
        raise SystemExit(f"inference rule(s) {missing} in the DAG have no estimate: add them to scripts/scaling.py")
    per_rule = collections.Counter(j["rule"] for j in jobs)
    sce = sce_inference(jobs, config, catalog)
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
        f"Every inference rule is estimated below: {', '.join(f'`{r}`' for r in ESTIMATED_RULES if per_rule.get(r))}.",
        "",
        *sce_lines(sce),
    ]
    sim = simulatability_sections(args, jobs, catalog)
    lines += sim["lines"]
    sce_longest = max(sce.gpu_job_hours, default=0.0)
    plans = predictor_plans(sim, sce.gpu_hours, sce_longest)
    per_job = plans["per job"]
    sim_cost = sim.get("api_cost", 0.0)
    lines += [
        "## Wall-clock on a cluster with N GPUs",
        "",
        "Both studies; jobs run side by side as GPUs allow and a job cannot be shorter than its own run time (a lower "
        "bound: queueing and the order of dependent jobs add to it). Total GPU-hours: "
        f"{per_job.gpu_hours:.1f} (sce {sce.gpu_hours:.1f}, simulatability "
        f"{per_job.gpu_hours - sce.gpu_hours:.1f}) with one predictor engine per job, as the rules run it; the "
        "other columns are the alternatives of the predictor-engine decision below. API cost: "
        f"{sce.api_cost + sim_cost:,.0f} USD (sce {sce.api_cost:,.0f}, simulatability {sim_cost:,.0f}).",
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
    parts = {"requery": sce.requery, **sim["parts"]}
    parts = {name: part for name, part in parts.items() if part != Part()}
    if parts:
        requests = sum(row["requests"] for row in sce.models.values()) + sim.get("requests", 0.0)
        total = Part(requests, per_job.gpu_hours, sce.api_cost + sim_cost)
        lines += part_lines(parts, total, per_job, PART_WALL_CLOCK_GPUS)
        if sce.requery_start_gpu_hours:
            lines[-1:-1] = [
                "",
                f"Of requery's GPU-hours, {sce.requery_start_gpu_hours:.1f} are the sce table's flat "
                f"{STARTUP_HOURS * 60:.0f}-minute start per GPU job; at the engine starts estimated for the "
                "simulatability jobs (1-3 minutes) most of that goes.",
            ]
    if sim.get("groups"):  # the decision needs vLLM predictors
        slow = predictor_plans({**sim, "groups": sim["slow_start"]}, sce.gpu_hours, sce_longest)
        lines += decision_lines(sim, plans, slow)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    summary = [
        f"{sum(per_rule.values())} jobs",
        f"{per_job.gpu_hours:.1f} GPU-hours (sce {sce.gpu_hours:.1f})",
        *(f"{name}: {plan.gpu_hours:.1f}" for name, plan in list(plans.items())[1:]),
        f"API ${sce.api_cost + sim_cost:,.0f} (sce ${sce.api_cost:,.0f})",
        f"{PART_WALL_CLOCK_GPUS} GPUs: {per_job.wall_clock(PART_WALL_CLOCK_GPUS):.1f} h",
        *(f"{n}: {p.gpu_hours:.1f} GPU-h, ${p.api_cost:,.0f}" for n, p in parts.items()),
    ]
    print(f"wrote {args.out} ({'; '.join(summary)})")


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
    base = sce_gpu_hours + sim.get("other_gpu_hours", 0.0)
    floor = max(sce_longest, sim.get("other_longest", 0.0))
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
