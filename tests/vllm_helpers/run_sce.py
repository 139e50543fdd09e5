"""Run the sce first pass and follow-up on a subset of the income grid through any catalog entry; print a summary.

Run as a subprocess by tests/test_vllm_cpu.py, with the python of a venv that has vLLM (the test process itself
does not), so the real engine is exercised exactly as a workflow job would use it: make_backend -> predict/elicit ->
run_requests -> journal.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entry", required=True, help="catalog entry as JSON")
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--journal-dir", required=True)
    parser.add_argument("--prompt-dir", required=True)
    parser.add_argument("--followup", default="standard", help="follow-up template; '' runs the first pass only")
    parser.add_argument("--provenance", action="store_true", help="include backend.provenance() (imports vllm)")
    parser.add_argument("--out", required=True, help="summary JSON to write")
    parser.add_argument(
        "--count-template-tokens",
        action="store_true",
        help="also count the first chat's prompt tokens as rendered without chat_template_kwargs (transformers)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")

    from selfexplain.llm.backends import make_backend
    from selfexplain.llm.catalog import parse_entry
    from selfexplain.prompts import load_template
    from selfexplain.sce.elicit import elicit, first_pass_messages, predict
    from selfexplain.sce.synthetic import GridRespondent
    from selfexplain.tabular.features import load_dataset_spec
    from selfexplain.tabular.grids import build_grid
    from selfexplain.tiny_model import TEACHER

    spec = load_dataset_spec("income")
    grid = build_grid(spec)
    picks = np.unique(np.linspace(0, len(grid) - 1, args.rows).round().astype(int))
    grid = grid.iloc[picks].reset_index(drop=True)
    entry = parse_entry("tiny", json.loads(args.entry))
    backend = make_backend(entry)
    first = load_template(args.prompt_dir, "first_pass", spec.name)
    journal = Path(args.journal_dir)

    start = time.perf_counter()
    pred = predict(entry, backend, spec, grid, first, journal / "first_pass.jsonl", progress=False)
    first_s = time.perf_counter() - start
    teacher = GridRespondent(TEACHER, dataset_specs=[spec])
    task = teacher.tasks[0][0]
    expected = [
        json.loads(teacher.respond(first_pass_messages(entry, spec, first, d)))["answer"] for d in grid["description"]
    ]
    summary: dict = {
        "rows": len(pred),
        "first_seconds": round(first_s, 2),
        "answer_status": dict(Counter(pred["answer_status"])),
        "accuracy": float(np.mean([a == e for a, e in zip(pred["answer"], expected, strict=True)])),
        "first_nonempty": int(sum(bool(t) for t in pred["first_response"])),
        "first_prompt_tokens": [int(t) for t in pred["first_prompt_tokens"]],
        "first_completion_tokens": [int(t) for t in pred["first_completion_tokens"]],
        "first_finish": dict(Counter(pred["first_finish_reason"])),
        "first_examples": list(pred["first_response"][:3]),
    }
    if args.followup:
        followup = load_template(args.prompt_dir, args.followup, spec.name)
        start = time.perf_counter()
        cf = elicit(entry, backend, spec, pred, first, followup, journal / "followup.jsonl", progress=False)
        summary.update(
            followup_rows=len(cf),
            followup_seconds=round(time.perf_counter() - start, 2),
            cf_status=dict(Counter(cf["cf_status"])),
            # valid: the tiny model's own rule (the teacher's) gives the requested label to the changed record
            cf_valid=float(
                np.mean(
                    [
                        row.cf_status == "ok"
                        and spec.options[task.decide(np.array([getattr(row, "cf_" + c) for c in spec.columns]))]
                        == row.target
                        for row in cf.itertuples()
                    ]
                )
            ),
            followup_nonempty=int(sum(bool(t) for t in cf["followup_response"])),
            followup_completion_tokens=[int(t) for t in cf["followup_completion_tokens"]],
            followup_examples=list(cf["followup_response"][:3]),
        )
    if args.count_template_tokens:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(entry.model_id)
        plain = tok.apply_chat_template(
            first_pass_messages(entry, spec, first, grid["description"][0]), tokenize=False, add_generation_prompt=True
        )
        summary["plain_template_tokens"] = len(tok(plain, add_special_tokens=False)["input_ids"])
    summary["engine_started"] = getattr(backend, "_llm", None) is not None
    summary["engine_start_s"] = getattr(backend, "engine_start_s", None)
    if args.provenance and hasattr(backend, "provenance"):
        summary["provenance"] = backend.provenance()
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
