"""End-to-end time of scoring a results file of the original code: one `selfexplain sce score RESULTS.json` process
against the original's post-processing plus scorer (two processes) on the same file, with the 13 numbers of both.

Target: ours at least 20x faster end to end (wall time of the whole process tree, start-up included), same numbers.

The files are the fixtures `sces_upstream_format/*.raw.json.gz` (what the original main.py writes), decompressed
to plain JSON as main.py leaves them; both sides read the same file.

The original's two steps are re-written here as they work, because its code cannot be imported in this
environment (utils.py imports torch, vLLM, transformers, datasets, sklearn, nltk, gower at the top):
* post-processing (`postprocessing.py --filepath F --dataset D`, i.e. `utils.postprocessing(..., force=True,
  distance_metric="gower", save=True)`): load the JSON, deep-copy it, per row rebuild the list of grid ids and an id
  -> row map and fetch the row's grid values one feature at a time (the original does this with a Hugging Face
  dataset; here with the same arrow file through pyarrow, which is no slower), coerce the counterfactual values
  (income: first run of digits; others: float()), build the nested-dict grid of first answers, look up validity,
  load the precomputed float32 Gower matrix (.npy), per row the distance to the counterfactual, argmin over the
  opposite class's columns, RCF/RCF_A, the counterfactual's distance to the boundary and ICF/ICF_A (with its
  failure branch), then rewrite the file in place with `json.dump(indent=4)`;
* scorer (the scoring cell of scorer_notebook, `scoring_function(path, verbose=1)`): load the JSON, drop rows with an
  "NA"/None answer, verification or follow-up, the 13 aggregates with NaN-aware means and medians, print the block.
Each step first imports the modules the original imports at the top of utils.py, postprocessing.py and scorer.py
that are installed here (numpy, pandas, matplotlib.pyplot, openai, anthropic, tenacity, tqdm); the others are
listed as missing, so the original's time is a lower bound (its own imports of utils alone took 3.5-5 s, and its
two steps 12-15 s per file, in docs/protocols/sce_reference.md section 6.4). A second, "lean" run of the same two
steps imports only what their computation uses (numpy, pyarrow), to show how much of the gap is start-up.
The Gower matrix is built once before timing (the original ships it precomputed): the exact float64 formula stored
as float32, within 1 float32 ulp of the original's matrices.

Ours: `selfexplain sce score RESULTS.json --dataset D` (the console script a user runs; bootstrap CIs with 1,000
resamples included), printing the numbers, and again with `--json metrics.json`.

Each command runs `--repeat` times in a fresh process measured by `_measure.run_measured` (wall, CPU, peak RSS of
the process tree); best and median are printed. Other load on the machine distorts the times; the load average is
printed.

Usage: .venv/bin/python benchmarks/bench_original_score.py [--files income heart_disease_minimal] [--repeat 5]
Never fails on a missed target: it prints the figures and whether the target was met, and exits 0.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _measure import run_child, run_measured  # noqa: E402

TARGET_SPEEDUP = 20.0
RESULT_TAG = "BENCH_ORIGINAL_SCORE_RESULT "
FILES = ("income", "income_minimal", "heart_disease", "heart_disease_minimal")
FIXTURES = Path(os.environ.get("SELFEXPLAIN_FIXTURES", REPO.parent / "shared" / "fixtures"))
METRICS = (
    "validity_percent",
    "mean_distance",
    "mean_RCF",
    "median_RCF",
    "mean_RCF_A",
    "median_RCF_A",
    "mean_ICF",
    "median_ICF",
    "mean_ICF_A",
    "median_ICF_A",
    "total_minimality",
    "total_minimality_A",
    "exact_match",
)
# Top-level imports of the original's utils.py, postprocessing.py and scorer.py, in order.
ORIGINAL_IMPORTS = (
    "torch",
    "transformers",
    "datasets",
    "tqdm",
    "numpy",
    "gower",
    "nltk",
    "sklearn.decomposition",
    "sklearn.preprocessing",
    "pandas",
    "backoff",
    "matplotlib.pyplot",
    "vllm",
    "anthropic",
    "openai",
    "tenacity",
)
# Per dataset: grid columns, options (negative, positive), the counterfactual coercion, columns kept as read.
DATASETS = {
    "income": (("AGEP", "SCHL"), ("Below $50,000", "Above $50,000"), "digits", ()),
    "house_prices": (
        ("area", "bedrooms", "bathrooms", "floors"),
        ("Below $1,500,000", "Above $1,500,000"),
        "float",
        (),
    ),
    "heart_disease": (
        ("AGEP", "SEX", "systolic_bp", "total_cholesterol"),
        ("No heart disease", "Heart disease"),
        "float",
        ("SEX",),
    ),
}


# --- the original's steps, re-written ---------------------------------------------------------------------------------


def _import_original_modules(lean: bool) -> list[str]:
    """Import what the original imports at the top (nothing but numpy when lean); return the names not installed."""
    import importlib

    missing = []
    for name in ("numpy",) if lean else ORIGINAL_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _first_digits(value):
    """The original's string -> number: a number as is, else the first run of digits as a float, else "NA"."""
    import re

    if type(value) in (float, int):
        return float(value)
    found = re.search(r"\d+", value)
    return float(found.group()) if found else "NA"


def _gower_matrix(dataset: str) -> tuple:
    """Grid (pyarrow table) and its Gower matrix as float32: |Δ| / range per numeric feature, 0/1 for SEX, mean."""
    import numpy as np
    import pyarrow as pa

    with pa.memory_map(str(FIXTURES / "sces_grids" / dataset / "data-00000-of-00001.arrow")) as source:
        grid = pa.ipc.open_stream(source).read_all()
    columns, _, _, categorical = DATASETS[dataset]
    total = np.zeros((grid.num_rows, grid.num_rows))
    for name in columns:
        v = np.asarray(grid.column(name).to_pylist(), dtype=np.float64)
        if name in categorical:
            total += (v[:, None] != v[None, :]).astype(np.float64)
        else:
            total += np.abs(v[:, None] - v[None, :]) / (v.max() - v.min())
    return grid, (total / len(columns)).astype(np.float32)


def original_postprocessing(path: Path, dataset: str, matrix_path: Path, lean: bool) -> dict:
    t0 = time.perf_counter()
    missing = _import_original_modules(lean)
    import copy

    import numpy as np
    import pyarrow as pa

    t_import = time.perf_counter() - t0
    columns, (negative, positive), coercion, kept_as_read = DATASETS[dataset]
    with open(path) as handle:
        results = json.load(handle)
    rows = {int(k): v for k, v in copy.deepcopy(results).items()}
    with pa.memory_map(str(FIXTURES / "sces_grids" / dataset / "data-00000-of-00001.arrow")) as source:
        grid_table = pa.ipc.open_stream(source).read_all()

    for row in rows.values():
        dataset_id = row.get("dataset_id")
        ids = grid_table.column("id").to_pylist()  # rebuilt for every row, as in the original
        id2row = {value: index for index, value in enumerate(ids)}
        for name in columns:  # one row fetch per feature, as in the original
            value = grid_table.slice(id2row[dataset_id], 1).to_pylist()[0][name]
            row[f"{name}_OR"] = value if name in kept_as_read else _first_digits(value)
        for name in columns:
            key = f"{name}_CF"
            if coercion == "digits":
                try:
                    row[key] = _first_digits(row[key])
                except Exception:  # the original's bare except
                    row[key] = None
            if key not in row or row[key] is None:
                row[key] = None
            else:
                try:
                    row[key] = float(row[key])
                except ValueError:
                    row[key] = None

    grid: dict = {}
    for row in rows.values():
        node = grid
        for name in columns[:-1]:
            node = node.setdefault(row[f"{name}_OR"], {})
        node[row[f"{columns[-1]}_OR"]] = row["original_answer"]
    for row in rows.values():
        try:
            node = grid
            for name in columns:
                node = node[row[f"{name}_CF"]]
            row["verification_answer"] = node
        except (KeyError, TypeError):
            row["verification_answer"] = "NA"
        if "NA" in (row["original_answer"], row["followup_answer"], row["verification_answer"]):
            row["is_valid_counterfactual"] = "NA"
        else:
            row["is_valid_counterfactual"] = int(row["selected_complement"] == row["verification_answer"])

    matrix = np.load(matrix_path)
    data_2_idx, idx_2_prediction = {}, {}
    for row in rows.values():
        data_2_idx[tuple(row[f"{name}_OR"] for name in columns)] = row["dataset_id"]
        idx_2_prediction[row["dataset_id"]] = row["original_answer"]
    idx_2_data = {v: k for k, v in data_2_idx.items()}
    above = [k for k, v in idx_2_prediction.items() if v == positive]
    below = [k for k, v in idx_2_prediction.items() if v == negative]
    above_matrix, below_matrix = matrix[:, above], matrix[:, below]
    for row in rows.values():
        point = tuple(row[f"{name}_CF"] for name in columns)
        try:
            row["gower_2_counterfactual"] = float(matrix[row["dataset_id"], data_2_idx[point]])
        except KeyError:
            row["gower_2_counterfactual"] = None
        try:
            i, c = row["dataset_id"], data_2_idx[point]
            for answer, sub, keys in ((positive, below_matrix, below), (negative, above_matrix, above)):
                if row["original_answer"] == answer:
                    j = np.argmin(sub[i, :])
                    for name, value in zip(columns, idx_2_data[keys[j]], strict=True):
                        row[f"{name}_CF_MIN"] = value
                    row["gower_2_min_counterfactual"] = float(sub[i, j])
            row["RCF"] = float(row["gower_2_counterfactual"] / row["gower_2_min_counterfactual"] - 1)
            row["RCF_A"] = float(row["gower_2_counterfactual"] - row["gower_2_min_counterfactual"])
            if row["verification_answer"] == positive:
                row["counterfactual_2_decision_boundary"] = float(np.min(below_matrix[c, :]))
            if row["verification_answer"] == negative:
                row["counterfactual_2_decision_boundary"] = float(np.min(above_matrix[c, :]))
            row["ICF"] = float(row["counterfactual_2_decision_boundary"] / row["gower_2_min_counterfactual"])
            row["ICF_A"] = float(row["counterfactual_2_decision_boundary"])
        except (KeyError, TypeError, ValueError):  # the failure branch: income and house never reset RCF_A
            for name in columns:
                row[f"{name}_CF_MIN"] = None
            for key in ("gower_2_min_counterfactual", "RCF", "counterfactual_2_decision_boundary", "ICF", "ICF_A"):
                row[key] = None
            if dataset == "heart_disease":
                row["RCF_A"] = None

    with open(path, "w") as handle:
        json.dump(rows, handle, indent=4)
    return {"missing_imports": missing, "import_s": t_import, "in_process_s": time.perf_counter() - t0}


def original_scorer(path: Path, lean: bool) -> dict:
    t0 = time.perf_counter()
    missing = _import_original_modules(lean)
    import random

    import numpy as np

    t_import = time.perf_counter() - t0
    with open(path) as handle:
        results = json.load(handle)
    results[random.choice(list(results))]["is_valid_counterfactual"]  # its "post-processed?" check

    invalid = ("NA", None)
    bad_answer = [int(v["original_answer"] in invalid) for v in results.values()]
    bad_followup = [int(v["followup_answer"] in invalid) for v in results.values()]
    bad_verification = [int(v["verification_answer"] in invalid) for v in results.values()]
    dropped = np.maximum.reduce([bad_answer, bad_followup, bad_verification]).tolist()
    kept = {k: v for (k, v), err in zip(results.items(), dropped, strict=True) if err == 0}
    short = [int(len(v["followup_answer"]) < len(v["original_input"]) / 2) for v in results.values()]

    valid, distances, rcf, icf, rcf_a, icf_a, hits = [], [], [], [], [], [], []
    for value in kept.values():
        valid.append(int(value["is_valid_counterfactual"]))
        distances.append(value["gower_2_counterfactual"])
        rcf.append(value["RCF"])
        icf.append(value["ICF"])
        rcf_a.append(value["RCF_A"])
        icf_a.append(value["ICF_A"])
        if value["RCF"] == 0.0 and int(value["is_valid_counterfactual"]) == 1:
            hits.append(value["dataset_id"])

    def pick(values, flag):
        return np.array([x for f, x in zip(valid, values, strict=True) if f == flag], dtype=float)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        validity = np.mean(valid).item()
        out = {"validity_percent": validity * 100}
        out["mean_distance"] = np.nanmean(np.array(distances, dtype=float))
        for name, values, flag in (("RCF", rcf, 1), ("RCF_A", rcf_a, 1), ("ICF", icf, 0), ("ICF_A", icf_a, 0)):
            out[f"mean_{name}"] = np.nanmean(pick(values, flag))
            out[f"median_{name}"] = np.nanmedian(pick(values, flag))
    out["total_minimality"] = validity * out["median_RCF"] + (1 - validity) * np.nan_to_num(out["median_ICF"])
    out["total_minimality_A"] = validity * out["mean_RCF_A"] + (1 - validity) * np.nan_to_num(out["mean_ICF_A"])
    out["exact_match"] = len(hits) * 100 / len(kept)
    print(f"Original Answer Errors:\t\t {bad_answer.count(1)}")
    print(f"Counterfactual Errors:\t\t {bad_followup.count(1)}")
    print(f"Validation Answer Errors:\t {bad_verification.count(1)}")
    print(f"Overall Errors (dropped):\t {dropped.count(1)}")
    print(f"Short counterfactuals:\t\t {short.count(1)}.")
    print(f"Sample size:\t\t\t {len(valid)}")
    for key in METRICS:
        print(f"{key}:\t\t {out[key]:0.4f}")
    return {
        "missing_imports": missing,
        "import_s": t_import,
        "in_process_s": time.perf_counter() - t0,
        "metrics": {k: float(v) for k, v in out.items()},
    }


# --- parent -----------------------------------------------------------------------------------------------------------


def _selfexplain() -> list[str]:
    script = Path(sys.executable).parent / "selfexplain"
    return [str(script)] if script.exists() else [sys.executable, "-m", "selfexplain.cli"]


def _our_numbers(log: str) -> dict[str, float]:
    numbers = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in METRICS:
            numbers[parts[0]] = float(parts[1])
    return numbers


def _same(a: float, b: float, tol: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def bench_file(name: str, repeat: int, work: Path) -> dict:
    import numpy as np

    dataset = name.removesuffix("_minimal")
    results = work / f"{name}.json"
    results.write_bytes(gzip.decompress((FIXTURES / "sces_upstream_format" / f"{name}.raw.json.gz").read_bytes()))
    matrix = work / f"{dataset}_gower.npy"
    if not matrix.exists():
        np.save(matrix, _gower_matrix(dataset)[1])
    expected = json.loads((FIXTURES / "sces_upstream_format" / f"{name}.expected_scores.json").read_text())

    runs: dict[str, list[dict]] = {k: [] for k in ("post", "score", "post_lean", "score_lean", "ours", "ours_json")}
    for _ in range(repeat):
        for lean in (False, True):
            copy = work / f"{name}.original.json"
            shutil.copyfile(results, copy)
            suffix = "_lean" if lean else ""
            flags = ["--lean"] if lean else []
            post = [sys.executable, __file__, "--child", "post", str(copy), dataset, str(matrix), *flags]
            runs["post" + suffix].append(run_child(post, REPO, work / "post.log", RESULT_TAG))
            score = [sys.executable, __file__, "--child", "score", str(copy), dataset, "-", *flags]
            runs["score" + suffix].append(run_child(score, REPO, work / "score.log", RESULT_TAG))
        ours = run_measured([*_selfexplain(), "sce", "score", str(results), "--dataset", dataset], REPO, work / "o.log")
        if ours["rc"] != 0:
            raise SystemExit(f"selfexplain sce score failed:\n{ours['log'][-4000:]}")
        ours["metrics"] = _our_numbers(ours["log"])
        runs["ours"].append(ours)
        argv = [*_selfexplain(), "sce", "score", str(results), "--dataset", dataset, "--json", str(work / "m.json")]
        ours_json = run_measured(argv, REPO, work / "oj.log")
        if ours_json["rc"] != 0:
            raise SystemExit(f"selfexplain sce score --json failed:\n{ours_json['log'][-4000:]}")
        ours_json["metrics"] = {k: json.loads((work / "m.json").read_text())[k] for k in METRICS}
        runs["ours_json"].append(ours_json)
    return {"name": name, "runs": runs, "expected": expected}


def _walls(records: list[dict]) -> list[float]:
    return [r["wall_s"] for r in records]


def report(files: list[dict], repeat: int, load_before: float) -> None:
    print(
        f"\nbench_original_score: {len(files)} file(s), {repeat} repeat(s) each; {os.cpu_count()} CPUs; 1-min load "
        f"average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after (other work distorts the times)"
    )
    first = files[0]["runs"]
    print(f"original's modules not installed here (not imported): {first['post'][0]['missing_imports']}")
    print("wall seconds, best / median of the repeats; peak RSS of the process tree (max over repeats)")
    print(
        f"{'file':<22} {'original post':>14} {'original score':>15} {'original total':>15} "
        f"{'lean total':>11} {'ours':>11} {'ours --json':>12} {'speedup':>8} {'--json':>7} {'lean':>6} {'RSS MB':>13}"
    )
    speedups, json_speedups = [], []
    for f in files:
        r = f["runs"]
        total = [a + b for a, b in zip(_walls(r["post"]), _walls(r["score"]), strict=True)]
        lean = [a + b for a, b in zip(_walls(r["post_lean"]), _walls(r["score_lean"]), strict=True)]
        ours, ours_json = _walls(r["ours"]), _walls(r["ours_json"])
        speed, speed_json, speed_lean = min(total) / min(ours), min(total) / min(ours_json), min(lean) / min(ours)
        speedups.append(speed)
        json_speedups.append(speed_json)
        rss_original = max(x["tree_peak_kb"] for x in r["post"] + r["score"]) / 1024
        rss_ours = max(x["maxrss_kb"] for x in r["ours"] + r["ours_json"]) / 1024

        def cell(values, width):
            return f"{min(values):.2f}/{statistics.median(values):.2f}".rjust(width)

        print(
            f"{f['name']:<22} {cell(_walls(r['post']), 14)} {cell(_walls(r['score']), 15)} {cell(total, 15)} "
            f"{cell(lean, 11)} {cell(ours, 11)} {cell(ours_json, 12)} {speed:>7.1f}x {speed_json:>6.1f}x "
            f"{speed_lean:>5.1f}x {rss_original:>6.0f}/{rss_ours:<6.0f}"
        )
    print("(speedup: best original total / best ours; --json: against ours writing metrics.json; lean: the original")
    print(" steps importing only numpy/pyarrow, against ours; RSS: original/ours)")
    for f in files:
        r = f["runs"]
        cpu_original = min(a["cpu_s"] + b["cpu_s"] for a, b in zip(r["post"], r["score"], strict=True))
        cpu_ours = min(x["cpu_s"] for x in r["ours"])
        print(
            f"CPU seconds, best: {f['name']}: original {cpu_original:.2f}, ours {cpu_ours:.2f} "
            f"({cpu_original / cpu_ours:.1f}x), ours --json {min(x['cpu_s'] for x in r['ours_json']):.2f}"
        )
    in_process = first["post"][0]
    print(
        f"original post-processing of {files[0]['name']}: imports {in_process['import_s']:.2f} s, "
        f"whole step in process {in_process['in_process_s']:.2f} s (first repeat)"
    )

    for f in files:
        theirs = f["runs"]["score"][0]["metrics"]
        ours = f["runs"]["ours"][0]["metrics"]
        ours_json = f["runs"]["ours_json"][0]["metrics"]
        print(f"\n{f['name']}: the 13 numbers")
        print(f"  {'key':<20} {'original (re-impl.)':>22} {'ours':>22} {'fixture expected':>22}")
        worst = 0.0
        for key in METRICS:
            want = f["expected"][key]
            want = math.nan if want is None else want
            print(f"  {key:<20} {theirs[key]:>22.15g} {ours[key]:>22.15g} {want:>22.15g}")
            if not (math.isnan(theirs[key]) and math.isnan(ours[key])):
                worst = max(worst, abs(theirs[key] - ours[key]))
        exact = all(theirs[k] == ours[k] for k in ("validity_percent", "exact_match"))
        agree = all(_same(theirs[k], ours[k], 1e-6) for k in METRICS)
        matches = all(
            _same(theirs[k], math.nan if f["expected"][k] is None else f["expected"][k], 1e-6) for k in METRICS
        )
        same_json = all(_same(ours[k], math.nan if ours_json[k] is None else ours_json[k], 0) for k in METRICS)
        print(
            f"  ours vs original: max |difference| {worst:.2e} (float32 Gower matrix), validity and exact match "
            f"identical: {exact}, all within 1e-6: {agree}; re-implementation within 1e-6 of the fixture's expected "
            f"scores: {matches}; printed and --json numbers identical: {same_json}"
        )

    best = min(speedups)
    print(
        f"\ntarget: >= {TARGET_SPEEDUP:.0f}x faster end to end (printing) on every file: smallest speedup "
        f"{best:.1f}x: {'MET' if best >= TARGET_SPEEDUP else 'MISSED'}; with --json: {min(json_speedups):.1f}x: "
        f"{'MET' if min(json_speedups) >= TARGET_SPEEDUP else 'MISSED'}"
    )


HEAVY = ("aiohttp", "selfexplain.serve", "selfexplain.tiny_model", "selfexplain.llm", "pandas", "pyarrow")


def _import_profile(argv: list[str], work: Path) -> dict:
    """`python -X importtime` of one selfexplain command: total import time, the largest top-level imports, and
    which heavy modules (HEAVY) it loads."""
    import subprocess

    cmd = [sys.executable, "-X", "importtime", "-m", "selfexplain.cli", *argv]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    top, loaded = {}, set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        loaded.add(name.strip())
        if not name.startswith("  "):  # top level: its cumulative time includes everything it imported
            top[name.strip()] = int(cumulative) / 1e6
    return {
        "rc": done.returncode,
        "total_s": sum(top.values()),
        "largest": sorted(top.items(), key=lambda item: -item[1])[:5],
        "modules": len(loaded),
        "heavy": sorted(loaded & set(HEAVY)),
    }


def startup(name: str, repeat: int, work: Path) -> None:
    """Wall time and imports of `selfexplain --help` and of the one command on one file (printing, and --json)."""
    results = work / f"{name}.json"
    dataset = name.removesuffix("_minimal")
    commands = {
        "selfexplain --help": ["--help"],
        f"selfexplain sce score {name}.json": ["sce", "score", str(results), "--dataset", dataset],
        f"selfexplain sce score {name}.json --json": [
            "sce",
            "score",
            str(results),
            "--dataset",
            dataset,
            "--json",
            str(work / "startup.json"),
        ],
    }
    print("\nstart-up: wall seconds best/median of fresh processes; -X importtime of one run")
    for label, argv in commands.items():
        walls = [run_measured([*_selfexplain(), *argv], REPO, work / "startup.log")["wall_s"] for _ in range(repeat)]
        profile = _import_profile(argv, work)
        largest = ", ".join(f"{module} {seconds:.3f}" for module, seconds in profile["largest"])
        print(
            f"  {label:<48} wall {min(walls):.3f}/{statistics.median(walls):.3f} s; imports {profile['total_s']:.3f} s "
            f"({profile['modules']} modules; heavy: {profile['heavy'] or 'none'}); largest: {largest}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="+", default=list(FILES), choices=FILES, help="fixture files to score")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per command (default 5)")
    parser.add_argument("--child", nargs=4, metavar=("STEP", "FILE", "DATASET", "MATRIX"), help=argparse.SUPPRESS)
    parser.add_argument("--lean", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        step, path, dataset, matrix = args.child
        if step == "post":
            result = original_postprocessing(Path(path), dataset, Path(matrix), args.lean)
        else:
            result = original_scorer(Path(path), args.lean)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0

    if not (FIXTURES / "sces_upstream_format").exists():
        raise SystemExit(f"fixtures not found at {FIXTURES} (set SELFEXPLAIN_FIXTURES)")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_original_score_") as tmp:
        files = []
        for name in args.files:
            files.append(bench_file(name, args.repeat, Path(tmp)))
            r = files[-1]["runs"]
            total = min(_walls(r["post"])) + min(_walls(r["score"]))
            print(f"{name}: original {total:.2f} s, ours {min(_walls(r['ours'])):.2f} s", flush=True)
        report(files, args.repeat, load_before)
        startup(args.files[0], max(args.repeat, 5), Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
