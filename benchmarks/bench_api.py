"""Requests per second of the openai (and anthropic) backend against `selfexplain serve`, and journal overhead.

The server runs in its own process (so client and server do not share a GIL), with no added latency; each
concurrency level sends N distinct first-pass chats through `run_requests` (journal included) into a fresh
journal. The journal overhead is measured apart: appending N completions to a journal and reading it back.
Target: at least 500 requests/s at concurrency 64 on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def start_server(log_dir: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "selfexplain.cli", "serve", "--model", "m=exact", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=log_dir)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def chats(n: int) -> list[tuple[dict, ...]]:
    from selfexplain.llm.catalog import parse_entry
    from selfexplain.prompts import load_template
    from selfexplain.sce.elicit import first_pass_messages
    from selfexplain.tabular.features import load_dataset_spec
    from selfexplain.tabular.grids import build_grid

    out = []
    entry = parse_entry("x", {"backend": "synthetic", "model_id": "x"})
    for dataset in ("income", "heart_disease", "house_prices"):
        spec = load_dataset_spec(dataset)
        template = load_template(REPO / "config/prompts/sce", "first_pass", dataset)
        for description in build_grid(spec)["description"]:
            out.append(tuple(first_pass_messages(entry, spec, template, description)))
    if n > len(out):
        raise SystemExit(f"at most {len(out)} distinct chats")
    return out[:n]


def run_level(backend: str, url: str, messages: list, concurrency: int, workdir: Path) -> tuple[float, dict]:
    from selfexplain.llm.backends import make_backend
    from selfexplain.llm.catalog import parse_entry
    from selfexplain.llm.runner import run_requests
    from selfexplain.llm.types import ChatRequest

    base = url + "/v1" if backend == "openai" else url
    sampling = {"temperature": None} if backend == "anthropic" else {}
    entry = parse_entry(
        f"bench-{concurrency}",
        {"backend": backend, "model_id": "m", "base_url": base, "concurrency": concurrency, "sampling": sampling},
    )
    client = make_backend(entry)
    requests = [ChatRequest(messages=m, sampling=entry.sampling, identity=entry.identity) for m in messages]
    journal = workdir / f"{backend}-{concurrency}.jsonl"
    start = time.perf_counter()
    out = run_requests(client, requests, journal, progress=False)
    elapsed = time.perf_counter() - start
    assert all(c.ok for c in out)
    return len(out) / elapsed, client.stats()


def journal_overhead(n: int, workdir: Path) -> tuple[float, float]:
    from selfexplain.llm.journal import Journal
    from selfexplain.llm.types import Completion

    path = workdir / "overhead.jsonl"
    completion = Completion(
        text='{"answer": "Above $50,000"}',
        finish_reason="stop",
        prompt_tokens=120,
        completion_tokens=8,
        latency_s=0.01,
        model="m",
    )
    start = time.perf_counter()
    with Journal(path) as journal:
        for i in range(n):
            journal.append(f"{i:064x}", completion)
    append_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    reopened = Journal(path)
    reopened.close()
    load_us = (time.perf_counter() - start) / n * 1e6
    return append_us, load_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--backends", default="openai,anthropic")
    args = parser.parse_args()
    print(f"bench_api: {args.requests} requests per level; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    messages = chats(args.requests)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server, url = start_server(workdir)
        try:
            print(f"{'backend':<10} {'conc':>5} {'req/s':>8} {'max_in_flight':>14} {'retries':>8}")
            results = {}
            for backend in args.backends.split(","):
                for level in map(int, args.levels.split(",")):
                    n = min(args.requests, 200) if level == 1 else args.requests
                    rate, stats = run_level(backend, url, messages[:n], level, workdir)
                    results[(backend, level)] = rate
                    print(
                        f"{backend:<10} {level:>5} {rate:>8.0f} {stats.get('max_in_flight', '-'):>14} "
                        f"{stats.get('retries', 0):>8}"
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
        append_us, load_us = journal_overhead(20_000, workdir)
    print(f"journal: append {append_us:.1f} us/request (flushed), reload {load_us:.1f} us/request")
    rate = results.get(("openai", 64))
    if rate is not None:
        print(f"openai at concurrency 64: {rate:.0f} req/s; target >= 500: {'MET' if rate >= 500 else 'MISSED'}")


if __name__ == "__main__":
    main()
