"""Cluster resources of one inference job, from the model's catalog entry and the number of requests.

Rough, deliberately generous figures: a job that runs out of time or memory is retried by Snakemake with
`attempt` + 1, and every figure here grows linearly with the attempt. Requests already answered are in the
journal, so a retry only pays for what is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from selfexplain.llm.catalog import ModelEntry

# Seconds per request and overheads by backend (assumptions, see docs/scaling.md for the GPU figures).
API_SECONDS_PER_REQUEST = 4.0  # a non-reasoning chat answer of a few dozen tokens, incl. queueing
API_REASONING_SECONDS_PER_REQUEST = 30.0
VLLM_STARTUP_MINUTES = 20  # download check, weight loading, CUDA graphs
VLLM_OUTPUT_TOKENS_PER_GPU_SECOND = 500.0  # batched decoding throughput assumed per GPU, conservative
SYNTHETIC_SECONDS_PER_REQUEST = 0.002


@dataclass(frozen=True)
class JobResources:
    mem_mb: int
    runtime: int  # minutes
    cpus_per_task: int


def job_resources(entry: ModelEntry, n_requests: int, attempt: int = 1) -> JobResources:
    if entry.backend == "synthetic":
        per_request = SYNTHETIC_SECONDS_PER_REQUEST + float(entry.synthetic.get("latency_s", 0.0))
        minutes = 5 + n_requests * per_request / 60
        return JobResources(mem_mb=2000 * attempt, runtime=math.ceil(minutes * attempt), cpus_per_task=1)
    if entry.backend == "vllm":
        gpus = max(1, entry.gpus)
        tokens = n_requests * entry.sampling.max_tokens
        minutes = VLLM_STARTUP_MINUTES + tokens / (VLLM_OUTPUT_TOKENS_PER_GPU_SECOND * gpus) / 60
        return JobResources(
            mem_mb=(32000 + 16000 * gpus) * attempt, runtime=math.ceil(minutes * attempt), cpus_per_task=4 * gpus
        )
    reasoning = entry.sampling.reasoning_effort is not None or bool(entry.sampling.thinking)
    per_request = API_REASONING_SECONDS_PER_REQUEST if reasoning else API_SECONDS_PER_REQUEST
    minutes = 10 + n_requests * per_request / max(1, entry.concurrency) / 60
    return JobResources(mem_mb=2000 * attempt, runtime=math.ceil(minutes * attempt), cpus_per_task=2)
