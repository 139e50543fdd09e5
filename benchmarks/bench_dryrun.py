"""Wall time of a dry run of the paper configuration (DAG building only, nothing executed).

Target: `snakemake -n --configfile config/paper.yaml` finishes in under 10 s.

Each repeat copies config/ into a fresh temporary directory and runs, from there,
    <venv>/bin/snakemake -s <repo>/Snakefile -d <tmp> -n --configfile config/paper.yaml
(the workflow profile profiles/default loads automatically). Prints best and median wall time, the peak RSS of
the snakemake process tree (resource.getrusage(RUSAGE_CHILDREN) read by a fresh wrapper process) and the job
counts of Snakemake's "Job stats" table.

Usage: .venv/bin/python benchmarks/bench_dryrun.py [--repeat 3] [--configfile config/paper.yaml] [--keep]
Never fails on a missed target: it prints the figures and whether the target was met, and exits 0
(non-zero only when snakemake itself fails).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _measure import run_measured

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TARGET_S = 10.0


def job_stats(log_text: str) -> dict[str, int]:
    """Rule -> count from the first "Job stats:" table of a Snakemake log (its last row is `total`)."""
    counts: dict[str, int] = {}
    lines = log_text.split("Job stats:", 1)[1].splitlines() if "Job stats:" in log_text else []
    for line in lines[1:]:
        m = re.match(r"^(\S+)\s+(\d+)\s*$", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
            if m.group(1) == "total":
                break
        elif counts:
            break
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="dry runs, each in a fresh temp dir (default 3)")
    parser.add_argument("--configfile", default="config/paper.yaml", help="relative to the copied config/'s parent")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directories")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]

    walls, results = [], []
    for i in range(1, args.repeat + 1):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench_dryrun_{i}_"))
        try:
            shutil.copytree(REPO / "config", workdir / "config")
            cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n"]
            res = run_measured([*cmd, "--configfile", args.configfile], workdir, workdir / "bench_dryrun.log")
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        if res["rc"] != 0:
            print(res["log"][-4000:], file=sys.stderr)
            raise SystemExit(f"snakemake -n failed with exit code {res['rc']} in repeat {i}")
        walls.append(res["wall_s"])
        results.append(res)
        print(f"repeat {i}: {res['wall_s']:.2f} s" + (f"  (kept {workdir})" if args.keep else ""), flush=True)

    print(f"\nbench_dryrun: snakemake -n --configfile {args.configfile}, {SNAKEMAKE}")
    print(
        f"{os.cpu_count()} CPUs; 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
        "(after includes this benchmark; other work on the machine distorts the times)"
    )
    print("repeat   wall_s   cpu_s  peak_rss_MB  jobs_total")
    for i, res in enumerate(results, 1):
        total = job_stats(res["log"]).get("total", "?")
        print(f"{i:>6} {res['wall_s']:>8.2f} {res['cpu_s']:>7.2f} {res['maxrss_kb'] / 1024:>12.0f} {total:>11}")

    stats = job_stats(results[0]["log"])
    print("\nJob stats (repeat 1):")
    for rule, count in stats.items():
        print(f"  {rule:<20} {count:>6}")
    if not stats:
        print("  (no 'Job stats' table in the log: nothing to do?)")

    best, median = min(walls), statistics.median(walls)
    verdict = "MET" if median < TARGET_S else "MISSED"
    print(f"\ndry run best {best:.2f} s, median {median:.2f} s; target < {TARGET_S:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
