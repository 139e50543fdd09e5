"""Time and peak memory of sce scoring on a 100,000-point grid with 10,000 counterfactuals.

Targets: `selfexplain.sce.scoring.score_table(spec, grid, table, metric, resamples=1000, seed=0)` runs in under
10 s and under 1 GB peak RSS, for each of the gower, l1 and l2 distances.

The data are built in code: a 4-feature spec (10 x 10 x 10 x 100 levels, one of them categorical), its grid, a
synthetic model that labels every grid point by a threshold on a weighted sum (~1 % unreadable answers), and a
counterfactuals table with one row per grid point, of which 10,000 carry a counterfactual: a random grid point
near the original, ~2 % of them moved off the grid and ~2 % with a missing (NaN) feature. The other rows have NaN
counterfactual values and cf_status "no_json", as when a model gives no counterfactual.

Each metric is measured in a fresh subprocess (`bench_scoring.py --child METRIC`), so its peak RSS
(getrusage(RUSAGE_SELF).ru_maxrss at the end) belongs to that scoring call alone; the baseline RSS after imports
and data building is reported next to it. `--profile` adds a cProfile listing of each scoring call (its times
are then inflated by the profiler).

Usage: .venv/bin/python benchmarks/bench_scoring.py [--metrics gower l1 l2] [--resamples 1000] [--profile]
Never fails on a missed target: it prints the figures and whether the targets were met, and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 10.0
TARGET_RSS_MB = 1024.0
N_COUNTERFACTUALS = 10_000
RESULT_TAG = "BENCH_SCORING_RESULT "

SPEC = {
    "name": "bench_grid",
    "options": ["No", "Yes"],
    "features": [
        {
            "column": "a",
            "key": "a",
            "kind": "integer",
            "levels": {"start": 0, "stop": 9},
            "description": "- a: {label}",
        },
        {
            "column": "b",
            "key": "b",
            "kind": "ordinal",
            "levels": {"start": 10, "stop": 100, "step": 10},
            "description": "- b: {label}",
        },
        {
            "column": "c",
            "key": "c",
            "kind": "categorical",
            "levels": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "labels": [f"colour {i}" for i in range(1, 11)],
            "description": "- c: {label}",
        },
        {
            "column": "d",
            "key": "d",
            "kind": "integer",
            "levels": {"start": 0, "stop": 99},
            "description": "- d: {label}",
        },
    ],
}
# Synthetic model: "Yes" when sum of weight * scaled value > THRESHOLD (categorical: weight * [level in POSITIVE_C]).
WEIGHTS = {"a": 0.3, "b": 0.2, "c": 0.2, "d": 0.3}
POSITIVE_C = (2, 5, 7, 9)
THRESHOLD = 0.5


def build_data(seed: int = 0):
    """(spec, grid, table): the full grid answered by a threshold model, 10,000 rows with a counterfactual."""
    import numpy as np
    import pandas as pd

    from selfexplain.sce import tables as T
    from selfexplain.tabular.features import parse_dataset_spec
    from selfexplain.tabular.grids import build_grid

    rng = np.random.default_rng(seed)
    spec = parse_dataset_spec(SPEC, "bench_scoring.py")
    grid = build_grid(spec)
    n = len(grid)
    assert n == 100_000, n

    score = np.zeros(n)
    for f in spec.features:
        col = grid[f.column].to_numpy()
        if f.is_categorical:
            score += WEIGHTS[f.column] * np.isin(col, POSITIVE_C)
        else:
            score += WEIGHTS[f.column] * (col - min(f.levels)) / (max(f.levels) - min(f.levels))
    options = np.asarray(spec.options, dtype=object)
    answer = options[(score > THRESHOLD).astype(int)]
    unreadable = rng.random(n) < 0.01
    answer[unreadable] = None
    random_target = options[rng.integers(0, 2, n)]
    target = np.where(unreadable, random_target, np.where(answer == options[0], options[1], options[0]))

    # Counterfactuals: level positions of the original point, each moved by a few steps (categorical: a 30 % chance
    # of another level), then ~2 % pushed off the grid and ~2 % given a missing feature.
    cf = np.full((n, len(spec.features)), np.nan)
    cf_status = np.full(n, "no_json", dtype=object)
    chosen = rng.choice(n, size=N_COUNTERFACTUALS, replace=False)
    rest = chosen.copy()
    positions = np.empty((len(chosen), len(spec.features)), dtype=np.int64)
    for j in range(len(spec.features) - 1, -1, -1):
        size = len(spec.features[j].levels)
        positions[:, j] = rest % size
        rest //= size
    for j, f in enumerate(spec.features):
        levels = np.asarray(f.levels)
        if f.is_categorical:
            switch = rng.random(len(chosen)) < 0.3
            pos = np.where(switch, rng.integers(0, len(levels), len(chosen)), positions[:, j])
        else:
            pos = np.clip(positions[:, j] + rng.integers(-3, 4, len(chosen)), 0, len(levels) - 1)
        cf[chosen, j] = levels[pos]
    cf_status[chosen] = "ok"
    kind = rng.random(len(chosen))
    off_grid, missing = chosen[kind < 0.02], chosen[(kind >= 0.02) & (kind < 0.04)]
    cf[off_grid, len(spec.features) - 1] += 0.5
    cf[missing, rng.integers(0, len(spec.features), len(missing))] = np.nan
    cf_status[missing] = "missing_feature"

    table = pd.DataFrame(
        {
            T.ROW_ID: grid["id"].to_numpy(dtype=np.int64),
            T.ANSWER: answer,
            T.ANSWER_STATUS: np.where(unreadable, "no_json", "ok"),
            T.TARGET: target,
            T.TARGET_SOURCE: np.where(unreadable, "random", "complement"),
            T.CF_STATUS: cf_status,
            **{name: cf[:, j] for j, name in enumerate(T.cf_columns(spec))},
            T.CF_EXTRA_KEYS: "",
        }
    )
    return spec, grid, table


def child(metric: str, resamples: int, seed: int, profile: bool) -> int:
    """Build the data, score it once with `metric`, print one JSON result line (and a profile when asked)."""
    import resource

    t0 = time.perf_counter()
    sys.path.insert(0, str(REPO / "src"))
    import scipy.spatial  # noqa: F401  (imported lazily by the scorer; counted with the imports, not the scoring)

    from selfexplain.sce.scoring import score_table

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    spec, grid, table = build_data(seed)
    t_build = time.perf_counter() - t0
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    rows, metrics = score_table(spec, grid, table, metric, resamples=resamples, seed=seed)
    elapsed = time.perf_counter() - t0
    if profiler is not None:
        import pstats

        profiler.disable()
        for key in ("cumulative", "tottime"):
            print(f"--- cProfile of score_table({metric!r}), top 15 by {key} ---")
            pstats.Stats(profiler, stream=sys.stdout).sort_stats(key).print_stats(15)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "metric": metric,
        "import_s": t_import,
        "build_s": t_build,
        "score_s": elapsed,
        "baseline_kb": baseline_kb,
        "peak_kb": peak_kb,
        "n_rows": metrics["n_rows"],
        "n_kept": metrics["n_kept"],
        "validity_percent": metrics["validity_percent"],
        "failures": metrics["failures"],
        "rows_with_distance": int(rows["distance"].notna().sum()),
        "rows_with_d_min": int(rows["distance_to_min"].notna().sum()),
    }
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", nargs="+", default=["gower", "l1", "l2"], help="distances to time")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing of each scoring call")
    parser.add_argument("--child", metavar="METRIC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    if args.child:
        return child(args.child, args.resamples, args.seed, args.profile)

    results = []
    for metric in args.metrics:
        opts = ["--resamples", str(args.resamples), "--seed", str(args.seed), *(["--profile"] if args.profile else [])]
        proc = subprocess.run([sys.executable, __file__, "--child", metric, *opts], capture_output=True, text=True)
        lines = proc.stdout.splitlines()
        tagged = [line for line in lines if line.startswith(RESULT_TAG)]
        if proc.returncode != 0 or not tagged:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"scoring child for {metric!r} failed with exit code {proc.returncode}")
        if args.profile:
            print("\n".join(line for line in lines if not line.startswith(RESULT_TAG)))
        results.append(json.loads(tagged[-1][len(RESULT_TAG) :]))
        print(f"{metric}: {results[-1]['score_s']:.2f} s", flush=True)

    first = results[0]
    print(
        f"\nbench_scoring: grid {first['n_rows']:,} points, {N_COUNTERFACTUALS:,} counterfactuals, "
        f"resamples={args.resamples}, seed={args.seed}" + (" (profiled: times inflated)" if args.profile else "")
    )
    print(
        f"{os.cpu_count()} CPUs; 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
        "(after includes this benchmark; other work on the machine distorts the times)"
    )
    print("metric   import_s  build_s  score_s  baseline_MB  peak_MB  score_delta_MB  n_kept  validity_%")
    for r in results:
        base, peak = r["baseline_kb"] / 1024, r["peak_kb"] / 1024
        print(
            f"{r['metric']:<8} {r['import_s']:>8.2f} {r['build_s']:>8.2f} {r['score_s']:>8.2f} {base:>12.0f} "
            f"{peak:>8.0f} {peak - base:>15.0f} {r['n_kept']:>7} {r['validity_percent']:>11.1f}"
        )
    print("(baseline: peak RSS after imports + data build; peak: peak RSS of the child process after scoring)")
    print(f"failures ({first['metric']}): {first['failures']}")
    print(f"rows with a distance: {first['rows_with_distance']:,}, with x_min: {first['rows_with_d_min']:,}")

    print()
    for r in results:
        time_ok, rss_ok = r["score_s"] < TARGET_S, r["peak_kb"] / 1024 < TARGET_RSS_MB
        print(
            f"{r['metric']:<6} time {r['score_s']:.2f} s < {TARGET_S:.0f} s: {'MET' if time_ok else 'MISSED'}; "
            f"peak RSS {r['peak_kb'] / 1024:.0f} MB < {TARGET_RSS_MB:.0f} MB: {'MET' if rss_ok else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
