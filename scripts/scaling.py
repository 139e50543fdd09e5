"""Write docs/scaling.md: jobs per rule, GPU-hours per model and wall-clock on N GPUs for a config, from the DAG.

The job list comes from `snakemake --dry-run` on the config (nothing is typed by hand); token counts come from
rendering the real prompts of every job (about 4 characters per token); GPU throughput comes from the published
figures cited in the output, scaled by model size. Run from the repository root:

    .venv/bin/python scripts/scaling.py --configfile config/paper.yaml --out docs/scaling.md
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, default=REPO / "config/paper.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "docs/scaling.md")
    parser.add_argument("--gpus", default="4,8,16,32", help="cluster sizes for the wall-clock table")
    args = parser.parse_args()

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
        "## Wall-clock on a cluster with N GPUs",
        "",
        "Jobs run side by side as GPUs allow; a job cannot be shorter than its own run time.",
        "",
        "| GPUs | wall-clock (hours) |",
        "| ---: | ---: |",
    ]
    longest = max(gpu_jobs, default=0.0)
    for n in map(int, args.gpus.split(",")):
        lines.append(f"| {n} | {max(total_gpu_hours / n, longest):.1f} |")
    lines += [
        "",
        f"API models add no GPU time; their jobs are bounded by provider rate limits "
        f"(catalog `rate_limits`, `concurrency`). Longest single GPU job: {longest:.2f} h.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} ({sum(per_rule.values())} jobs, {total_gpu_hours:.1f} GPU-hours)")


if __name__ == "__main__":
    main()
