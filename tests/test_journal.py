"""The journal: resume after a kill, torn lines, failed requests retried, identities kept apart."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from selfexplain.errors import InferenceError, InputError
from selfexplain.io import write_parquet
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.journal import Journal
from selfexplain.llm.runner import completion_columns, run_requests
from selfexplain.llm.synthetic import SyntheticBackend, SyntheticModel
from selfexplain.llm.types import ChatRequest, Completion, Sampling
from selfexplain.parsing.tags import extract_sections
from tests.conftest import REPO


class CountingBackend:
    def __init__(self, fail_on=()):
        self.calls = []
        self.fail_on = set(fail_on)

    def preflight(self):
        pass

    def complete(self, requests):
        for i, r in enumerate(requests):
            self.calls.append(r.key)
            text = r.messages[-1]["content"].upper()
            if r.messages[-1]["content"] in self.fail_on:
                yield i, Completion(text=None, error="HTTP 500")
            else:
                yield i, Completion(text=text, prompt_tokens=1, completion_tokens=1)


def _requests(texts, identity=None):
    identity = identity or {"backend": "test", "model_id": "m", "revision": None}
    return [
        ChatRequest(messages=({"role": "user", "content": t},), sampling=Sampling(), identity=identity) for t in texts
    ]


def test_rerun_sends_nothing_twice(tmp_path):
    path = tmp_path / "j.jsonl"
    backend = CountingBackend()
    first = run_requests(backend, _requests(["a", "b"]), path, progress=False)
    again = run_requests(backend, _requests(["a", "b", "c"]), path, progress=False)
    assert [c.text for c in first] == ["A", "B"]
    assert [c.text for c in again] == ["A", "B", "C"]
    assert len(backend.calls) == 3 == len(set(backend.calls))


def test_duplicate_requests_in_a_job_are_sent_once(tmp_path):
    backend = CountingBackend()
    out = run_requests(backend, _requests(["a", "a", "b"]), tmp_path / "j.jsonl", progress=False)
    assert [c.text for c in out] == ["A", "A", "B"]
    assert len(backend.calls) == 2


def test_torn_last_line_is_ignored_and_next_record_starts_clean(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.append("k1", Completion(text="one"))
    with path.open("a") as handle:
        handle.write('{"key": "k2", "completion": {"te')  # killed mid-write
    with Journal(path) as journal:
        assert journal.torn_lines == 1
        assert "k1" in journal and "k2" not in journal
        journal.append("k3", Completion(text="three"))
    with Journal(path) as journal:
        assert journal.get("k3").text == "three"


def test_failed_requests_are_recorded_but_asked_again(tmp_path):
    path = tmp_path / "j.jsonl"
    failing = CountingBackend(fail_on={"b"})
    with pytest.raises(InferenceError, match=r"1 of 2 request\(s\) failed for good \(e\.g\. HTTP 500\).*1 answers"):
        run_requests(failing, _requests(["a", "b"]), path, progress=False)
    out = run_requests(failing, _requests(["a", "b"]), path, progress=False, fail_on_error=False)
    assert out[1].error == "HTTP 500" and failing.calls.count(_requests(["a"])[0].key) == 1
    healthy = CountingBackend()
    out = run_requests(healthy, _requests(["a", "b"]), path, progress=False)
    assert [c.text for c in out] == ["A", "B"]
    assert len(healthy.calls) == 1


def test_two_models_with_identical_prompts_never_share_a_key():
    a = parse_entry("a", {"backend": "synthetic", "model_id": "x", "synthetic": {"sce": {"counterfactual": "exact"}}})
    b = parse_entry("b", {"backend": "synthetic", "model_id": "x", "synthetic": {"sce": {"counterfactual": "timid"}}})
    c = parse_entry("c", {"backend": "openai", "model_id": "gpt", "base_url": "http://one"})
    d = parse_entry("d", {"backend": "openai", "model_id": "gpt", "base_url": "http://two"})
    keys = {_requests(["same"], e.identity)[0].key for e in (a, b, c, d)}
    assert len(keys) == 4
    hotter = ChatRequest(
        messages=({"role": "user", "content": "same"},), sampling=Sampling(temperature=1.0), identity=c.identity
    )
    assert hotter.key != _requests(["same"], c.identity)[0].key


# ---------------------------------------------------------------------------------------------------------------
# Issue 9 item 2: the journal survives anything a kill or a bad model can produce.

ODD_TEXTS = [
    "\ud800",  # a lone high surrogate, as a broken decoder hands it over
    "left\udfffright",  # a lone low surrogate between ordinary text
    "\udcf0\udc9f",  # a 4-byte emoji cut in half, decoded with surrogateescape
    "😀"[:1] + "\ud83d",  # a whole emoji, then the first UTF-16 half of another
    "nul\x00inside",
    "\uffff\ufffe noncharacters",
    "\u200fRTL mark, \u202eoverride\u202c, \u2067isolate\u2069",
    "line\u2028separator\u2029paragraph\x85next line\r\nCRLF\rCR\x1e",
    "",
    "é, 中文, 🏳️‍🌈, e\u0301",
]


def _record_bytes(key, text="x", **fields):
    """A journal line exactly as the previous writer wrote it (UTF-8, not ASCII-escaped)."""
    completion = Completion(text=text).to_dict() | fields
    return (json.dumps({"key": key, "time": 1.0, "completion": completion}, ensure_ascii=False) + "\n").encode()


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


class Replies:
    """A synthetic respondent answering each user message from a dict."""

    def __init__(self, replies):
        self.replies = replies

    def respond(self, messages):
        return self.replies.get(messages[-1]["content"])


def _synthetic(tmp_path, replies, name):
    """The synthetic backend answering from `replies`, logging each key it is asked to `name`.jsonl."""
    backend = SyntheticBackend(call_log=tmp_path / f"{name}.jsonl")
    backend.model = SyntheticModel(respondents=[Replies(replies)])
    return backend


def _asked(tmp_path, name):
    path = tmp_path / f"{name}.jsonl"
    return [json.loads(line)["key"] for line in path.read_text().splitlines()] if path.exists() else []


def test_odd_text_round_trips_exactly_in_an_ascii_file(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        for i, text in enumerate(ODD_TEXTS):
            journal.append(f"k{i}", Completion(text=text, reasoning=text[::-1], model=text, prompt_tokens=i))
        journal.append("failed", Completion(text=None, error="HTTP 500: \ud800\x00"))
    data = path.read_bytes()
    assert data.isascii() and data.count(b"\n") == len(ODD_TEXTS) + 1
    with Journal(path) as journal:
        assert len(journal) == len(ODD_TEXTS) and journal.skipped == [] and journal.torn_lines == 0
        for i, text in enumerate(ODD_TEXTS):
            got = journal.get(f"k{i}")
            assert (got.text, got.reasoning, got.model, got.prompt_tokens) == (text, text[::-1], text, i)
        assert "failed" not in journal


def test_runner_journals_lone_surrogates_exactly_and_returns_them_as_replacement_characters(tmp_path):
    """The journal keeps the model's exact text; what the runner hands on (to tables, to follow-up requests) has
    each lone surrogate replaced by U+FFFD, so pyarrow can write it (it refuses the raw text)."""
    path = tmp_path / "j.jsonl"
    reply = "<think>maybe \ud800</think>I pick \udcff\n[ANSWER] yes\n[NOTE] \ud83d half, \ud83d\ude00 whole"
    first = run_requests(_synthetic(tmp_path, {"q": reply}, "first"), _requests(["q"]), path, progress=False)
    again = run_requests(_synthetic(tmp_path, {"q": "other"}, "again"), _requests(["q"]), path, progress=False)
    assert _asked(tmp_path, "again") == []
    clean = "I pick \ufffd\n[ANSWER] yes\n[NOTE] \ufffd half, \U0001f600 whole"
    assert again[0].text == first[0].text == clean
    assert again[0].reasoning == first[0].reasoning == "maybe \ufffd"
    assert extract_sections(again[0].text, ["ANSWER", "NOTE"]) == {
        "ANSWER": "yes",
        "NOTE": "\ufffd half, \U0001f600 whole",
    }
    with Journal(path) as journal:
        (key,) = [r.key for r in _requests(["q"])]
        held = journal.get(key)
    # a high-low pair reads back as its character (JSON's escapes join it), as the runner's clean-up makes it too
    assert held.text == "I pick \udcff\n[ANSWER] yes\n[NOTE] \ud83d half, \U0001f600 whole"
    assert held.reasoning == "maybe \ud800"
    frame = pd.DataFrame(completion_columns(again, _requests(["q"])))
    write_parquet(frame, tmp_path / "answers.parquet")
    assert pd.read_parquet(tmp_path / "answers.parquet")["response"].tolist() == [clean]
    with pytest.raises(UnicodeEncodeError):
        write_parquet(pd.DataFrame({"response": [held.text]}), tmp_path / "raw.parquet")


def test_torn_last_line_cut_inside_a_multibyte_character(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    whole = _record_bytes("k2", "smile 😀 done")
    cut = whole.index("😀".encode()) + 2  # two of the emoji's four bytes
    path.write_bytes(_record_bytes("k1", "café") + whole[:cut])
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert journal.get("k1").text == "café" and "k2" not in journal and journal.torn_lines == 1
        journal.append("k3", Completion(text="three"))
    [warning] = _warnings(caplog)
    assert warning.startswith(f"{path}:2: torn last line (")
    assert f"{cut} bytes" in warning and "asked again" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert journal.get("k1").text == "café" and journal.get("k3").text == "three" and "k2" not in journal
    assert _warnings(caplog) == []  # the torn bytes are gone, so the warning is given once
    assert path.read_bytes().startswith(_record_bytes("k1", "café")) and path.read_bytes().count(b"\n") == 2


def test_torn_half_record_is_warned_about_with_file_and_line_and_removed(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    path.write_bytes(_record_bytes("k1") + _record_bytes("k2") + b'{"key": "k3", "completion": {"te')
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert {"k1", "k2"} <= set(journal._done) and "k3" not in journal and len(journal) == 2
    [warning] = _warnings(caplog)
    assert warning.startswith(
        f"{path}:3: torn last line (not JSON: Unterminated string starting at column 30; 32 bytes"
    )
    assert path.read_bytes() == _record_bytes("k1") + _record_bytes("k2")


def test_journal_holding_only_a_torn_first_record_is_emptied_not_refused(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"key": "k1", "ti')
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert len(journal) == 0 and journal.torn_lines == 1
    assert path.read_bytes() == b""
    assert _warnings(caplog)[0].startswith(f"{path}:1: torn last line")


def test_complete_last_record_without_newline_is_kept_and_the_next_starts_a_new_line(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    path.write_bytes(_record_bytes("k1") + _record_bytes("k2").rstrip(b"\n"))
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert "k2" in journal and journal.torn_lines == 0
        journal.append("k3", Completion(text="three"))
    with Journal(path) as journal:
        assert [journal.get(k).text for k in ("k1", "k2", "k3")] == ["x", "x", "three"] and journal.skipped == []
    assert _warnings(caplog) == []


def test_damaged_lines_in_the_middle_are_skipped_with_file_and_line(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    full = Completion(text="x").to_dict()
    lines = [
        _record_bytes("good1"),
        b"\xff\xfe\x00garbage from a disk fault\n",  # 2: not UTF-8
        b"\x00" * 40 + b"\n",  # 3: zeros a crash left behind
        b"[1, 2, 3]\n",  # 4: JSON, not an object
        b'{"key": "k", "time": 1.5}\n',  # 5: a call-log line
        json.dumps({"key": "no_error", "completion": {"text": "x"}}).encode() + b"\n",  # 6: completion lacks fields
        json.dumps({"key": "str_tokens", "completion": full | {"prompt_tokens": "12"}}).encode() + b"\n",  # 7
        json.dumps({"key": "no_text", "completion": full | {"text": None}}).encode() + b"\n",  # 8: answer, no text
        json.dumps({"key": "", "completion": full}).encode() + b"\n",  # 9: empty key
        b'{"key": "half", "completion": {"text": "abc\n',  # 10: torn by the previous writer, then a newline
        b"\n",  # 11: blank, left by the previous writer's repair: not worth a warning
        _record_bytes("good2", "é"),
    ]
    path.write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert set(journal._done) == {"good1", "good2"} and journal.torn_lines == 0
        assert [n for n, _ in journal.skipped] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    warnings = _warnings(caplog)
    assert warnings == [
        f"{path}:2: skipped, not UTF-8 (byte 0xff at column 1); its request, if any, is asked again",
        f"{path}:3: skipped, zero bytes (left by a crash or a disk fault); its request, if any, is asked again",
        f"{path}:4: skipped, a JSON array, not a journal record; its request, if any, is asked again",
        f"{path}:5: skipped, a record without a 'completion' object; its request, if any, is asked again",
        f"{path}:6: skipped, a completion lacking 'reasoning', 'finish_reason', 'prompt_tokens', "
        "'completion_tokens', 'latency_s', 'error', 'model'; its request, if any, is asked again",
        f"{path}:7: skipped, a completion whose 'prompt_tokens' is a str, not int; its request, if any, is asked again",
        f"{path}:8: skipped, an answer without text (neither 'text' nor 'error'); its request, if any, is asked again",
        f"{path}:9: skipped, a record without a 'key'; its request, if any, is asked again",
        f"{path}:10: skipped, not JSON: Unterminated string starting at column 40; its request, if any, is asked again",
    ]


def test_many_damaged_lines_give_a_bounded_number_of_warnings(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    path.write_bytes(_record_bytes("good") + b"\xff\n" * 25)
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert len(journal.skipped) == 25 and "good" in journal
    warnings = _warnings(caplog)
    assert len(warnings) == 11 and warnings[9].startswith(f"{path}:11: skipped, not UTF-8")
    assert warnings[10] == f"{path}: 15 more damaged lines skipped (lines 12-26)"


@pytest.mark.parametrize(
    "content",
    [
        b"row_id,answer\n1,yes\n2,no\n",  # a results table
        b'{"key": "abc", "time": 1.0}\n{"key": "def", "time": 2.0}\n',  # the synthetic backend's call log
        b'{\n  "provenance": {"selfexplain": "1.0"}\n}\n',  # a JSON output
        b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00\x08\x1c\xff\n\x00PAR1",  # a Parquet file
    ],
    ids=["csv", "call-log", "json", "parquet"],
)
def test_a_file_that_is_not_a_journal_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "j.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:1: not a selfexplain journal \(") as info:
        Journal(path)
    assert "\n" not in str(info.value) and "delete it" in str(info.value)
    assert path.read_bytes() == content


def test_append_refuses_a_completion_that_could_not_be_read_back(tmp_path):
    with Journal(tmp_path / "j.jsonl") as journal:
        with pytest.raises(TypeError, match=r"journal .*j\.jsonl: cannot record k1: a completion whose 'text' is"):
            journal.append("k1", Completion(text=42))
        with pytest.raises(TypeError, match="an answer without text"):
            journal.append("k2", Completion(text=None))
        journal.append("k3", Completion(text="fine"))
    assert (tmp_path / "j.jsonl").read_bytes().count(b"\n") == 1


def test_runner_asks_again_exactly_the_torn_and_the_damaged_requests(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    replies = {t: f"answer {t} \ud800😀" for t in "abcd"}
    first = run_requests(_synthetic(tmp_path, replies, "first"), _requests(list("abcd")), path, progress=False)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4 and len(_asked(tmp_path, "first")) == 4
    lines[1] = lines[1][:20] + b"\xc3" + lines[1][21:]  # a disk fault flips one byte of b's record
    lines[3] = lines[3][: lines[3].index(b"\\ud83d") + 3]  # killed inside d's escaped emoji
    path.write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING):
        again = run_requests(_synthetic(tmp_path, replies, "again"), _requests(list("abcd")), path, progress=False)
    keys = [r.key for r in _requests(list("abcd"))]
    assert _asked(tmp_path, "again") == [keys[1], keys[3]]
    assert [c.text for c in again] == [c.text for c in first] == [f"answer {t} \ufffd😀" for t in "abcd"]
    warnings = _warnings(caplog)
    assert [w.split(" ", 1)[0] for w in warnings] == [f"{path}:2:", f"{path}:4:"]
    assert "torn last line" in warnings[1]


_KILL_LOOP = """
import sys
from selfexplain.llm.runner import run_requests
from selfexplain.llm.synthetic import SyntheticBackend, SyntheticModel
from selfexplain.llm.types import ChatRequest, Sampling

class Big:
    def respond(self, messages):
        n = int(messages[-1]["content"])
        return f"{n}:" + ("é\\ud800😀x" * 40_000 + "\\n") * 5

backend = SyntheticBackend()
backend.model = SyntheticModel(respondents=[Big()])
identity = {"backend": "test", "model_id": "m", "revision": None}
requests = [
    ChatRequest(messages=({"role": "user", "content": str(i)},), sampling=Sampling(), identity=identity)
    for i in range(int(sys.argv[2]))
]
run_requests(backend, requests, sys.argv[1], progress=False)
"""
RECORD_BYTES = 5 * (40_000 * 25 + 2)  # each answer ASCII-escaped: é 6 bytes, \ud800 6, 😀 12, x 1


def _kill_mid_record(path, n):
    """Run the loop above and SIGKILL it the moment the file ends inside a record (after at least one record)."""
    proc = subprocess.Popen([sys.executable, "-c", _KILL_LOOP, str(path), str(n)], env=_env())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            size = path.stat().st_size if path.exists() else 0
            if size > RECORD_BYTES:
                with path.open("rb") as handle:
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":
                        proc.send_signal(signal.SIGKILL)
                        break
            time.sleep(0.0002)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode


def test_sigkill_during_appends_keeps_every_complete_record_and_asks_the_torn_one_again(tmp_path, caplog):
    """A real kill: a job journaling 5 MB answers is killed with SIGKILL when the file ends mid-record. Whether the
    write was still going when the signal landed is up to the kernel, so up to 5 jobs are killed until one is torn."""
    n = 12
    requests = [
        ChatRequest(messages=({"role": "user", "content": str(i)},), sampling=Sampling(), identity=_IDENTITY)
        for i in range(n)
    ]
    for attempt in range(5):
        path = tmp_path / f"j{attempt}.jsonl"
        assert _kill_mid_record(path, n) == -signal.SIGKILL, "the job finished before it could be killed"
        data = path.read_bytes()
        complete, torn = data.count(b"\n"), not data.endswith(b"\n")
        del data
        caplog.clear()
        with caplog.at_level(logging.WARNING), Journal(path) as journal:
            assert len(journal) == complete and journal.skipped == [] and journal.torn_lines == int(torn)
            assert {i for i, r in enumerate(requests) if r.key in journal} == set(range(complete))
        if torn:
            [warning] = _warnings(caplog)
            assert warning.startswith(f"{path}:{complete + 1}: torn last line")
            backend = _synthetic(tmp_path, {str(complete): "re-asked"}, f"rerun{attempt}")
            out = run_requests(backend, requests[: complete + 1], path, progress=False)
            assert _asked(tmp_path, f"rerun{attempt}") == [requests[complete].key]
            assert out[complete].text == "re-asked" and out[0].text.startswith(
                "0:é\ufffd😀x"
            )  # as the runner hands it on
            assert len(out[0].text) == 2 + 5 * (4 * 40_000 + 1)
            break
        path.unlink()
    else:
        pytest.fail("no kill landed inside a record in 5 attempts")
    for leftover in tmp_path.glob("j*.jsonl"):  # pytest keeps the last runs' folders: do not leave 60 MB behind
        leftover.unlink()


_IDENTITY = {"backend": "test", "model_id": "m", "revision": None}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def test_a_write_stopped_half_way_does_not_glue_the_next_record_to_it(tmp_path, monkeypatch, caplog):
    """A full disk stops a record half-way; the job goes on (or a later one does) and the next record stays whole."""
    import selfexplain.llm.journal as journal_module

    path = tmp_path / "j.jsonl"
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data[:30]))
        raise OSError(28, "No space left on device")

    with Journal(path) as journal:
        journal.append("k1", Completion(text="one"))
        monkeypatch.setattr(journal_module.os, "write", full_disk)
        with pytest.raises(OSError, match="No space left"):
            journal.append("k2", Completion(text="two"))
        monkeypatch.setattr(journal_module.os, "write", real_write)
        journal.append("k3", Completion(text="three"))
    with caplog.at_level(logging.WARNING), Journal(path) as journal:
        assert [journal.get(k).text if k in journal else None for k in ("k1", "k2", "k3")] == ["one", None, "three"]
    assert _warnings(caplog) == [
        f"{path}:2: skipped, not JSON: Expecting ',' delimiter at column 31; its request, if any, is asked again"
    ]


def test_request_keys_hash_lone_surrogates_and_keep_old_keys():
    """A reply with a lone surrogate may come back as a follow-up's assistant turn: its request still has a key, and
    keys of ordinary text are the plain UTF-8 hash they always were."""
    import hashlib
    import json

    odd = ChatRequest(messages=({"role": "assistant", "content": "a\ud800b"},), sampling=Sampling(), identity={})
    assert len(odd.key) == 64
    plain = ChatRequest(messages=({"role": "user", "content": "héllo ✓"},), sampling=Sampling(), identity={"m": 1})
    payload = json.dumps(
        {"model": {"m": 1}, "messages": [{"role": "user", "content": "héllo ✓"}], "sampling": Sampling().to_dict()},
        sort_keys=True,
        ensure_ascii=False,
    )
    assert plain.key == hashlib.sha256(payload.encode("utf-8")).hexdigest()
