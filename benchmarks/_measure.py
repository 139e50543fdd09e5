"""Shared by the benchmark scripts: run a command in a fresh process and measure its whole process tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs argv[2:] (stdout and stderr inherited) and writes {"rc", "wall_s", "cpu_s", "maxrss_kb"} as JSON to argv[1]:
# RUSAGE_CHILDREN of this fresh process covers exactly the command's process tree.
_WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": rc, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}, fh)
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


def run_child(cmd: list[str], cwd: Path, log: Path, tag: str) -> dict:
    """`run_measured` for a benchmark child that prints one `tag + JSON` line: that JSON, plus the wall and CPU time
    and peak RSS of the child's process tree (`wall_s`, `cpu_s`, `tree_peak_kb`). Exits when the child fails."""
    measured = run_measured(cmd, cwd, log)
    tagged = [line for line in measured["log"].splitlines() if line.startswith(tag)]
    if measured["rc"] != 0 or not tagged:
        print(measured["log"][-4000:], file=sys.stderr)
        raise SystemExit(f"benchmark child failed with exit code {measured['rc']}")
    result = json.loads(tagged[-1][len(tag) :])
    return {**result, "wall_s": measured["wall_s"], "cpu_s": measured["cpu_s"], "tree_peak_kb": measured["maxrss_kb"]}
