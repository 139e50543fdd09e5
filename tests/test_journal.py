"""The journal: resume after a kill, torn lines, failed requests retried, identities kept apart."""

from __future__ import annotations

import pytest

from selfexplain.errors import InferenceError
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.journal import Journal
from selfexplain.llm.runner import run_requests
from selfexplain.llm.types import ChatRequest, Completion, Sampling


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
