"""Wall time, job count and peak memory of the default workflow, from empty outputs in a temporary directory.

Target: the default config (config/config.yaml) runs end to end in under 90 s on 2 cores.

Each repeat copies config/ into a fresh temporary directory and runs
    <venv>/bin/snakemake -s <repo>/Snakefile -d <tmp> --cores N
there (the workflow profile profiles/default loads automatically), then runs it a second time, which must find
"Nothing to be done". Peak RSS is that of the whole snakemake process tree: each command runs under a small Python
wrapper that reads resource.getrusage(RUSAGE_CHILDREN).ru_maxrss once the command has exited (the largest single
process of the tree, not a sum). Per-rule figures are the `s` column of the benchmark TSVs Snakemake writes under
<tmp>/benchmarks/<rule>/.

Usage: .venv/bin/python benchmarks/bench_workflow.py [--repeat N] [--cores 2] [--keep]
Never fails on a missed target: it prints the figures and whether the target was met, and exits 0
(non-zero only when snakemake itself fails).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TARGET_S = 90.0

# Runs argv[2:], with stdout and stderr inherited, and writes {"rc", "wall_s", "maxrss_kb"} as JSON to argv[1].
_WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t0
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": rc, "wall_s": wall, "maxrss_kb": maxrss}, fh)
"""


def run_measured(cmd: list[str], cwd: Path, log: Path) -> dict:
    """Run `cmd` in a fresh wrapper process; wall time and peak RSS (KiB) of its process tree, output to `log`."""
    out = log.with_suffix(".rusage.json")
    with log.open("w") as fh:
        subprocess.run(
            [sys.executable, "-c", _WRAPPER, str(out), *cmd], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, check=False
        )
    result = json.loads(out.read_text())
    out.unlink()
    result["log"] = log.read_text(errors="replace")
    return result


def steps_done(log_text: str) -> int | None:
    """Last "N of M steps (100%) done" count in a Snakemake log."""
    found = re.findall(r"(\d+) of (\d+) steps? \(\d+%\) done", log_text)
    return int(found[-1][0]) if found else None


def rule_times(workdir: Path) -> pd.DataFrame:
    """Per-rule count, sum and mean of the `s` column over <workdir>/benchmarks/<rule>/**/*.tsv."""
    rows = []
    bench = workdir / "benchmarks"
    for tsv in sorted(bench.glob("*/**/*.tsv")):
        frame = pd.read_csv(tsv, sep="\t")
        rule = tsv.relative_to(bench).parts[0]
        rows += [{"rule": rule, "s": float(s)} for s in frame["s"]]
    if not rows:
        return pd.DataFrame(columns=["rule", "files", "sum_s", "mean_s"])
    frame = pd.DataFrame(rows)
    return (
        frame.groupby("rule")["s"]
        .agg(files="count", sum_s="sum", mean_s="mean")
        .reset_index()
        .sort_values("sum_s", ascending=False)
    )


def one_repeat(index: int, cores: int, keep: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench_workflow_{index}_"))
    try:
        shutil.copytree(REPO / "config", workdir / "config")
        cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", str(cores)]
        full = run_measured(cmd, workdir, workdir / "bench_full.log")
        if full["rc"] != 0:
            print(full["log"][-4000:], file=sys.stderr)
            raise SystemExit(f"snakemake failed with exit code {full['rc']} (repeat {index}, workdir {workdir})")
        noop = run_measured(cmd, workdir, workdir / "bench_noop.log")
        return {
            "repeat": index,
            "wall_s": full["wall_s"],
            "maxrss_kb": full["maxrss_kb"],
            "steps": steps_done(full["log"]),
            "tsv_files": len(list((workdir / "benchmarks").glob("*/**/*.tsv"))),
            "noop_wall_s": noop["wall_s"],
            "noop_maxrss_kb": noop["maxrss_kb"],
            "noop_ok": noop["rc"] == 0 and "Nothing to be done" in noop["log"],
            "rules": rule_times(workdir),
            "workdir": workdir,
        }
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="full runs, each in a fresh temp dir (default 1)")
    parser.add_argument("--cores", type=int, default=2, help="--cores passed to snakemake (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directories")
    args = parser.parse_args(argv)

    results = []
    for i in range(1, args.repeat + 1):
        res = one_repeat(i, args.cores, args.keep)
        results.append(res)
        print(f"repeat {i}: {res['wall_s']:.1f} s" + (f"  (kept {res['workdir']})" if args.keep else ""), flush=True)

    print(f"\nbench_workflow: default config, --cores {args.cores}, snakemake {SNAKEMAKE}")
    print(f"{'repeat':>6} {'wall_s':>8} {'jobs':>5} {'tsvs':>5} {'peak_rss_MB':>11} {'noop_s':>7} {'noop_ok':>7}")
    for r in results:
        print(
            f"{r['repeat']:>6} {r['wall_s']:>8.1f} {r['steps'] or '?':>5} {r['tsv_files']:>5} "
            f"{r['maxrss_kb'] / 1024:>11.0f} {r['noop_wall_s']:>7.1f} {r['noop_ok']!s:>7}"
        )

    print("\nper-rule benchmark TSV seconds (`s` column), repeat 1:")
    rules = results[0]["rules"]
    print(f"{'rule':<20} {'files':>5} {'sum_s':>8} {'mean_s':>7}")
    for row in rules.itertuples(index=False):
        print(f"{row.rule:<20} {row.files:>5} {row.sum_s:>8.1f} {row.mean_s:>7.2f}")

    walls = [r["wall_s"] for r in results]
    best, median = min(walls), statistics.median(walls)
    met = median < TARGET_S
    print(f"\nwall time best {best:.1f} s, median {median:.1f} s; target < {TARGET_S:.0f} s on 2 cores: ", end="")
    print("MET" if met else "MISSED")
    if args.cores != 2:
        print(f"(note: measured with --cores {args.cores}, the target is stated for 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
