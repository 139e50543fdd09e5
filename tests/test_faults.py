"""Fault-injection matrix: both API backends over real HTTP against `selfexplain serve` in a subprocess.

Each case ends in completion or a one-line failure, loses no row, and pays for no answer twice beyond the requests
in flight: the server's request log counts what was asked (a good answer is a 200 that is not a bad-answer fault).
Cases: every bad-answer kind (retried, then an error row naming its kind), a torn journal (only the torn request is
asked again), a rejected key (in preflight, and a key revoked mid-run: the job stops after the first 401), a dead
endpoint, and the server killed mid-run (the job stops as "endpoint unreachable") then restarted (the rerun
completes). More journal damage (kills mid-write, damaged lines) is covered in tests/test_journal.py.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selfexplain.errors import ConfigError, InferenceError
from selfexplain.llm.backends import make_backend
from selfexplain.llm.catalog import ModelEntry, parse_entry
from selfexplain.llm.retry import EndpointUnreachable, KeyRejected
from selfexplain.llm.runner import run_requests
from selfexplain.llm.synthetic import SyntheticModel
from selfexplain.llm.types import ChatRequest
from selfexplain.prompts import load_template
from selfexplain.sce.prompts import first_pass_fields
from selfexplain.serve import BAD_ANSWERS
from selfexplain.tabular.features import load_dataset_spec
from selfexplain.tabular.grids import build_grid
from tests.conftest import REPO

BACKENDS = ("openai", "anthropic")
MODEL = SyntheticModel({"sce": {"counterfactual": "exact"}})  # what `--model m=exact` serves
KEY_ENV = "SELFEXPLAIN_FAULTS_KEY"
# The kind of MalformedResponseError each served kind becomes (None: the answer is still there).
CLIENT_KIND = {
    "openai": {
        "content_number": "content_number",
        "content_parts": None,
        "choices_null": "choices_null",
        "no_message": "no_message",
        "not_json": "not_json",
        "tool_call": "tool_call",
        "unknown_block": "content_without_text",
        "empty_content": "no_choices",
    },
    "anthropic": {
        "content_number": "content_number",
        "content_parts": None,
        "choices_null": "block_null",
        "no_message": "no_content",
        "not_json": "not_json",
        "tool_call": "tool_call",
        "unknown_block": "unknown_block",
        "empty_content": "empty_content",
    },
}


# -- helpers --------------------------------------------------------------------------------------------------
class Serve:
    """`python -m selfexplain.cli serve` in a subprocess, appending to `log`."""

    def __init__(self, log: Path, *args: str, port: int = 0, env: dict[str, str] | None = None) -> None:
        self.log = log
        command = [sys.executable, "-m", "selfexplain.cli", "serve", "--model", "m=exact", "--port", str(port)]
        command += ["--request-log", str(log), *args]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        self.url = ""

    def ready(self) -> Serve:
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"selfexplain serve did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[-1].strip()
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[-1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


def entry_for(backend: str, url: str, **overrides) -> ModelEntry:
    data = {
        "backend": backend,
        "model_id": "m",
        "base_url": url + "/v1" if backend == "openai" else url,
        "sampling": {"temperature": None},
        "request_timeout_s": 10,
        **overrides,
    }
    return parse_entry(f"served-{backend}", data)


def fast(entry: ModelEntry):
    backend = make_backend(entry)
    backend.backoff_initial_s = 0.02
    backend.backoff_max_s = 0.1
    return backend


_CHATS: list[tuple[dict, ...]] = []


def chats(n: int) -> list[tuple[dict, ...]]:
    """n distinct income first-pass chats (their answers differ from record to record)."""
    if len(_CHATS) < n:
        spec = load_dataset_spec("income")
        template = load_template(REPO / "config/prompts/sce", "first_pass", "income")
        _CHATS[:] = [
            ({"role": "user", "content": template.render(first_pass_fields(spec, description))},)
            for description in build_grid(spec)["description"][:400]
        ]
    return _CHATS[:n]


def requests_for(entry: ModelEntry, n: int) -> list[ChatRequest]:
    return [entry.request(messages) for messages in chats(n)]


def paid_answers(records: list[dict]) -> collections.Counter:
    """Good answers per request hash: 200s that were no bad answer (content_parts still holds the answer)."""
    return collections.Counter(
        r["request_hash"]
        for r in records
        if r["status"] == 200 and r["fault"] in (None, "slow", "content_parts") and r["endpoint"] != "/v1/models"
    )


def endpoint_of(backend: str) -> str:
    return "/v1/chat/completions" if backend == "openai" else "/v1/messages"


# -- servers, started together (each takes about a second to import) --------------------------------------------
@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    started = {
        kind: Serve(folder / f"{kind}.jsonl", "--bad-answer", f"{kind}=0.5", "--seed", "4") for kind in BAD_ANSWERS
    }
    mixed = [arg for kind in BAD_ANSWERS for arg in ("--bad-answer", f"{kind}=0.04")]
    started["mixed"] = Serve(folder / "mixed.jsonl", *mixed, "--error-rate", "0.05", "--drop-rate", "0.03")
    started["keyed"] = Serve(folder / "keyed.jsonl", "--api-key-env", KEY_ENV, env={KEY_ENV: "sk-the-right-key-123"})
    started["plain"] = Serve(folder / "plain.jsonl")
    try:
        yield {name: server.ready() for name, server in started.items()}
    finally:
        for server in started.values():
            server.proc.kill()
        for server in started.values():
            server.proc.wait(timeout=30)


# -- bad answers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", BAD_ANSWERS)
def test_bad_answer_is_retried_then_an_error_row(servers, backend, kind, tmp_path):
    """Half the answers are bad: retried once; those bad twice become error rows naming the kind, the job's one
    error line comes at the end, and every good answer is journaled and paid once."""
    server = servers[kind]
    before = len(server.records())
    entry = entry_for(backend, server.url, concurrency=1, max_retries=1)
    requests = requests_for(entry, 12)
    journal = tmp_path / "journal.jsonl"
    expected = CLIENT_KIND[backend][kind]
    if expected is None:
        out = run_requests(fast(entry), requests, journal, progress=False)
        assert [c.text for c in out] == [MODEL.respond(r.messages) for r in requests]
    else:
        with pytest.raises(InferenceError) as info:
            run_requests(fast(entry), requests, journal, progress=False)
        message = str(info.value)
        assert "\n" not in message and f"MalformedResponseError: {expected}: " in message
        out = run_requests(fast(entry), requests, journal, progress=False, fail_on_error=False)  # asks the rest again
        failed_first = int(message.split(": ", 2)[1].split(" of ")[0])
        assert failed_first >= 1
    records = server.records()[before:]
    assert {r["endpoint"] for r in records} == {endpoint_of(backend)}
    assert collections.Counter(r["fault"] for r in records)[kind] >= 2
    paid = paid_answers(records)
    assert max(paid.values()) == 1  # no good answer was ever asked for again
    assert sum(c.ok for c in out) == len(paid)
    for request, completion in zip(requests, out, strict=True):
        if completion.ok:
            assert completion.text == MODEL.respond(request.messages)
        else:
            assert completion.error.startswith(f"MalformedResponseError: {expected}: ")
    lines = journal.read_text().splitlines()
    assert len(lines) >= len(requests) and {json.loads(line)["key"] for line in lines} == {r.key for r in requests}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_fault_at_once_still_completes(servers, backend, tmp_path):
    server = servers["mixed"]
    before = len(server.records())
    entry = entry_for(backend, server.url, concurrency=8, max_retries=12)
    requests = requests_for(entry, 120)
    out = run_requests(fast(entry), requests, tmp_path / "journal.jsonl", progress=False)
    assert [c.text for c in out] == [MODEL.respond(r.messages) for r in requests]
    records = server.records()[before:]
    faults = collections.Counter(r["fault"] for r in records)
    assert faults["error"] and faults["drop"] and sum(faults[k] for k in BAD_ANSWERS) >= 10
    paid = paid_answers(records)
    assert len(paid) == 120 and max(paid.values()) == 1


# -- a torn journal -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_torn_journal_asks_again_only_the_torn_request(servers, backend, tmp_path, caplog):
    """A job killed while writing its last record: the rerun warns with file and line, asks that one request again
    and nothing else, and returns every answer."""
    server = servers["plain"]
    before = len(server.records())
    entry = entry_for(backend, server.url, concurrency=4)
    requests = requests_for(entry, 20)
    journal = tmp_path / "journal.jsonl"
    first = run_requests(fast(entry), requests, journal, progress=False)
    data = journal.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    journal.write_bytes(data[: len(data) - len(last) // 2 - 1])  # half of the last record is left
    torn_key = json.loads(last)["key"]
    with caplog.at_level(logging.WARNING):
        again = run_requests(fast(entry), requests, journal, progress=False)
    assert [c.text for c in again] == [c.text for c in first] == [MODEL.respond(r.messages) for r in requests]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"{journal}:20: torn last line")
    records = server.records()[before:]
    assert len(records) == 21  # 20, then the torn one again
    paid = paid_answers(records)
    assert len(paid) == 20 and sorted(paid.values()) == [1] * 19 + [2]
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(lines) == 20 and lines[-1]["key"] == torn_key


# -- a rejected key -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_key_stops_before_any_paid_request(servers, backend, tmp_path, monkeypatch):
    server = servers["keyed"]
    before = len(server.records())
    monkeypatch.setenv(KEY_ENV, "sk-a-wrong-key-456")
    entry = entry_for(backend, server.url, api_key_env=KEY_ENV)
    with pytest.raises(KeyRejected) as info:
        run_requests(make_backend(entry), requests_for(entry, 5), tmp_path / "journal.jsonl", progress=False)
    message = str(info.value)
    assert "\n" not in message and "sk-a-wrong-key-456" not in message
    assert f"model {entry.name!r}" in message and f"${KEY_ENV}" in message and "HTTP 401" in message
    assert server.records()[before:] == []  # preflight asked the free models list only
    assert isinstance(info.value, ConfigError)
    monkeypatch.setenv(KEY_ENV, "sk-the-right-key-123")
    out = run_requests(make_backend(entry), requests_for(entry, 5), tmp_path / "journal.jsonl", progress=False)
    assert all(c.ok for c in out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_key_revoked_mid_run_stops_the_job_after_the_first_401(backend, tmp_path, monkeypatch):
    """Preflight passes (the models list answers), then every request after the 30th gets 401: the job stops at
    once with one line, keeps every answer it holds, sends no retry, and the rerun (key fixed) sends only the rest."""
    n, concurrency, allowed = 80, 4, 30
    monkeypatch.setenv(KEY_ENV, "sk-soon-revoked-789")
    log = tmp_path / "requests.jsonl"
    journal = tmp_path / "journal.jsonl"
    server = Serve(log, "--revoke-key-after", str(allowed)).ready()
    entry = entry_for(backend, server.url, api_key_env=KEY_ENV, concurrency=concurrency, max_retries=8)
    requests = requests_for(entry, n)
    try:
        with pytest.raises(KeyRejected) as info:
            run_requests(fast(entry), requests, journal, progress=False)
    finally:
        server.stop()
    message = str(info.value)
    assert "\n" not in message and "sk-soon-revoked-789" not in message
    assert f"model {entry.name!r}" in message and f"${KEY_ENV}" in message
    assert "HTTP 401: API key revoked (injected)" in message
    statuses = collections.Counter(r["status"] for r in server.records())
    assert statuses[200] == allowed and 1 <= statuses[401] <= concurrency  # no retry, nothing sent after it
    kept = journal.read_text().count("\n")
    assert allowed - (concurrency - 1) <= kept <= allowed and f"{kept} of {n} answers kept in {journal}" in message

    restarted = Serve(log, port=server.port).ready()
    try:
        out = run_requests(fast(entry), requests, journal, progress=False)
    finally:
        restarted.stop()
    assert [c.text for c in out] == [MODEL.respond(r.messages) for r in requests]
    paid = paid_answers(restarted.records())
    assert len(paid) == n and sum(paid.values()) - n == allowed - kept  # paid twice: only answers in flight


# -- a dead endpoint, and one that dies mid-run ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_endpoint_fails_in_preflight(backend, tmp_path):
    server = Serve(tmp_path / "log.jsonl").ready()
    server.kill()
    entry = entry_for(backend, server.url)
    with pytest.raises(ConfigError) as info:
        run_requests(make_backend(entry), requests_for(entry, 3), tmp_path / "journal.jsonl", progress=False)
    message = str(info.value)
    assert "\n" not in message and "unreachable (connection refused)" in message and server.url in message
    assert not (tmp_path / "journal.jsonl").exists() or not (tmp_path / "journal.jsonl").read_text()


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_killed_mid_run_then_restarted(backend, tmp_path):
    n, concurrency = 240, 4
    log = tmp_path / "requests.jsonl"
    journal = tmp_path / "journal.jsonl"
    server = Serve(log, "--latency", "0.01").ready()
    entry = entry_for(backend, server.url, concurrency=concurrency, max_connection_failures=6, max_retries=8)
    requests = requests_for(entry, n)
    outcome: list[BaseException | list] = []

    def job() -> None:
        try:
            outcome.append(run_requests(fast(entry), requests, journal, progress=False))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.monotonic() + 30
    while (not journal.exists() or journal.read_text().count("\n") < 60) and time.monotonic() < deadline:
        time.sleep(0.005)
    server.kill()
    killed_at = time.monotonic()
    thread.join(30)
    stopped_after = time.monotonic() - killed_at
    (error,) = outcome
    assert isinstance(error, EndpointUnreachable), error
    message = str(error)
    assert "\n" not in message and "endpoint unreachable" in message and "connection refused" in message
    assert "timed out" not in message and stopped_after < 5
    kept = journal.read_text().count("\n")
    assert 60 <= kept < n and f"{kept} of {n} answers kept in {journal}" in message

    restarted = Serve(log, port=server.port).ready()
    try:
        out = run_requests(fast(entry), requests, journal, progress=False)
    finally:
        restarted.stop()
    assert [c.text for c in out] == [MODEL.respond(r.messages) for r in requests]
    paid = paid_answers([json.loads(line) for line in log.read_text().splitlines()])
    assert len(paid) == n
    assert sum(paid.values()) - n <= concurrency  # only answers in flight at the kill were paid twice
