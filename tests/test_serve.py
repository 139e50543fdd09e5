"""`selfexplain serve` speaks enough OpenAI and Anthropic for the official SDKs; its faults look like real ones."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time

import anthropic
import openai
import pytest

from selfexplain.llm.synthetic import SyntheticModel
from selfexplain.prompts import load_template
from selfexplain.sce.prompts import first_pass_fields, followup_fields
from selfexplain.serve import (
    BAD_ANSWERS,
    FaultConfig,
    ServerLimits,
    ServerThread,
    make_app,
    models_from_catalog,
    models_from_specs,
    register,
    request_hash,
    request_tokens,
)
from selfexplain.tabular.features import load_dataset_spec
from selfexplain.tabular.grids import build_grid
from tests.conftest import REPO

PROMPTS = REPO / "config" / "prompts" / "sce"
KEY = "sk-test-secret-0123456789"


@pytest.fixture(scope="module")
def models() -> dict[str, SyntheticModel]:
    return models_from_specs(["exact=exact", "timid=timid"])


@pytest.fixture(scope="module")
def income_prompts() -> list[str]:
    """First-pass prompts for a negative and a positive income record (by the exact model's own rule)."""
    spec = load_dataset_spec("income")
    grid = build_grid(spec)
    template = load_template(PROMPTS, "first_pass", "income")
    model = SyntheticModel({"sce": {"counterfactual": "exact"}})
    prompts, seen = [], set()
    for description in grid["description"]:
        prompt = template.render(first_pass_fields(spec, description))
        answer = model.respond([{"role": "user", "content": prompt}])
        if answer not in seen:
            seen.add(answer)
            prompts.append(prompt)
        if len(prompts) == 2:
            return prompts
    raise AssertionError("the exact model gives one answer to every income record")


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "requests.jsonl"
    with ServerThread(models, request_log=log) as running:
        running.log_path = log
        yield running


_CLIENTS: list = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def _openai(srv: ServerThread, key: str = "x", **kwargs) -> openai.OpenAI:
    _CLIENTS.append(openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0, **kwargs))
    return _CLIENTS[-1]


def _anthropic(srv: ServerThread, key: str = "x") -> anthropic.Anthropic:
    _CLIENTS.append(anthropic.Anthropic(base_url=srv.root_url, api_key=key, max_retries=0))
    return _CLIENTS[-1]


def _log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_openai_first_pass_matches_in_process(server, models, income_prompts):
    client = _openai(server)
    answers = []
    for prompt in income_prompts:
        messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": prompt}]
        reply = client.chat.completions.create(model="exact", messages=messages, temperature=0, seed=42, max_tokens=9)
        assert reply.object == "chat.completion" and reply.model == "exact"
        assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.role == "assistant"
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0
        text = reply.choices[0].message.content
        assert text == models["exact"].respond(messages)
        answers.append(json.loads(text)["answer"])
    assert len(set(answers)) == 2


def test_anthropic_first_pass_matches_in_process(server, models, income_prompts):
    client = _anthropic(server)
    prompt = income_prompts[1]
    reply = client.messages.create(
        model="exact",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}],
    )
    assert reply.type == "message" and reply.role == "assistant" and reply.stop_reason == "end_turn"
    assert [block.type for block in reply.content] == ["text"]
    expected = models["exact"].respond(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    )
    assert reply.content[0].text == expected and "answer" in json.loads(expected)
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0


def test_models_differ_where_their_behaviour_differs(server, models, income_prompts):
    """A follow-up asks for a counterfactual: exact and timid answer differently, each as in process."""
    spec = load_dataset_spec("income")
    followup = load_template(PROMPTS, "minimal", "income")
    client = _openai(server)
    replies = {}
    for name in ("exact", "timid"):
        first = [{"role": "user", "content": income_prompts[0]}]
        answer = client.chat.completions.create(model=name, messages=first).choices[0].message.content
        messages = [
            *first,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": followup.render(followup_fields(spec, spec.options[1]))},
        ]
        replies[name] = client.chat.completions.create(model=name, messages=messages).choices[0].message.content
        assert replies[name] == models[name].respond(messages)
    assert replies["exact"] != replies["timid"]


def test_models_are_listed_in_both_styles(server):
    assert sorted(m.id for m in _openai(server).models.list()) == ["exact", "timid"]
    assert sorted(m.id for m in _anthropic(server).models.list()) == ["exact", "timid"]


def test_unknown_model_is_404(server):
    with pytest.raises(openai.NotFoundError) as info:
        _openai(server).chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.response.json()["error"]["code"] == "model_not_found"
    with pytest.raises(anthropic.NotFoundError):
        _anthropic(server).messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_thinking_block_comes_first_and_apart(server):
    client = _anthropic(server)
    messages = [{"role": "user", "content": "hi"}]
    plain = client.messages.create(model="exact", max_tokens=2000, messages=messages)
    thought = client.messages.create(
        model="exact", max_tokens=2000, messages=messages, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    assert [b.type for b in thought.content] == ["thinking", "text"]
    assert thought.content[0].thinking and thought.content[0].signature == "x"
    assert thought.content[1].text == plain.content[0].text


def test_request_log_has_one_line_per_request_and_hashes_what_matters(server):
    client = _openai(server)
    before = len(_log(server.log_path))
    for temperature in (0.0, 0.0, 0.7):
        client.chat.completions.create(
            model="timid", messages=[{"role": "user", "content": "log me"}], temperature=temperature
        )
    lines = _log(server.log_path)[before:]
    assert len(lines) == 3
    assert all(set(line) >= {"time", "endpoint", "model", "status", "request_hash"} for line in lines)
    assert {(line["endpoint"], line["model"], line["status"]) for line in lines} == {
        ("/v1/chat/completions", "timid", 200)
    }
    hashes = [line["request_hash"] for line in lines]
    assert hashes[0] == hashes[1] != hashes[2]
    expected = request_hash(
        "/v1/chat/completions", "timid", [{"role": "user", "content": "log me"}], {"temperature": 0.7}
    )
    assert hashes[2] == expected


def test_auth_is_required_when_a_key_is_set(models, tmp_path):
    log = tmp_path / "log.jsonl"
    with ServerThread(models, api_key=KEY, request_log=log) as srv:
        messages = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.AuthenticationError):
            _openai(srv, "wrong").chat.completions.create(model="exact", messages=messages)
        with pytest.raises(openai.AuthenticationError):
            _openai(srv, "wrong").models.list()
        with pytest.raises(anthropic.AuthenticationError) as info:
            _anthropic(srv, "wrong").messages.create(model="exact", max_tokens=5, messages=messages)
        assert KEY not in info.value.response.text
        assert _openai(srv, KEY).chat.completions.create(model="exact", messages=messages).choices[0].message.content
        assert _anthropic(srv, KEY).messages.create(model="exact", max_tokens=5, messages=messages).content
    text = log.read_text()
    assert KEY not in text and "wrong" not in text
    assert [line["status"] for line in _log(log)] == [401, 401, 200, 200]


def test_rate_limit_sends_retry_after(models, tmp_path):
    log = tmp_path / "log.jsonl"
    with ServerThread(models, faults=FaultConfig(rate_limit_rate=1, retry_after=3), request_log=log) as srv:
        with pytest.raises(openai.RateLimitError) as info:
            _openai(srv).chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])
        assert info.value.response.headers["retry-after"] == "3"
        assert info.value.response.json()["error"]["type"] == "requests"
        with pytest.raises(anthropic.RateLimitError) as ainfo:
            _anthropic(srv).messages.create(model="exact", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert ainfo.value.response.headers["retry-after"] == "3"
        assert ainfo.value.response.json()["error"]["type"] == "rate_limit_error"
        # GET is never faulted
        assert len(_openai(srv).models.list().data) == 2
    assert [line["status"] for line in _log(log)] == [429, 429]


def test_server_errors(models):
    with ServerThread(models, faults=FaultConfig(error_rate=1)) as srv, pytest.raises(openai.InternalServerError):
        _openai(srv).chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])


def test_dropped_connection(models, tmp_path):
    log = tmp_path / "log.jsonl"
    with ServerThread(models, faults=FaultConfig(drop_rate=1), request_log=log) as srv:
        with pytest.raises(openai.APIConnectionError):
            _openai(srv).chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.APIConnectionError):
            _anthropic(srv).messages.create(model="exact", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert [line["status"] for line in _log(log)] == ["dropped", "dropped"]


def test_slow_answers_time_out_and_latency_adds_up(models):
    slow = ServerThread(models, faults=FaultConfig(slow_rate=1, slow_seconds=1.0))
    with slow as srv, pytest.raises(openai.APITimeoutError):
        _openai(srv, timeout=0.2).chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])
    with ServerThread(models, faults=FaultConfig(latency=0.2)) as srv:
        start = time.perf_counter()
        _openai(srv).chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])
        assert time.perf_counter() - start >= 0.2


def test_faults_follow_the_seed(models):
    def statuses(seed: int) -> list[int]:
        out = []
        with ServerThread(make_app(models, FaultConfig(error_rate=0.5, seed=seed))) as srv:
            client = _openai(srv)
            for _ in range(16):
                try:
                    client.chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])
                    out.append(200)
                except openai.InternalServerError:
                    out.append(500)
        return out

    first = statuses(7)
    assert first == statuses(7) and 200 in first and 500 in first


def _openai_seen(srv: ServerThread):
    """What the raw OpenAI SDK makes of the answer: (content, tool_calls, choices) or the exception's type."""
    try:
        reply = _openai(srv).chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])
    except Exception as exc:  # the SDK itself fails on a body that is not JSON
        return type(exc).__name__
    if not reply.choices or reply.choices[0] is None:
        return ("choices", reply.choices)
    message = reply.choices[0].message
    if message is None:
        return ("message", None)
    return ("content", message.content, bool(message.tool_calls))


def _anthropic_seen(srv: ServerThread):
    try:
        reply = _anthropic(srv).messages.create(
            model="exact", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    except Exception as exc:
        return type(exc).__name__
    if reply.content is None:
        return ("content", None)
    return ("content", [b if b is None else (b.type, getattr(b, "text", None)) for b in reply.content])


def test_bad_answers_are_served_as_asked(models, tmp_path):
    """Each kind at rate 1 reaches the official SDKs as the malformed 200 it names (the SDKs do not stop it)."""
    answer = models["exact"].respond([{"role": "user", "content": "hi"}])
    half = len(answer) // 2
    expected_openai = {
        "content_number": ("content", 42, False),
        "content_parts": (
            "content",
            [{"type": "text", "text": answer[:half]}, {"type": "text", "text": answer[half:]}],
            False,
        ),
        "choices_null": ("choices", [None]),
        "no_message": ("message", None),
        "not_json": "JSONDecodeError",
        "tool_call": ("content", None, True),
        "unknown_block": ("content", [{"type": "hologram", "data": "not a known part"}], False),
        "empty_content": ("choices", []),
    }
    expected_anthropic = {
        "content_number": ("content", [("text", 42)]),
        "content_parts": ("content", [("text", answer[:half]), ("text", answer[half:])]),
        "choices_null": ("content", [None]),
        "no_message": ("content", None),
        "not_json": "JSONDecodeError",
        "tool_call": ("content", [("tool_use", None)]),
        "unknown_block": ("content", [("hologram", None)]),
        "empty_content": ("content", []),
    }
    assert set(expected_openai) == set(expected_anthropic) == set(BAD_ANSWERS)
    for kind in BAD_ANSWERS:
        log = tmp_path / f"{kind}.jsonl"
        with ServerThread(models, faults=FaultConfig(bad_answers={kind: 1.0}), request_log=log) as srv:
            assert _openai_seen(srv) == expected_openai[kind], kind
            assert _anthropic_seen(srv) == expected_anthropic[kind], kind
        assert [(line["status"], line["fault"]) for line in _log(log)] == [(200, kind)] * 2


def test_bad_answer_rates_follow_the_seed(models, tmp_path):
    def faults(seed: int) -> list:
        log = tmp_path / f"seed{seed}-{time.monotonic_ns()}.jsonl"
        config = FaultConfig(error_rate=0.2, bad_answers={"not_json": 0.3, "content_number": 0.3}, seed=seed)
        with ServerThread(models, faults=config, request_log=log) as srv:
            client = _openai(srv)
            for _ in range(30):
                with contextlib.suppress(openai.InternalServerError, json.JSONDecodeError):
                    client.chat.completions.create(model="exact", messages=[{"role": "user", "content": "hi"}])
        return [line["fault"] for line in _log(log)]

    first = faults(11)
    assert first == faults(11) != faults(12)
    assert {"error", "not_json", "content_number", None} <= set(first)


def test_bad_answer_config_is_checked():
    with pytest.raises(ValueError, match="unknown bad answer"):
        FaultConfig(bad_answers={"gibberish": 0.1})
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultConfig(bad_answers={"not_json": 0.6, "tool_call": 0.6})


def test_request_tokens_count_prompt_characters_and_max_tokens():
    messages = [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 400}]
    assert request_tokens(messages, {"max_tokens": 100}) == 110 + 100
    assert request_tokens(messages, {"max_completion_tokens": 7}) == 117
    assert request_tokens(messages, {}) == 110


def test_limits_answer_429_with_retry_after_and_cost_nothing(models, tmp_path):
    log = tmp_path / "log.jsonl"
    limits = ServerLimits(requests_per_minute=120, burst_s=1.0)  # 2 per second, a burst of 2
    with ServerThread(models, limits=limits, request_log=log) as srv:
        client = _openai(srv)
        messages = [{"role": "user", "content": "hi"}]
        client.chat.completions.create(model="exact", messages=messages)
        client.chat.completions.create(model="exact", messages=messages)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="exact", messages=messages)
        assert info.value.response.headers["retry-after"] == "1"
        time.sleep(0.55)  # one request's worth refilled; the refused one was not charged
        client.chat.completions.create(model="exact", messages=messages)
    assert [(line["status"], line["fault"]) for line in _log(log)] == [
        (200, None),
        (200, None),
        (429, "limit"),
        (200, None),
    ]

    log = tmp_path / "tokens.jsonl"
    limits = ServerLimits(tokens_per_minute=6000, burst_s=1.0)  # 100 tokens per second, a bucket of 100
    with ServerThread(models, limits=limits, request_log=log) as srv:
        client = _anthropic(srv)
        messages = [{"role": "user", "content": "x" * 40}]  # 10 + 80 = 90 tokens
        client.messages.create(model="exact", max_tokens=80, messages=messages)
        with pytest.raises(anthropic.RateLimitError) as ainfo:
            client.messages.create(model="exact", max_tokens=80, messages=messages)
        assert ainfo.value.response.headers["retry-after"] == "1"
        client.messages.create(model="exact", max_tokens=1, messages=[{"role": "user", "content": "hi"}])
    assert [line["status"] for line in _log(log)] == [200, 429, 200]


def test_revoked_key_answers_401_after_n_requests(models, tmp_path):
    log = tmp_path / "log.jsonl"
    with ServerThread(models, faults=FaultConfig(revoke_key_after=2), request_log=log) as srv:
        client = _openai(srv)
        messages = [{"role": "user", "content": "hi"}]
        client.chat.completions.create(model="exact", messages=messages)
        _anthropic(srv).messages.create(model="exact", max_tokens=5, messages=messages)
        with pytest.raises(openai.AuthenticationError, match="revoked"):
            client.chat.completions.create(model="exact", messages=messages)
        with pytest.raises(anthropic.AuthenticationError, match="revoked"):
            _anthropic(srv).messages.create(model="exact", max_tokens=5, messages=messages)
        assert [m.id for m in client.models.list()] == ["exact", "timid"]  # the free models list still answers
    assert [line["status"] for line in _log(log)] == [200, 200, 401, 401]
    with pytest.raises(ValueError, match="revoke_key_after"):
        FaultConfig(revoke_key_after=-1)


def test_catalog_models_are_served_by_id_and_name():
    models = models_from_catalog(REPO / "config" / "models.yaml", REPO / "workflow" / "schemas" / "catalog.schema.yaml")
    assert {"synthetic-exact", "selfexplain/synthetic-exact", "synthetic-timid"} <= set(models)
    assert models["synthetic-exact"] is models["selfexplain/synthetic-exact"]
    assert "gpt4_1" not in models and "gpt-4.1-2025-04-14" not in models


_CLI = (
    "import argparse, sys\n"
    "from selfexplain.serve import register\n"
    "parser = argparse.ArgumentParser()\n"
    "register(parser.add_subparsers())\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "args.func(args)\n"
)


def test_register_adds_serve_subcommand():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", "a=exact", "--port", "0", "--drop-rate", "0.5"])
    assert args.model == ["a=exact"] and args.port == 0 and args.drop_rate == 0.5 and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--error-rate", "1.5"])
    args = parser.parse_args(
        ["serve", "--bad-answer", "not_json=0.1", "--bad-answer", "tool_call=1", "--requests-per-minute", "600"]
    )
    assert args.bad_answer == [("not_json", 0.1), ("tool_call", 1.0)] and args.requests_per_minute == 600
    assert args.tokens_per_minute is None and args.limit_burst_s == 1.0
    assert parser.parse_args(["serve", "--revoke-key-after", "3"]).revoke_key_after == 3
    bad_args = (
        ["--bad-answer", "nonsense=0.1"],
        ["--bad-answer", "not_json"],
        ["--requests-per-minute", "0"],
        ["--revoke-key-after", "-1"],
    )
    for bad in bad_args:
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", *bad])


def test_cli_subprocess_serves_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "SERVE_TEST_KEY": KEY}
    command = [sys.executable, "-c", _CLI, "serve", "--model", "m=overshoot", "--port", "0", "--api-key-env"]
    command += ["SERVE_TEST_KEY", "--request-log", str(tmp_path / "log.jsonl")]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    ) as proc:
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, "server printed nothing within 30 s"
            line = proc.stdout.readline()
            assert line.startswith("selfexplain serve: listening on http://127.0.0.1:")
            url = line.split()[-1]
            with openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
                reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert KEY not in proc.stderr.read()
    assert [line["status"] for line in _log(tmp_path / "log.jsonl")] == [200]
