"""Import the original pipeline's predictor-answers parquet into our reference and predictions tables.

So the original's own answers can be scored by our metrics and its CSVs reproduced (parity). The original file
(`*_with_predictor_answers.parquet`, 91 flattened columns, reference §4 and the fixture README) holds one record
per (centre, counterfactual, answer order) with the reference model's two answers and, per predictor, the answer
with and without the explanation as parallel lists (`…_predictor_answers`, `…_predictor_names`); the raw texts
(`…_raw_response`, `…_parsed_response`, `…_cot`) are kept only for the first predictor's first answer.

What the import writes under DIR (the layout the workflow writes under results/simulatability/):
  DIR/<reference>/reference.parquet              one row per (dataset, row, answer_first) question
  DIR/<reference>/<predictor>/predictions.parquet one row per (pair_id, condition, repeat)
  DIR/eval_set.parquet                           the records as a pairs table (labels, texts)
  DIR/import.json                                folder -> original key maps, families, counts
Folder names are the model keys with "/" as "__" and other unsafe characters as "_"; the tables keep the original
keys (`reference` is the original's model key, model + "_" + thinking when thinking is set, e.g.
`Qwen/Qwen3-8B_True`), and the predictions tables add `predictor_index` (the predictor's position in the original's
lists), `list_position` and `source_row` (the record's row in the file, which the original's bootstrap follows).

Conventions of the import (the original's, not ours):
  * answers are taken as the original parsed and normalised them; an empty string is a null answer;
  * families follow the original's substring rule (`original_family`): claude, gpt, gemini, gemma, qwen, else
    other (gpt-oss is gpt; two "other" models count as one family, as in the original);
  * repeat r of a predictor is its r-th entry in the with-explanation list (names repeated per repeat);
  * statuses are read from the original's parse outcome, in our parser's words (`original_status`); answers of
    predictors after the first have no recorded raw text, so a null one has status `not_recorded`.

`reparse=True` re-reads the raw texts with our parser (`selfexplain.simulatability.parsing`) instead: every
reference answer (both raw texts are kept for every record) and the first predictor's first answer per condition.
It cannot re-read the other predictors (or other repeats): the file has no raw text for them, so their original
answers stay. Nor can it bring back pairs whose centre answer the original could not read: the original's
predictor step dropped those records. Pairs whose centre becomes unreadable under our parser are dropped (the
workflow never asks predictors about them). `reparse_effect` counts the answers that change, by reason, and the
NSG before and after.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from selfexplain.errors import InputError
from selfexplain.simulatability.metrics import WITH, WITHOUT

REFERENCE_BLOCKS = {"centre": "original_reference_response", "counterfactual": "counterfactual_reference_response"}
PREDICTOR_BLOCKS = {
    WITH: "counterfactual_predictor_response_with_explanation",
    WITHOUT: "counterfactual_predictor_response_without_explanation",
}
_BLOCK_FIELDS = (
    "cot",
    "raw_response",
    "parsed_response",
    "answer",
    "model_info_model",
    "model_info_thinking",
    "input_tokens",
    "output_tokens",
    "predictor_answers",
    "predictor_names",
)
_RECORD_FIELDS = (
    "original_dataset",
    "original_question",
    "original_question_idx",
    "original_answer_first",
    "counterfactual_question",
    "counterfactual_question_idx",
)
REQUIRED = (
    *_RECORD_FIELDS,
    "counterfactual_reference_response_answer",
    "counterfactual_reference_response_model_info_model",
    "original_reference_response_answer",
    f"{PREDICTOR_BLOCKS[WITH]}_answer",
    f"{PREDICTOR_BLOCKS[WITHOUT]}_answer",
)
FAMILY_RULE = (
    "original substring rule on the lower-cased key: claude, gpt, gemini, gemma, qwen (first match), else other"
)
NOT_RECORDED = "not_recorded"
CONFIDENCE = re.compile(r"\W*(LOW|MEDIUM|HIGH)\b")
# The original's tagged sections: "[ANSWER]" with up to 3 whitespace characters inside the brackets, the body from
# after the tag's trailing whitespace to the next "\n[" (its parsed_response keeps only the normalised answer, so
# the section text is read back here).
ANSWER_TAG = re.compile(r"\[\s{0,3}ANSWER\s{0,3}\]\s*")
_SECTION_KEYS = ("answer", "explanation", "most_important_factors", "other_relevant_info", "confidence")
_EDGE = "*.,!?;:"

REFERENCE_COLUMNS = [
    "dataset", "row", "answer_first", "question", "response", "reasoning", "answer", "answer_status", "answer_raw",
    "explanation", "factors", "other_info", "confidence", "confidence_raw", "parse_status", "finish_reason",
    "prompt_tokens", "completion_tokens", "latency_s", "error", "request_key", "source_row",
]  # fmt: skip
PREDICTION_COLUMNS = [
    "pair_id", "dataset", "centre_row", "counterfactual_row", "answer_first", "condition", "repeat", "reference",
    "predictor", "reference_centre_answer", "reference_counterfactual_answer", "prediction", "prediction_status",
    "prediction_raw", "confidence", "response", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens",
    "latency_s", "error", "request_key", "predictor_index", "list_position", "source_row",
]  # fmt: skip


def original_family(name: str) -> str:
    """The original's model family: the first of claude, gpt, gemini, gemma, qwen contained in the lower-cased
    name, else "other" (so gpt-oss is gpt, and any two unrecognised models share the family "other")."""
    lower = name.lower()
    for family in ("claude", "gpt", "gemini", "gemma", "qwen"):
        if family in lower:
            return family
    return "other"


def model_key(model: str | None, thinking: Any) -> str | None:
    """The original's reference key: the model name, plus "_" + thinking when thinking is set (any non-empty
    value, so "False" too, exactly as the original appends it)."""
    if model is None:
        return None
    return f"{model}_{thinking}" if thinking else str(model)


def folder_name(key: str) -> str:
    """A model key as one folder name: "/" becomes "__", anything outside [A-Za-z0-9._-] becomes "_"."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", key.replace("/", "__"))
    return name if name not in ("", ".", "..") else f"_{name}"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _answer(value: Any) -> str | None:
    text = _text(value)
    return text if text else None


def _confidence(raw: str | None) -> str | None:
    match = CONFIDENCE.match(raw.upper()) if raw else None
    return match.group(1) if match else None


def _canonical(text: str) -> str:
    """The original's answer text before matching: first line, stripped of edge punctuation, upper case."""
    first = text.strip().split("\n")[0].strip().strip(_EDGE).strip()
    return first.upper().replace("_", " ")


def answer_section(response: str | None) -> str | None:
    """The body of the first [ANSWER] tag of a response (thinking removed), or None when it has none."""
    match = ANSWER_TAG.search(response) if response else None
    if match is None:
        return None
    stop = response.find("\n[", match.end())
    return response[match.end() : len(response) if stop < 0 else stop].strip()


def original_status(parsed: Mapping[str, Any] | None, answer: str | None, section: str | None) -> tuple[str, str]:
    """(answer_status, parse_status) of an original response in our parser's vocabulary
    (`selfexplain.simulatability.parsing.ANSWER_STATUSES` / `PARSE_STATUSES`), read from what the original's
    parser left behind: no parse = empty; its errors incomplete_thinking and invalid_format (= no_sections); no
    ANSWER section = no_answer; a slash hedge = hedge; any other unmatched text = not_an_option."""
    error = parsed.get("error") if parsed else None
    if parsed is None:
        parse_status = "empty"
    elif error:
        parse_status = "no_sections" if error == "invalid_format" else str(error)
    else:
        # parsed["answer"] is the normalised answer (null for a hedge), so the ANSWER tag is judged by its text
        missing = [k for k in _SECTION_KEYS[1:] if not parsed.get(k)] + ([] if section else ["answer"])
        parse_status = "missing_sections" if missing else "ok"
    if answer is not None:
        return "ok", parse_status
    if parsed is None or error:
        return parse_status, parse_status
    if not section:
        return "no_answer", parse_status
    return ("hedge" if "/" in section else "not_an_option"), parse_status


def _split_thinking(raw: str | None, cot: str | None) -> tuple[str | None, str | None]:
    """(reasoning, response): the original keeps completed thinking in `cot`; an unfinished `<think>` stays in the
    raw text, and is moved to the reasoning here so that `response` never holds thinking."""
    from selfexplain.parsing.thinking import split_thinking

    if raw is None:
        return cot, None
    thinking, response = split_thinking(raw)
    parts = [p for p in (cot, thinking) if p]
    return ("\n".join(parts) if parts else None), response


@dataclass
class Block:
    """One flattened response object of a record."""

    cot: str | None = None
    raw_response: str | None = None
    parsed_response: dict[str, Any] | None = None
    answer: str | None = None
    model: str | None = None
    thinking: Any = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    predictor_answers: list[Any] | None = None
    predictor_names: list[Any] | None = None

    @property
    def key(self) -> str | None:
        return model_key(self.model, self.thinking)


@dataclass
class ImportedAnswers:
    """The original file as our tables, in memory."""

    source: str
    references: dict[str, pd.DataFrame]
    predictions: dict[tuple[str, str], pd.DataFrame]
    pairs: pd.DataFrame
    families: dict[str, str]
    notes: dict[str, Any] = field(default_factory=dict)


def read_original_answers(path: str | Path) -> tuple[dict[str, list[Any]], int]:
    """The columns the import needs, as Python lists (structs as dicts, lists as lists, nulls as None)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise InputError(f"original predictor-answers file not found: {path}")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise InputError(f"{path}: not an original predictor-answers file, missing column(s) {missing}")
    wanted = list(_RECORD_FIELDS)
    for prefix in (*REFERENCE_BLOCKS.values(), *PREDICTOR_BLOCKS.values()):
        wanted += [f"{prefix}_{f}" for f in _BLOCK_FIELDS]
    wanted = [c for c in wanted if c in schema.names]
    table = pq.read_table(path, columns=wanted)
    return {c: table.column(c).to_pylist() for c in wanted}, table.num_rows


def _block(columns: Mapping[str, list[Any]], prefix: str, i: int) -> Block:
    def get(name: str) -> Any:
        values = columns.get(f"{prefix}_{name}")
        return None if values is None else values[i]

    return Block(
        cot=_text(get("cot")),
        raw_response=_text(get("raw_response")),
        parsed_response=get("parsed_response"),
        answer=_answer(get("answer")),
        model=_text(get("model_info_model")),
        thinking=get("model_info_thinking"),
        input_tokens=get("input_tokens"),
        output_tokens=get("output_tokens"),
        predictor_answers=get("predictor_answers"),
        predictor_names=get("predictor_names"),
    )


def _reference_row(dataset: str, row: int, answer_first: bool, question: str, block: Block, source_row: int) -> dict:
    parsed = block.parsed_response
    reasoning, response = _split_thinking(block.raw_response, block.cot)
    section = answer_section(response)
    answer_status, parse_status = original_status(parsed, block.answer, section)
    confidence_raw = _text(parsed.get("confidence")) if parsed else None
    return {
        "dataset": dataset,
        "row": int(row),
        "answer_first": bool(answer_first),
        "question": question,
        "response": response,
        "reasoning": reasoning,
        "answer": block.answer,
        "answer_status": answer_status,
        "answer_raw": section,
        "explanation": _text(parsed.get("explanation")) if parsed else None,
        "factors": [str(f) for f in (parsed.get("most_important_factors") or [])] if parsed else [],
        "other_info": [str(f) for f in (parsed.get("other_relevant_info") or [])] if parsed else [],
        "confidence": _confidence(confidence_raw),
        "confidence_raw": confidence_raw,
        "parse_status": parse_status,
        "finish_reason": None,
        "prompt_tokens": block.input_tokens,
        "completion_tokens": block.output_tokens,
        "latency_s": None,
        "error": None,
        "request_key": None,
        "source_row": source_row,
    }


def _entries(block: Block) -> list[tuple[str, str | None]]:
    """(predictor name, answer) per list entry; a file without the lists has the top-level answer only."""
    if block.predictor_names is not None and block.predictor_answers is not None:
        if len(block.predictor_names) != len(block.predictor_answers):
            raise InputError("predictor_names and predictor_answers lists differ in length")
        return [(str(n), _answer(a)) for n, a in zip(block.predictor_names, block.predictor_answers, strict=True)]
    if block.model is not None:
        return [(block.model, block.answer)]
    return []


def build_tables(path: str | Path) -> ImportedAnswers:
    """The file's records as our tables (answers as the original parsed them)."""
    from selfexplain.simulatability.original import import_original
    from selfexplain.simulatability.pairs import pair_id

    columns, n = read_original_answers(path)
    references: dict[str, dict[tuple, dict]] = {}
    predictions: dict[tuple[str, str], list[dict]] = {}
    families: dict[str, str] = {}
    notes: Counter[str] = Counter()
    for i in range(n):
        dataset = str(columns["original_dataset"][i])
        centre_row = int(columns["original_question_idx"][i])
        cf_row = int(columns["counterfactual_question_idx"][i])
        first = columns["original_answer_first"][i]
        answer_first = True if first is None else bool(first)
        centre = _block(columns, REFERENCE_BLOCKS["centre"], i)
        counterfactual = _block(columns, REFERENCE_BLOCKS["counterfactual"], i)
        ref = counterfactual.key
        if ref is None:
            notes["records_without_reference_model"] += 1
            continue
        if centre.key is not None and centre.key != ref:
            raise InputError(
                f"{path}: row {i} has reference model {centre.key!r} on the centre but {ref!r} on the counterfactual"
            )
        families.setdefault(ref, original_family(ref))
        questions = references.setdefault(ref, {})
        for block, row, text_col in (
            (centre, centre_row, "original_question"),
            (counterfactual, cf_row, "counterfactual_question"),
        ):
            key = (dataset, row, answer_first)
            built = _reference_row(dataset, row, answer_first, str(columns[text_col][i]), block, i)
            if key in questions:
                if questions[key]["answer"] != built["answer"]:
                    raise InputError(
                        f"{path}: {dataset} row {row} ({'first' if answer_first else 'last'}) has two different "
                        f"reference answers ({questions[key]['answer']!r}, {built['answer']!r}); the original asks "
                        "each question once, so this file mixes runs"
                    )
                continue
            questions[key] = built
        pid = pair_id(dataset, centre_row, cf_row, answer_first)
        base = {
            "pair_id": pid,
            "dataset": dataset,
            "centre_row": centre_row,
            "counterfactual_row": cf_row,
            "answer_first": answer_first,
            "reference": ref,
            "reference_centre_answer": centre.answer,
            "reference_counterfactual_answer": counterfactual.answer,
            "source_row": i,
        }
        order: list[str] = []
        for prefix in PREDICTOR_BLOCKS.values():
            for name, _ in _entries(_block(columns, prefix, i)):
                if name not in order:
                    order.append(name)
        for condition, prefix in PREDICTOR_BLOCKS.items():
            block = _block(columns, prefix, i)
            entries = _entries(block)
            if not entries:
                notes[f"records_without_{condition}"] += 1
                continue
            top_matches = entries[0][1] == block.answer
            if not top_matches:
                notes[f"{condition}_top_level_differs_from_list"] += 1
            seen: Counter[str] = Counter()
            for position, (name, answer) in enumerate(entries):
                repeat = seen[name]
                seen[name] += 1
                families.setdefault(name, original_family(name))
                row = {
                    **dict.fromkeys(PREDICTION_COLUMNS),
                    **base,
                    "condition": condition,
                    "repeat": repeat,
                    "predictor": name,
                    "prediction": answer,
                    "predictor_index": order.index(name),
                    "list_position": position,
                }
                if position == 0 and top_matches:
                    reasoning, response = _split_thinking(block.raw_response, block.cot)
                    section = answer_section(response)
                    parsed = block.parsed_response
                    status, _ = original_status(parsed, answer, section)
                    confidence_raw = _text(parsed.get("confidence")) if parsed else None
                    row.update(
                        prediction_status=status,
                        prediction_raw=section,
                        confidence=_confidence(confidence_raw),
                        response=response,
                        reasoning=reasoning,
                        prompt_tokens=block.input_tokens,
                        completion_tokens=block.output_tokens,
                    )
                else:
                    row["prediction_status"] = "ok" if answer is not None else NOT_RECORDED
                predictions.setdefault((ref, name), []).append(row)
    pairs = import_original(path)
    return ImportedAnswers(
        source=str(path),
        references={k: _reference_frame(list(v.values())) for k, v in references.items()},
        predictions={k: _prediction_frame(v) for k, v in predictions.items()},
        pairs=pairs,
        families=families,
        notes=dict(notes),
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with None (not NaN) for missing values."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _reference_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)


def _prediction_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def reference_schema() -> Any:
    import pyarrow as pa

    s, i = pa.string(), pa.int64()
    types = {
        "row": i,
        "answer_first": pa.bool_(),
        "factors": pa.list_(s),
        "other_info": pa.list_(s),
        "prompt_tokens": i,
        "completion_tokens": i,
        "latency_s": pa.float64(),
        "source_row": i,
    }
    return pa.schema([(c, types.get(c, s)) for c in REFERENCE_COLUMNS])


def prediction_schema() -> Any:
    import pyarrow as pa

    s, i = pa.string(), pa.int64()
    types = {
        "centre_row": i,
        "counterfactual_row": i,
        "answer_first": pa.bool_(),
        "repeat": i,
        "prompt_tokens": i,
        "completion_tokens": i,
        "latency_s": pa.float64(),
        "predictor_index": i,
        "list_position": i,
        "source_row": i,
    }
    return pa.schema([(c, types.get(c, s)) for c in PREDICTION_COLUMNS])


# ---------------------------------------------------------------------------------------------------------------
# --reparse
# ---------------------------------------------------------------------------------------------------------------
def _parsing() -> Any:
    import importlib

    try:
        parsing = importlib.import_module("selfexplain.simulatability.parsing")
    except ImportError as exc:
        raise InputError(f"--reparse needs selfexplain.simulatability.parsing, not importable: {exc}") from exc
    return parsing


def _field(result: Any, *names: str) -> Any:
    for name in names:
        if isinstance(result, Mapping) and name in result:
            return result[name]
        if hasattr(result, name):
            return getattr(result, name)
    return None


def _match_kind(answer_raw: str | None, answer: str | None, options: tuple[str, ...]) -> str:
    """How the original read an answer: "exact" (its text is an option) or "prefix" (its prefix rule)."""
    if answer is None or answer_raw is None:
        return "unreadable"
    return "exact" if _canonical(answer_raw) in {o.upper() for o in options} else "prefix"


def _reason(old: str | None, old_status: str, kind: str, new: str | None, new_status: str) -> str | None:
    if old == new:
        return None
    if old is None:
        return f"original unreadable ({old_status}) -> ours {new_status}"
    if new is None:
        return f"original {kind} match -> ours unreadable ({new_status})"
    return f"original {kind} match -> ours a different option"


def reparse(imported: ImportedAnswers) -> tuple[ImportedAnswers, dict[str, Any]]:
    """The same tables with every raw text re-read by our parser; and the answers that changed, by reason."""
    from selfexplain.simulatability.prompts import answer_options

    parsing = _parsing()
    changes: dict[str, Counter[str]] = {"reference": Counter(), "prediction": Counter()}
    texts = _raw_texts(imported.source)
    # Our re-implementation of the original's reading must give back the answers the file stores.
    disagree = Counter()
    references = {}
    for ref, table in imported.references.items():
        new_rows = []
        for rec in _records(table):
            raw = texts["reference"].get((ref, rec["dataset"], rec["row"], rec["answer_first"]))
            if raw is None:
                new_rows.append(rec)
                continue
            options = tuple(answer_options(rec["dataset"]))
            if _answer(parsing.original_normalize(raw, options)) != rec["answer"]:
                disagree["reference"] += 1
            result = parsing.parse_reference(raw, options)
            new = _answer(_field(result, "answer"))
            new_status = str(_field(result, "answer_status", "status") or ("ok" if new else "unreadable"))
            kind = _match_kind(rec["answer_raw"], rec["answer"], options)
            reason = _reason(rec["answer"], rec["answer_status"], kind, new, new_status)
            changes["reference"][reason or "unchanged"] += 1
            rec = {
                **rec,
                "answer": new,
                "answer_status": new_status,
                "answer_raw": _field(result, "answer_raw"),
                "explanation": _field(result, "explanation"),
                "factors": list(_field(result, "factors") or []),
                "other_info": list(_field(result, "other_info") or []),
                "confidence": _field(result, "confidence"),
                "confidence_raw": _field(result, "confidence_raw"),
                "parse_status": _field(result, "parse_status") or new_status,
            }
            new_rows.append(rec)
        references[ref] = _reference_frame(new_rows)

    lookup = {
        ref: {(r["dataset"], r["row"], r["answer_first"]): r["answer"] for r in _records(t)}
        for ref, t in references.items()
    }
    predictions = {}
    dropped = 0
    for (ref, predictor), table in imported.predictions.items():
        answers = lookup[ref]
        rows = []
        for rec in _records(table):
            centre = answers.get((rec["dataset"], rec["centre_row"], rec["answer_first"]))
            if centre is None:
                dropped += 1
                continue
            rec["reference_centre_answer"] = centre
            rec["reference_counterfactual_answer"] = answers.get(
                (rec["dataset"], rec["counterfactual_row"], rec["answer_first"])
            )
            raw = texts["prediction"].get((rec["source_row"], rec["condition"])) if rec["list_position"] == 0 else None
            if raw is not None and rec["prediction_status"] != NOT_RECORDED and rec["response"] is not None:
                options = tuple(answer_options(rec["dataset"]))
                if _answer(parsing.original_normalize(raw, options)) != rec["prediction"]:
                    disagree["prediction"] += 1
                result = parsing.parse_prediction(raw, options)
                new = _answer(_field(result, "answer"))
                new_status = str(_field(result, "status", "answer_status") or ("ok" if new else "unreadable"))
                kind = _match_kind(rec["prediction_raw"], rec["prediction"], options)
                changes["prediction"][
                    _reason(rec["prediction"], rec["prediction_status"], kind, new, new_status) or "unchanged"
                ] += 1
                rec.update(
                    prediction=new,
                    prediction_status=new_status,
                    prediction_raw=_field(result, "raw", "answer_raw"),
                    confidence=_field(result, "confidence"),
                )
            rows.append(rec)
        predictions[(ref, predictor)] = _prediction_frame(rows)
    out = ImportedAnswers(
        source=imported.source,
        references=references,
        predictions=predictions,
        pairs=imported.pairs,
        families=imported.families,
        notes={**imported.notes, "reparsed": True},
    )
    effect = {
        "reference_answers": dict(sorted(changes["reference"].items())),
        "first_predictor_answers": dict(sorted(changes["prediction"].items())),
        "prediction_rows_dropped_centre_unreadable": dropped,
        "original_normalize_disagrees": {k: disagree[k] for k in ("reference", "prediction")},
        "not_reparsed": "predictors after the first and repeats after the first (no raw text in the file); pairs "
        "whose centre the original could not read (dropped by its predictor step)",
    }
    return out, effect


def _raw_texts(path: str | Path) -> dict[str, dict[tuple, str]]:
    """The raw texts the file keeps: both reference answers of every record, and the first predictor's first
    answer per condition (the only predictor texts it has)."""
    columns, n = read_original_answers(path)
    reference: dict[tuple, str] = {}
    prediction: dict[tuple, str] = {}
    for i in range(n):
        dataset = str(columns["original_dataset"][i])
        first = columns["original_answer_first"][i]
        answer_first = True if first is None else bool(first)
        for side, row_col in (("centre", "original_question_idx"), ("counterfactual", "counterfactual_question_idx")):
            block = _block(columns, REFERENCE_BLOCKS[side], i)
            if block.key is not None and block.raw_response is not None:
                reference.setdefault((block.key, dataset, int(columns[row_col][i]), answer_first), block.raw_response)
        for condition, prefix in PREDICTOR_BLOCKS.items():
            block = _block(columns, prefix, i)
            if block.raw_response is not None:
                prediction[(i, condition)] = block.raw_response
    return {"reference": reference, "prediction": prediction}


def nsg_by_reference(imported: ImportedAnswers) -> dict[str, dict[str, Any]]:
    """Pooled NSG (all predictors, and the first predictor alone) per reference model, without CIs."""
    from selfexplain.simulatability.metrics import Resampler, compare, observations

    out = {}
    none = Resampler("ours", resamples=0)
    for ref, table in imported.references.items():
        preds = [p for (r, _), p in imported.predictions.items() if r == ref]
        if not preds:
            continue
        obs = observations(table, preds, imported.families)
        first = obs.loc[obs["predictor_index"] == obs["predictor_index"].min()]
        pooled = compare(obs, resampler=none)
        single = compare(first, resampler=none)
        out[ref] = {
            "nsg": pooled["nsg"],
            "n": pooled["n"],
            "first_predictor_nsg": single["nsg"],
            "first_predictor_n": single["n"],
        }
    return out


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------
def write_tables(imported: ImportedAnswers, out_dir: str | Path, extra: Mapping[str, Any] | None = None) -> dict:
    """Write the layout of the module docstring; returns what import.json records."""
    from selfexplain.io import provenance, write_json, write_parquet
    from selfexplain.simulatability.pairs import write_pairs

    out_dir = Path(out_dir)
    folders: dict[str, str] = {}
    for key in sorted({*imported.references, *(p for _, p in imported.predictions)}):
        name = folder_name(key)
        clash = [k for k, v in folders.items() if v == name]
        if clash:
            raise InputError(f"model keys {clash[0]!r} and {key!r} map to the same folder name {name!r}")
        folders[key] = name
    stamp = provenance(stage="import-answers", input=imported.source, reparse=bool(imported.notes.get("reparsed")))
    written = []
    for ref, table in imported.references.items():
        path = out_dir / folders[ref] / "reference.parquet"
        write_parquet(table, path, {**stamp, "reference": ref}, schema=reference_schema())
        written.append(str(path))
    for (ref, predictor), table in imported.predictions.items():
        path = out_dir / folders[ref] / folders[predictor] / "predictions.parquet"
        write_parquet(table, path, {**stamp, "reference": ref, "predictor": predictor}, schema=prediction_schema())
        written.append(str(path))
    write_pairs(imported.pairs, out_dir / "eval_set.parquet", provenance(stage="import-answers", input=imported.source))
    predictor_index = {}
    for (_, predictor), table in imported.predictions.items():
        predictor_index.setdefault(predictor, int(table["predictor_index"].min()))
    meta = {
        "source": imported.source,
        "records": len(imported.pairs),
        "references": {k: folders[k] for k in sorted(imported.references)},
        "predictors": {k: folders[k] for k in sorted(predictor_index)},
        "predictor_index": dict(sorted(predictor_index.items(), key=lambda kv: kv[1])),
        "families": dict(sorted(imported.families.items())),
        "family_rule": FAMILY_RULE,
        "notes": imported.notes,
        **(extra or {}),
    }
    write_json({**meta, "provenance": stamp}, out_dir / "import.json")
    meta["written"] = written
    return meta


def import_answers(path: str | Path, out_dir: str | Path, reparse_texts: bool = False) -> dict[str, Any]:
    """`selfexplain simulatability import-answers`: read, optionally re-parse, write; returns import.json's content
    (plus `reparse_effect` with the answer changes and the NSG before and after when re-parsing)."""
    imported = build_tables(path)
    extra: dict[str, Any] = {}
    if reparse_texts:
        before = nsg_by_reference(imported)
        imported, effect = reparse(imported)
        after = nsg_by_reference(imported)
        effect["nsg"] = {ref: {"original_parse": before.get(ref), "our_parse": after.get(ref)} for ref in before}
        extra["reparse_effect"] = effect
    return write_tables(imported, out_dir, extra)
