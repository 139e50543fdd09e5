"""Speed at the provider's limit: how close a job runs to the rate limits, and to `concurrency` per second when
answers are slow. Prints figures; not a timed test.

A `selfexplain serve` subprocess enforces requests and tokens per minute like a provider (token buckets holding one
second's worth, 429 with a whole-second Retry-After above them); the job runs through `run_requests` (journal
included) with the catalog's `rate_limits` set to the server's. Figures, from the server's request log:
* sustained: answers per second after the opening burst (the first quarter of the job, at least 2 s) over the
  limit's rate;
* overall: all answers over the whole job's wall time;
* 429 share: requests the server refused over all requests it received.
Targets (issue 9): sustained >= 95 % of the configured limit with < 1 % of requests answered 429; against a
server taking 1 s per answer, >= 95 % of `concurrency` answers per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_api import chats  # noqa: E402  (distinct first-pass chats over the three grids)


def start_server(workdir: Path, log: Path, *args: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "selfexplain.cli", "serve", "--model", "m=exact", "--port", "0"]
    cmd += ["--request-log", str(log), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=workdir)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def run_job(
    backend: str, url: str, messages: list, concurrency: int, limits: dict, journal: Path
) -> tuple[float, dict]:
    from selfexplain.llm.backends import make_backend
    from selfexplain.llm.catalog import parse_entry
    from selfexplain.llm.runner import run_requests

    entry = parse_entry(
        f"bench-{backend}",
        {
            "backend": backend,
            "model_id": "m",
            "base_url": url + "/v1" if backend == "openai" else url,
            "concurrency": concurrency,
            "rate_limits": limits,
            "max_retries": 20,
            "sampling": {"temperature": None, "max_tokens": 1000},
        },
    )
    client = make_backend(entry)
    requests = [entry.request(m) for m in messages]
    start = time.perf_counter()
    out = run_requests(client, requests, journal, progress=False)
    elapsed = time.perf_counter() - start
    assert all(c.ok for c in out)
    return elapsed, client.stats()


def log_figures(log: Path) -> dict:
    """Answers, 429s and the sustained rate: answers per second after the opening burst (the first quarter of the
    job, at least 2 s, when the server's bucket may still hold part of its initial second's worth)."""
    records = [json.loads(line) for line in log.read_text().splitlines()]
    answered = sorted(r["time"] for r in records if r["status"] == 200)
    refused = sum(1 for r in records if r["status"] == 429)
    start, end = answered[0], answered[-1]
    skip_s = max(2.0, (end - start) / 4)
    steady = [t for t in answered if t >= start + skip_s]
    span = end - (start + skip_s)
    return {
        "answers": len(answered),
        "refused": refused,
        "refused_share": refused / len(records),
        "sustained_per_s": (len(steady) - 1) / span if span > 0 and len(steady) > 1 else float("nan"),
    }


def limit_case(
    workdir: Path,
    backend: str,
    name: str,
    rpm: float | None,
    tpm: float | None,
    n: int,
    conc: int,
    client_factor: float = 1.0,
) -> None:
    """A job at the server's limits (`client_factor` > 1: the catalog claims that much more than the server
    allows, a misconfigured account) for `n` requests."""
    from selfexplain.llm.ratelimit import estimate_tokens

    messages = chats(n)
    log = workdir / f"{name}-{backend}.jsonl"
    args = ["--latency", "0.05"]
    limits = {}
    if rpm:
        args += ["--requests-per-minute", str(rpm)]
        limits["requests_per_minute"] = rpm * client_factor
    if tpm:
        args += ["--tokens-per-minute", str(tpm)]
        limits["tokens_per_minute"] = tpm * client_factor
    server, url = start_server(workdir, log, *args)
    try:
        elapsed, stats = run_job(backend, url, messages, conc, limits, workdir / f"{name}-{backend}-journal.jsonl")
    finally:
        server.terminate()
        server.wait(timeout=30)
    tokens = sum(estimate_tokens(m, 1000) for m in messages) / len(messages)
    limit = min(rpm / 60 if rpm else float("inf"), tpm / 60 / tokens if tpm else float("inf"))
    figures = log_figures(log)
    sustained = figures["sustained_per_s"] / limit
    overall = n / elapsed / limit
    met = sustained >= 0.95 and figures["refused_share"] < 0.01
    verdict = ("MET" if met else "MISSED") if client_factor == 1.0 else "(no target)"
    print(
        f"{name:<12} {backend:<9} {limit:>7.1f}/s {figures['sustained_per_s']:>8.1f}/s {sustained:>7.1%} "
        f"{overall:>7.1%} {figures['refused']:>5} {figures['refused_share']:>6.2%} {stats['retries']:>7} "
        f"{verdict}",
        flush=True,
    )


def latency_case(workdir: Path, backend: str, conc: int, rounds: int) -> None:
    """`rounds` answers per worker from a server taking 1 s each: the job's overall rate, the steady rate (answers
    after the first round over the time since it, i.e. how fast a slot is reused) and the start-up cost."""
    n = conc * rounds
    log = workdir / f"slow-{backend}-{conc}.jsonl"
    server, url = start_server(workdir, log, "--latency", "1")
    try:
        elapsed, stats = run_job(backend, url, chats(n), conc, {}, workdir / f"slow-{backend}-{conc}-journal.jsonl")
    finally:
        server.terminate()
        server.wait(timeout=30)
    times = sorted(json.loads(line)["time"] for line in log.read_text().splitlines())
    steady = (n - conc) / (times[-1] - times[conc - 1])
    startup = elapsed - (times[-1] - times[0]) - 1.0
    rate = n / elapsed
    met = rate / conc >= 0.95
    print(
        f"{'1 s/answer':<12} {backend:<9} {conc:>5d} {n:>6d} {rate:>8.1f}/s {rate / conc:>7.1%} "
        f"{steady / conc:>7.1%} {startup:>7.2f} s {stats['max_in_flight']:>5} {'MET' if met else 'MISSED'}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="openai,anthropic")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each limit case (default 20)")
    parser.add_argument("--levels", default="8,64,256", help="concurrency levels of the 1 s/answer case (n <= 5456)")
    parser.add_argument("--rounds", type=int, default=20, help="answers per worker in the 1 s/answer case")
    args = parser.parse_args()
    print(f"bench_limits: {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    s = args.seconds
    # (name, requests per minute, tokens per minute, concurrency, client's limits over the server's); request
    # counts follow from the binding limit.
    cases = [
        ("rpm 600", 600, None, 16, 1.0),
        ("rpm 6000", 6000, None, 64, 1.0),
        ("tpm 1M", None, 1_000_000, 32, 1.0),
        ("gpt4_1", 5000, 2_000_000, 32, 1.0),  # the catalog's limits for gpt4_1: tokens bind
        ("rpm +10%", 600, None, 16, 1.1),  # the catalog claims 10 % more than the server allows
    ]
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(
            f"{'case':<12} {'backend':<9} {'limit':>9} {'sustained':>10} {'of lim':>7} {'overall':>7} "
            f"{'429s':>5} {'share':>6} {'retries':>7}"
        )
        for name, rpm, tpm, conc, factor in cases:
            from selfexplain.llm.ratelimit import estimate_tokens

            tokens = sum(estimate_tokens(m, 1000) for m in chats(300)) / 300
            per_s = min(rpm / 60 if rpm else float("inf"), tpm / 60 / tokens if tpm else float("inf"))
            n = min(int(per_s * s), 4000)
            for backend in backends:
                limit_case(workdir, backend, name, rpm, tpm, n, conc, factor)
        print(
            f"{'case':<12} {'backend':<9} {'conc':>5} {'n':>6} {'overall':>10} {'of conc':>7} {'steady':>7} "
            f"{'start-up':>9} {'in flight':>5}"
        )
        for level in map(int, args.levels.split(",")):
            for backend in backends:
                latency_case(workdir, backend, level, args.rounds)


if __name__ == "__main__":
    main()
