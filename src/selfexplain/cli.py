"""The `selfexplain` command: a thin layer over the library functions the workflow rules use."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Collection, Sequence

from selfexplain import __version__
from selfexplain.errors import InputError, SelfExplainError
from selfexplain.runlog import configure


def _sce_import_original(args: argparse.Namespace) -> None:
    from selfexplain.io import provenance, write_parquet
    from selfexplain.sce.original import import_original
    from selfexplain.tabular.features import load_dataset_spec

    table = import_original(args.results, load_dataset_spec(args.dataset))
    write_parquet(table, args.out, provenance(stage="import-original", input=str(args.results), dataset=args.dataset))
    print(f"wrote {len(table)} rows to {args.out}")


def _sce_score(args: argparse.Namespace) -> None:
    from selfexplain.sce import steps
    from selfexplain.sce.original import is_results_file
    from selfexplain.sce.scoring import ORIGINAL_METRICS

    scoring = (args.table, args.dataset, args.scores, args.json, args.distance, args.resamples, args.seed)
    if is_results_file(args.table):
        metrics = steps.score_original_file(
            *scoring, table_out=args.save_table, distance_convention=args.distance_convention
        )
    elif args.save_table:
        raise InputError(f"--save-table needs a results file of the original code (.json/.json.gz), not {args.table}")
    else:
        metrics = steps.score_file(*scoring, distance_convention=args.distance_convention)
    width = max(map(len, ORIGINAL_METRICS))
    for key in (*ORIGINAL_METRICS, "strict_validity_percent", "n_kept", "n_rows"):
        print(f"{key:<{width + 8}} {metrics[key]}")
    print(f"{'failures':<{width + 8}} {json.dumps(metrics['failures'])}")


def _sce_import_prompts(args: argparse.Namespace) -> None:
    from selfexplain.sce.prompt_import import import_prompts

    written = import_prompts(args.datasets_json, args.out)
    for path in written:
        print(path)
    print(f"wrote {len(written)} templates; set sce.prompt_dir: {args.out} and pick names from the files above")


def _sim_import_original(args: argparse.Namespace) -> None:
    from selfexplain.simulatability.steps import import_original_file

    pairs = import_original_file(args.file, args.out)
    counts = pairs["dataset"].value_counts().to_dict()
    print(f"wrote {len(pairs)} pairs to {args.out}: {counts}")
    unreadable = pairs.attrs.get("unreadable_texts", 0)
    if unreadable:
        print(f"{unreadable} pair(s) with a text that could not be read back: their changed_features are null")


def _sim_build_pairs(args: argparse.Namespace) -> None:
    from selfexplain.simulatability.steps import build_pairs_from_source

    pairs = build_pairs_from_source(args.dataset, args.source, args.out, args.seed, args.max_centres)
    centres = pairs["centre_row"].nunique()
    print(f"wrote {len(pairs)} pairs ({centres} centres, both answer orders) to {args.out}")


def _sim_import_answers(args: argparse.Namespace) -> None:
    from selfexplain.simulatability.original_answers import import_answers

    meta = import_answers(args.file, args.out, reparse_texts=args.reparse)
    print(f"wrote {len(meta['written'])} tables for {meta['records']} records to {args.out}")
    for key, folder in {**meta["references"], **meta["predictors"]}.items():
        print(f"  {folder}  <- {key} (family {meta['families'][key]}, original substring rule)")
    effect = meta.get("reparse_effect")
    if effect:
        for what in ("reference_answers", "first_predictor_answers"):
            changed = {k: v for k, v in effect[what].items() if k != "unchanged"}
            print(f"re-parsed {what}: {effect[what].get('unchanged', 0)} unchanged, {sum(changed.values())} changed")
            for reason, count in changed.items():
                print(f"  {count:>6}  {reason}")
        print(f"prediction rows dropped (centre now unreadable): {effect['prediction_rows_dropped_centre_unreadable']}")
        for ref, nsg in effect["nsg"].items():
            a, b = nsg["original_parse"], nsg["our_parse"]
            print(
                f"NSG {ref}: all predictors {a['nsg']:.2f} (n={a['n']}) -> {b['nsg']:.2f} (n={b['n']}); "
                f"first predictor {a['first_predictor_nsg']:.2f} -> {b['first_predictor_nsg']:.2f}"
            )
        print(f"not re-parsed: {effect['not_reparsed']}")


def _sim_score(args: argparse.Namespace) -> None:
    from selfexplain.errors import ConfigError
    from selfexplain.io import write_json
    from selfexplain.simulatability import metrics as m

    families = m.catalog_families(args.catalog) if args.catalog else None
    if args.original_csv:
        written = m.original_csvs_for_folder(
            args.dir,
            args.original_csv,
            families=families,
            bootstrap=args.bootstrap or "ours",
            resamples=args.resamples,
            seed=args.seed,
        )
        for path in written:
            print(path)
        return
    if args.bootstrap == "original":
        raise ConfigError("--bootstrap original applies to --original-csv only (our metrics use our bootstrap)")
    results = m.score_folder(args.dir, families=families, resamples=args.resamples, seed=args.seed)
    for metrics in results.values():
        print("\n".join(m.describe(metrics)))
    if args.json:
        write_json(results, args.json)
    if args.summary:
        m.write_summary(results, args.summary)


# Subcommands defined in modules with heavy imports (aiohttp, the synthetic models): registered only when the
# command line names them, and otherwise listed in `--help` by a placeholder with the same help text
# (tests/test_parity.py checks that the texts agree). name -> (module with `register(subparsers)`, help).
LAZY_COMMANDS = {
    "serve": (
        "selfexplain.serve",
        "OpenAI/Anthropic-compatible HTTP server in front of the synthetic models (for integration tests)",
    ),
    "tiny-model": ("selfexplain.tiny_model", "build (and train) a tiny local model for vLLM tests"),
}


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand the arguments name (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; of LAZY_COMMANDS only those in `load` (all when None) are imported and registered."""
    parser = argparse.ArgumentParser(prog="selfexplain", description=__doc__)
    parser.add_argument("--version", action="version", version=f"selfexplain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sce = sub.add_parser("sce", help="self-generated counterfactual explanations").add_subparsers(
        dest="sce_command", required=True
    )
    imp = sce.add_parser("import-original", help="convert a per-row results file of the original code")
    imp.add_argument("results", help="RESULTS.json (or .json.gz) written by the original main.py")
    imp.add_argument("--dataset", required=True, help="income, house_prices or heart_disease")
    imp.add_argument("--out", required=True, help="counterfactuals table to write (.parquet)")
    imp.set_defaults(func=_sce_import_original)

    score = sce.add_parser(
        "score", help="score a counterfactuals table, or a results file of the original code in one step"
    )
    score.add_argument(
        "table", help="counterfactuals table (.parquet), or RESULTS.json(.gz) written by the original main.py"
    )
    score.add_argument("--dataset", required=True)
    score.add_argument("--json", help="write metrics.json here")
    score.add_argument("--scores", help="write the per-row scores table (.parquet) here")
    score.add_argument(
        "--save-table", metavar="OUT", help="with a results file: also write the imported table (.parquet) here"
    )
    score.add_argument("--distance", default="gower", choices=["gower", "l1", "l2"])
    score.add_argument(
        "--distance-convention",
        default="ours",
        choices=["ours", "original"],
        help="ours: a categorical feature costs 0/1 (default); original: the original's L1/L2 matrices, which "
        "treat category codes as numbers (heart disease's sex flip costs 2), exact ties (Gower is the same)",
    )
    score.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (0: no CIs)")
    score.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    score.set_defaults(func=_sce_score)

    prompts = sce.add_parser("import-prompts", help="turn the original datasets.json into template files")
    prompts.add_argument("datasets_json", help="a copy of the original datasets.json")
    prompts.add_argument("--out", default="config/prompts/sce_original", help="folder for the templates")
    prompts.set_defaults(func=_sce_import_prompts)

    sim = sub.add_parser("simulatability", help="do self-explanations help predict the model?").add_subparsers(
        dest="sim_command", required=True
    )
    imp = sim.add_parser("import-original", help="read an original counterfactual dataset into a pairs table")
    imp.add_argument("file", help="an original *_counterfactual_dataset_balanced.parquet or combined_dataset*.parquet")
    imp.add_argument("--out", required=True, help="pairs table to write (.parquet)")
    imp.set_defaults(func=_sim_import_original)

    pairs = sim.add_parser("build-pairs", help="Hamming-ball pairs from your copy of a dataset's raw file")
    pairs.add_argument("--dataset", required=True, help="attrition, bank_marketing, breast_cancer_recurrence, ...")
    pairs.add_argument("--source", required=True, help="the raw file in the original source's format (CSV/zip/Parquet)")
    pairs.add_argument("--out", required=True, help="pairs table to write (.parquet)")
    pairs.add_argument("--seed", type=int, default=42, help="seed of the members drawn into each group")
    pairs.add_argument("--max-centres", type=int, help="keep at most this many groups (default: the paper's cap)")
    pairs.set_defaults(func=_sim_build_pairs)

    answers = sim.add_parser("import-answers", help="read the original's predictor-answers parquet into our tables")
    answers.add_argument("file", help="an original *_with_predictor_answers.parquet")
    answers.add_argument("--out", required=True, help="folder for <reference>/reference.parquet and predictions")
    answers.add_argument(
        "--reparse", action="store_true", help="re-read the raw texts with our parser (first predictor only)"
    )
    answers.set_defaults(func=_sim_import_answers)

    sim_score = sim.add_parser("score", help="simulatability metrics of a results folder (or the original's CSVs)")
    sim_score.add_argument("dir", help="folder with <reference>/reference.parquet and <reference>/<predictor>/")
    sim_score.add_argument("--original-csv", metavar="OUT", help="write the original's CSVs (its columns) to OUT")
    sim_score.add_argument(
        "--bootstrap",
        choices=["original", "ours"],
        help="RNG of the CIs in --original-csv: ours (default) or the original's resampling order and seeding",
    )
    sim_score.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (0: no CIs)")
    sim_score.add_argument("--seed", type=int, default=42, help="seed of our bootstrap (the config's default)")
    sim_score.add_argument("--catalog", help="models.yaml whose `family` entries apply (an import has its own)")
    sim_score.add_argument("--json", help="write our metrics of every reference model here (JSON)")
    sim_score.add_argument("--summary", help="write the summary-table rows here (CSV)")
    sim_score.set_defaults(func=_sim_score)

    for name, (module, help_text) in LAZY_COMMANDS.items():
        if load is None or name in load:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(load={_command_word(argv)} & set(LAZY_COMMANDS)).parse_args(argv)
    configure()
    logging.getLogger().setLevel(logging.WARNING)
    try:
        args.func(args)
    except SelfExplainError as exc:
        print(f"selfexplain: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
