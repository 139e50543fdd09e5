"""Time of the simulatability cluster bootstrap against a faithful re-implementation of the original's algorithm.

Targets: `metrics.compare` (observations table -> every metric with its 95 % CI) on 125,000 observations in 7,000
clusters with B = 1,000 runs in under 0.2 s, and at least 2x faster than the original's algorithm on the same data.

The data is synthetic, built in code: 7 datasets x 1,000 centres (the clusters), 25,000 pairs (every centre has at
least one; the rest drawn at random), 5 predictors per pair (125,000 observations), the reference switching its
answer on ~28 % of pairs, predictors right ~80 % with and ~68 % without the explanation, ~3 % unreadable answers.

The original's algorithm, re-written here in plain Python/numpy as it works: a per-observation Python pass that
skips unreadable answers, compares strings and adds to a dict of 9 counts per (dataset, centre) cluster (in order
of first appearance); `np.random.seed(42)`; per replicate `randint(0, n, n)`, a gather of the cluster rows and one
`np.sum` per count; the metrics from the sums; `np.percentile` per metric. Ours: one factorisation of the answers
and the clusters, `bincount` counts, one (B x clusters) draw, weights by `bincount`, `weights @ counts`, vectorised
metrics and percentiles. The child also runs ours with `bootstrap="original"` and checks that its CIs equal the
re-implementation's bit for bit (`identical`).

Each repeat runs in a fresh subprocess (`bench_bootstrap.py --child`) that builds the data, warms up once, then
times each function `--inner` times (best and median reported); the parent measures the whole child process
(wall, CPU, peak RSS) through `_measure.run_child`.

Usage: .venv/bin/python benchmarks/bench_bootstrap.py [--observations 125000] [--clusters 7000] [--resamples 1000]
       [--repeat 3] [--inner 5]
Never fails on a missed target: it prints the figures and whether the targets were met, and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _measure import run_child  # noqa: E402

TARGET_S = 0.2
TARGET_SPEEDUP = 2.0
RESULT_TAG = "BENCH_BOOTSTRAP_RESULT "
PREDICTORS = 5
DATASETS = 7


def build(observations: int, clusters: int, seed: int = 0):
    """(observations frame, the same rows as Python tuples in file order) of the synthetic study."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    pairs = observations // PREDICTORS
    cluster = np.concatenate([np.arange(clusters), rng.integers(0, clusters, pairs - clusters)])
    rng.shuffle(cluster)
    dataset = np.array([f"dataset_{i}" for i in range(DATASETS)], dtype=object)[cluster % DATASETS]
    centre_row = cluster // DATASETS
    centre = rng.choice(["YES", "NO"], pairs)
    switched = rng.random(pairs) < 0.28
    cf = np.where(switched, np.where(centre == "YES", "NO", "YES"), centre).astype(object)
    cf[rng.random(pairs) < 0.03] = None

    def guess(p_right):
        right = rng.random(observations) < p_right
        truth = np.repeat(np.where(cf == None, "YES", cf), PREDICTORS)  # noqa: E711
        answer = np.where(right, truth, np.where(truth == "YES", "NO", "YES")).astype(object)
        answer[rng.random(observations) < 0.03] = None
        return answer

    with_answer, without_answer = guess(0.80), guess(0.68)
    obs = pd.DataFrame(
        {
            "reference": "synthetic-reference",
            "predictor": np.tile([f"predictor_{i}" for i in range(PREDICTORS)], pairs),
            "dataset": np.repeat(dataset, PREDICTORS),
            "pair_id": np.repeat([f"pair_{i}" for i in range(pairs)], PREDICTORS),
            "centre_row": np.repeat(centre_row, PREDICTORS),
            "reference_centre_answer": pd.array(np.repeat(centre, PREDICTORS), dtype="string"),
            "reference_counterfactual_answer": pd.array(np.repeat(cf, PREDICTORS), dtype="string"),
            "with_explanation": pd.array(with_answer, dtype="string"),
            "without_explanation": pd.array(without_answer, dtype="string"),
            "source_row": np.repeat(np.arange(pairs), PREDICTORS),
        }
    )
    records = list(
        zip(
            obs["dataset"].tolist(),
            obs["centre_row"].tolist(),
            np.repeat(cf, PREDICTORS).tolist(),
            np.repeat(centre, PREDICTORS).tolist(),
            with_answer.tolist(),
            without_answer.tolist(),
            strict=True,
        )
    )
    return obs, records


def original_algorithm(records, resamples: int) -> dict:
    """The original's per-observation pass and per-replicate bootstrap (see the module docstring)."""
    import numpy as np

    clusters: dict = {}
    for dataset, centre_row, cf, centre, with_answer, without_answer in records:
        if not cf or not with_answer or not without_answer:
            continue
        w = with_answer == cf
        wo = without_answer == cf
        stats = clusters.get((dataset, centre_row))
        if stats is None:
            stats = clusters[(dataset, centre_row)] = [0] * 9
        stats[2] += 1
        if w:
            stats[0] += 1
        if wo:
            stats[1] += 1
        if cf != centre:
            stats[5] += 1
            if w:
                stats[3] += 1
            if wo:
                stats[4] += 1
        else:
            stats[8] += 1
            if w:
                stats[6] += 1
            if wo:
                stats[7] += 1
    table = np.array(list(clusters.values()))
    n = len(table)

    def metrics(sample):
        total = np.sum(sample[:, 2])
        acc_w = np.sum(sample[:, 0]) / total * 100
        acc_wo = np.sum(sample[:, 1]) / total * 100
        gain = acc_w - acc_wo
        denom = 100 - acc_wo
        nsg = gain / denom * 100 if denom > 1e-6 else 0.0
        d, s = np.sum(sample[:, 5]), np.sum(sample[:, 8])
        pw = np.sum(sample[:, 3]) / d * 100 if d > 0 else 0.0
        pwo = np.sum(sample[:, 4]) / d * 100 if d > 0 else 0.0
        rw = np.sum(sample[:, 6]) / s * 100 if s > 0 else 0.0
        rwo = np.sum(sample[:, 7]) / s * 100 if s > 0 else 0.0
        return acc_w, acc_wo, gain, nsg, pw, pwo, rw, rwo

    point = metrics(table)
    np.random.seed(42)
    boots = [metrics(table[np.random.randint(0, n, size=n)]) for _ in range(resamples)]
    alpha = 1 - 0.95
    names = ("with", "without", "gain", "nsg", "with_changed", "without_changed", "with_unchanged", "without_unchanged")
    out = {"n": int(table[:, 2].sum()), "n_clusters": n}
    for j, name in enumerate(names):
        column = [b[j] for b in boots]
        out[name] = point[j]
        out[f"{name}_ci"] = [np.percentile(column, alpha / 2 * 100), np.percentile(column, (1 - alpha / 2) * 100)]
    return out


def _times(fn, inner: int) -> tuple[list[float], object]:
    result = fn()  # warm-up
    times = []
    for _ in range(inner):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def child(observations: int, clusters: int, resamples: int, inner: int) -> int:
    import resource

    t0 = time.perf_counter()
    sys.path.insert(0, str(REPO / "src"))
    from selfexplain.simulatability.metrics import Resampler, compare

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    obs, records = build(observations, clusters)
    t_build = time.perf_counter() - t0

    ours_times, ours = _times(lambda: compare(obs, resampler=Resampler("ours", resamples=resamples)), inner)
    orig_mode_times, orig_mode = _times(
        lambda: compare(obs, resampler=Resampler("original", resamples=resamples), convention="original"), inner
    )
    original_times, original = _times(lambda: original_algorithm(records, resamples), max(1, min(inner, 3)))
    pairs = {"with": "with_accuracy", "without": "without_accuracy", "gain": "gain", "nsg": "nsg"}
    for split in ("changed", "unchanged"):
        pairs |= {f"with_{split}": f"with_accuracy_{split}", f"without_{split}": f"without_accuracy_{split}"}
    identical = original["n"] == orig_mode["n"] and original["n_clusters"] == orig_mode["n_clusters"]
    for theirs, mine in pairs.items():
        identical &= original[theirs] == orig_mode[mine]
        identical &= [float(x) for x in original[f"{theirs}_ci"]] == orig_mode[f"{mine}_ci"]
    result = {
        "import_s": t_import,
        "build_s": t_build,
        "ours_s": ours_times,
        "ours_original_rng_s": orig_mode_times,
        "original_s": original_times,
        "identical": bool(identical),
        "n": ours["n"],
        "n_clusters": ours["n_clusters"],
        "rows": len(obs),
        "nsg": ours["nsg"],
        "nsg_ci_ours": ours["nsg_ci"],
        "nsg_ci_original": [float(x) for x in original["nsg_ci"]],
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", type=int, default=125_000)
    parser.add_argument("--clusters", type=int, default=7_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes to run (default 3)")
    parser.add_argument("--inner", type=int, default=5, help="timed calls per process after one warm-up")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.observations, args.clusters, args.resamples, args.inner)

    load_before = os.getloadavg()[0]
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_bootstrap_") as tmp:
        for i in range(args.repeat):
            cmd = [sys.executable, __file__, "--child", "--observations", str(args.observations)]
            cmd += ["--clusters", str(args.clusters), "--resamples", str(args.resamples), "--inner", str(args.inner)]
            runs.append(run_child(cmd, REPO, Path(tmp) / f"run{i}.log", RESULT_TAG))

    first = runs[0]
    print(
        f"bench_bootstrap: {first['rows']:,} observations ({first['n']:,} usable) in {first['n_clusters']:,} "
        f"clusters, B = {args.resamples:,}; {args.repeat} fresh processes x {args.inner} timed calls"
    )
    print(
        f"{os.cpu_count()} CPUs; 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
        "(after includes this benchmark; other work on the machine distorts the times)"
    )
    print("run  ours_best_s  ours_median_s  ours(original RNG)_best_s  original_best_s  speedup  identical  peak_MB")
    for i, r in enumerate(runs):
        speed = min(r["original_s"]) / min(r["ours_s"])
        print(
            f"{i:>3} {min(r['ours_s']):>12.3f} {statistics.median(r['ours_s']):>14.3f} "
            f"{min(r['ours_original_rng_s']):>26.3f} {min(r['original_s']):>16.3f} {speed:>8.1f} "
            f"{r['identical']!s:>10} {r['tree_peak_kb'] / 1024:>8.0f}"
        )
    print(
        f"NSG {first['nsg']:.2f}; 95% CI ours {first['nsg_ci_ours'][0]:.2f}..{first['nsg_ci_ours'][1]:.2f}, "
        f"original RNG {first['nsg_ci_original'][0]:.2f}..{first['nsg_ci_original'][1]:.2f}"
    )
    ours = min(min(r["ours_s"]) for r in runs)
    median = statistics.median(t for r in runs for t in r["ours_s"])
    original = min(min(r["original_s"]) for r in runs)
    speedup = original / ours
    print(
        f"\nours: best {ours:.3f} s, median {median:.3f} s < {TARGET_S} s: {'MET' if median < TARGET_S else 'MISSED'};"
        f" original's algorithm: best {original:.3f} s; speedup {speedup:.1f}x >= {TARGET_SPEEDUP:.0f}x: "
        f"{'MET' if speedup >= TARGET_SPEEDUP else 'MISSED'}; original RNG bit-identical to the re-implementation: "
        f"{all(r['identical'] for r in runs)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
