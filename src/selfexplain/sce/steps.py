"""File-level steps of the sce study: what each rule (and the CLI) does, from input paths to output paths.

Rule scripts stay thin by calling these; the functions here read and write files and stamp provenance, while the
science lives in the modules they call. Each step imports what it uses when it runs, so a command that only scores
(`selfexplain sce score`) never loads the inference layer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfexplain.sce.scoring import ORIGINAL_METRICS
from selfexplain.tabular.features import load_dataset_spec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# metrics.json keys of a re-query that the log line and the summary table show
REQUERY_SHOWN = ("validity_requery_percent", "verify_agreement_percent")
REQUERY_SUMMARY = (
    "strict_validity_requery_percent",
    "validity_requery_off_grid_percent",
    "n_requery",
    "n_requery_judged",
    "n_requery_unreadable",
    "n_requery_not_asked",
    "n_requery_off_grid",
    "n_verify_both",
    "verify_agreement_percent",
    "verify_kappa",
)


def make_grid(dataset: str, out: str | Path) -> None:
    from selfexplain.io import provenance, write_parquet
    from selfexplain.tabular.grids import build_grid

    spec = load_dataset_spec(dataset)
    grid = build_grid(spec)
    write_parquet(grid, out, provenance(dataset=dataset, dataset_spec=spec.source))
    log.info("%s grid: %d rows -> %s", dataset, len(grid), out)


def _inference(model: str, entry_json: str, dataset: str, *template_paths: str) -> tuple[Any, Any, Any, list[Any]]:
    """What every inference step starts from: the catalog entry, the grid's spec, the backend and the templates."""
    from selfexplain.llm.backends import make_backend
    from selfexplain.llm.catalog import entry_from_json
    from selfexplain.prompts import template_from_path

    entry = entry_from_json(model, entry_json)
    return entry, load_dataset_spec(dataset), make_backend(entry), [template_from_path(p) for p in template_paths]


def _write_answers(
    frame: pd.DataFrame,
    out: str,
    entry: Any,
    backend: Any,
    dataset: str,
    stage: str,
    templates: dict[str, Any],
    status: tuple[str, str],
    **extra: Any,
) -> None:
    """Write an inference step's table with its provenance (model, backend, stage, templates) and log its statuses."""
    from selfexplain.io import provenance, write_parquet
    from selfexplain.llm.backends import backend_provenance

    prov = provenance(
        **entry.provenance(),
        backend=backend_provenance(backend),
        dataset=dataset,
        stage=stage,
        **extra,
        templates={role: {"path": str(t.path), "sha256": t.sha256} for role, t in templates.items()},
    )
    write_parquet(frame, out, prov)
    column, label = status
    log.info("%s status counts: %s", label, frame[column].value_counts().to_dict())


def run_predict(
    model: str,
    entry_json: str,
    dataset: str,
    grid_path: str,
    template_path: str,
    journal: str,
    out: str,
    progress: bool = True,
) -> None:
    from selfexplain.io import read_table
    from selfexplain.sce import elicit as elicitation

    entry, spec, backend, (template,) = _inference(model, entry_json, dataset, template_path)
    frame = elicitation.predict(entry, backend, spec, read_table(grid_path), template, journal, progress)
    templates = {"first_pass": template}
    _write_answers(frame, out, entry, backend, dataset, "sce_predict", templates, ("answer_status", "answer"))


def run_elicit(
    model: str,
    entry_json: str,
    dataset: str,
    predictions_path: str,
    first_template_path: str,
    template_path: str,
    journal: str,
    out: str,
    seed: int,
    progress: bool = True,
) -> None:
    from selfexplain.io import read_table
    from selfexplain.sce import elicit as elicitation

    entry, spec, backend, (first, followup) = _inference(model, entry_json, dataset, first_template_path, template_path)
    frame = elicitation.elicit(
        entry, backend, spec, read_table(predictions_path), first, followup, journal, seed, progress
    )
    templates = {"first_pass": first, "followup": followup}
    _write_answers(
        frame, out, entry, backend, dataset, "sce_elicit", templates, ("cf_status", "counterfactual"),
        prompt=followup.name, seeds={"target": seed},
    )  # fmt: skip


def run_requery(
    model: str,
    entry_json: str,
    dataset: str,
    counterfactuals_path: str,
    first_template_path: str,
    journal: str,
    out: str,
    progress: bool = True,
) -> None:
    """Ask every readable counterfactual of a run again, as a first-pass question in a fresh chat."""
    from selfexplain.io import read_provenance, read_table
    from selfexplain.sce.requery import REPEAT, STATUS, requery

    entry, spec, backend, (template,) = _inference(model, entry_json, dataset, first_template_path)
    frame = requery(entry, backend, spec, read_table(counterfactuals_path), template, journal, progress)
    _write_answers(
        frame, out, entry, backend, dataset, "sce_requery", {"first_pass": template}, (STATUS, "requery"),
        prompt=read_provenance(counterfactuals_path).get("prompt"), input=str(counterfactuals_path),
        request_repeat=REPEAT,
    )  # fmt: skip


def score_file(
    table_path: str | Path,
    dataset: str,
    scores_out: str | Path | None,
    metrics_out: str | Path | None,
    distance: str = "gower",
    resamples: int = 1000,
    seed: int = 0,
    grid_path: str | Path | None = None,
    distance_convention: str = "ours",
    requery_path: str | Path | None = None,
) -> dict[str, Any]:
    """Score a counterfactuals table (ours or an imported original one) and write the per-row and summary files;
    with `requery_path` (a `sce_requery` table) validity by re-query beside lookup."""
    from selfexplain.io import read_provenance, read_table
    from selfexplain.sce.scoring import score_table
    from selfexplain.tabular.grids import build_grid

    spec = load_dataset_spec(dataset)
    grid = read_table(grid_path) if grid_path else build_grid(spec)
    table = read_table(table_path)
    requery = read_table(requery_path) if requery_path else None
    rows, metrics = score_table(
        spec,
        grid,
        table,
        distance,
        resamples,
        seed,
        source=str(table_path),
        convention=distance_convention,
        requery=requery,
    )
    upstream = read_provenance(table_path) if str(table_path).endswith(".parquet") else {}
    scored = {
        "requery": str(requery_path) if requery_path else None,
        "model": upstream.get("model"),
        "prompt": upstream.get("prompt"),
    }
    _write_scores(
        rows, metrics, scores_out, metrics_out, dataset, distance, distance_convention, table_path, seed, scored
    )
    shown = ("validity_percent", "mean_RCF_A", "strict_validity_percent", *REQUERY_SHOWN)
    log.info("%s", {k: metrics[k] for k in shown if k in metrics})
    return metrics


def score_original_file(
    results_path: str | Path,
    dataset: str,
    scores_out: str | Path | None = None,
    metrics_out: str | Path | None = None,
    distance: str = "gower",
    resamples: int = 1000,
    seed: int = 0,
    table_out: str | Path | None = None,
    distance_convention: str = "ours",
) -> dict[str, Any]:
    """Read a results file of the original code and score it in one go: the same metrics as `import_original`
    followed by `score_file`, without the intermediate table (written only when `table_out` is given).

    Nothing here needs pandas unless a Parquet output is asked for, which keeps the command's start-up short.
    """
    from selfexplain.sce.original import read_original
    from selfexplain.sce.scoring import score_columns_summary

    spec = load_dataset_spec(dataset)
    columns = read_original(results_path, spec)
    rows, metrics = score_columns_summary(
        spec, columns, distance, resamples, seed, source=str(results_path), convention=distance_convention
    )
    if not (scores_out or metrics_out or table_out):
        return metrics
    if table_out:
        import pandas as pd

        from selfexplain.io import provenance, write_parquet

        imported = provenance(stage="import-original", input=str(results_path), dataset=dataset)
        write_parquet(pd.DataFrame(columns), table_out, imported)
    _write_scores(rows, metrics, scores_out, metrics_out, dataset, distance, distance_convention, results_path, seed)
    return metrics


def _write_scores(
    rows: Any,
    metrics: dict[str, Any],
    scores_out: str | Path | None,
    metrics_out: str | Path | None,
    dataset: str,
    distance: str,
    distance_convention: str,
    source: str | Path,
    seed: int,
    upstream: dict[str, Any] | None = None,
) -> None:
    """Both scoring steps' outputs: the provenance of a scored table (also put into `metrics`), then the per-row
    scores (`rows`: a frame, or columns) and the metrics, each only when asked for. `upstream` (what the scored table
    came from) goes between the input and the seeds."""
    from selfexplain.io import provenance, write_json

    prov = provenance(
        dataset=dataset,
        stage="sce_score",
        distance=distance,
        distance_convention=distance_convention,
        input=str(source),
        **(upstream or {}),
        seeds={"bootstrap": seed},
    )
    metrics["provenance"] = prov
    if scores_out:
        import pandas as pd

        from selfexplain.io import write_parquet

        write_parquet(rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows), scores_out, prov)
    if metrics_out:
        write_json(metrics, metrics_out)


def summarise_runs(metrics_paths: list[str], runs: list[tuple[str, str, str]], out: str | Path) -> pd.DataFrame:
    """One row per (model, dataset, prompt): original aggregates, strict validity, CIs, failure counts."""
    import pandas as pd

    from selfexplain.io import atomic_path

    records = []
    for path, (model, dataset, prompt) in zip(metrics_paths, runs, strict=True):
        metrics = json.loads(Path(path).read_text())
        record: dict[str, Any] = {"model": model, "dataset": dataset, "prompt": prompt}
        record.update({k: metrics.get(k) for k in ORIGINAL_METRICS})
        for key in (
            "strict_validity_percent",
            "n_rows",
            "n_kept",
            "n_first_answer_readable",
            "distance_metric",
            "distance_convention",
        ):
            record[key] = metrics.get(key)
        ci = metrics.get("ci95", {})
        record["validity_ci_low"], record["validity_ci_high"] = ci.get("validity_percent", [None, None])
        record["mean_RCF_A_ci_low"], record["mean_RCF_A_ci_high"] = ci.get("mean_RCF_A", [None, None])
        # validity by re-query and its agreement with lookup: columns present when any run re-queried
        if "validity_requery_percent" in metrics:
            record["validity_requery_percent"] = metrics["validity_requery_percent"]
            low_high = ci.get("validity_requery_percent", [None, None])
            record["validity_requery_ci_low"], record["validity_requery_ci_high"] = low_high
            record.update({k: metrics.get(k) for k in REQUERY_SUMMARY})
        for kind, count in metrics.get("failures", {}).items():
            record[f"n_{kind}"] = count
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    failure_cols = [c for c in frame.columns if c.startswith("n_") and c not in ("n_rows", "n_kept", *REQUERY_SUMMARY)]
    frame[failure_cols] = frame[failure_cols].fillna(0).astype(int)
    counts = [c for c in REQUERY_SUMMARY if c.startswith("n_") and c in frame.columns]
    frame[counts] = frame[counts].astype("Int64")
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
