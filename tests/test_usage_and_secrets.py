"""Usage/cost accounting and API-key handling."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

from selfexplain.config import exit_message, load_catalog, models_of_jobs, preflight
from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.secrets import REDACTED, api_key, looks_like_key, redact, scrub_keys
from selfexplain.llm.usage import cost_usd, summarise_usage, table_usage
from tests.conftest import REPO

PRICED = parse_entry(
    "gpt",
    {
        "backend": "openai",
        "model_id": "gpt-x",
        "api_key_env": "TEST_SELFEXPLAIN_KEY",
        "prices": {"input_per_mtok": 2.0, "output_per_mtok": 8.0},
    },
)
FREE = parse_entry("syn", {"backend": "synthetic", "model_id": "s"})
SCHEMAS = REPO / "workflow" / "schemas"


def test_cost_by_hand():
    assert cost_usd(PRICED, 1_000_000, 500_000) == pytest.approx(2.0 + 4.0)
    assert math.isnan(cost_usd(FREE, 10, 10))


def test_table_usage_and_summary():
    table = pd.DataFrame(
        {
            "first_prompt_tokens": [10, 20, None],
            "first_completion_tokens": [1, 2, 3],
            "first_error": [None, None, "HTTP 500"],
        }
    )
    assert table_usage(table, "first_") == {"requests": 3, "errors": 1, "prompt_tokens": 30, "completion_tokens": 6}
    records = [
        {
            "model": "gpt",
            "rule": "sce_predict",
            "requests": 3,
            "errors": 1,
            "prompt_tokens": 1_000_000,
            "completion_tokens": 0,
        },
        {
            "model": "gpt",
            "rule": "sce_elicit",
            "requests": 3,
            "errors": 0,
            "prompt_tokens": 0,
            "completion_tokens": 1_000_000,
        },
        {"model": "syn", "rule": "sce_predict", "requests": 5, "errors": 0, "prompt_tokens": 7, "completion_tokens": 7},
    ]
    frame = summarise_usage(records, {"gpt": PRICED, "syn": FREE}).set_index(["model", "rule"])
    assert frame.loc[("gpt", "TOTAL"), "cost_usd"] == pytest.approx(10.0)
    assert frame.loc[("gpt", "TOTAL"), "requests"] == 6
    assert math.isnan(frame.loc[("syn", "TOTAL"), "cost_usd"])


def test_missing_key_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("TEST_SELFEXPLAIN_KEY", raising=False)
    with pytest.raises(ConfigError, match="environment variable TEST_SELFEXPLAIN_KEY is not set"):
        api_key(PRICED)
    monkeypatch.setenv("TEST_SELFEXPLAIN_KEY", "sk-live-abcdef123456")
    assert api_key(PRICED) == "sk-live-abcdef123456"


def test_redact():
    assert redact("bad key sk-live-abcdef123456 used", "sk-live-abcdef123456") == f"bad key {REDACTED} used"
    assert redact(None, "x") is None


@pytest.mark.parametrize(
    ("raw", "provider"),
    [
        ({"backend": "openai", "model_id": "m"}, "openai"),
        ({"backend": "openai", "model_id": "m", "base_url": "https://openrouter.ai/api/v1"}, "openrouter"),
        ({"backend": "openai", "model_id": "m", "base_url": "http://gpu-node:8000/v1"}, "local"),
        ({"backend": "anthropic", "model_id": "m"}, "anthropic"),
        ({"backend": "vllm", "model_id": "m"}, None),
        ({"backend": "synthetic", "model_id": "m"}, None),
    ],
)
def test_api_provider(raw, provider):
    assert parse_entry("x", raw).api_provider == provider


# -- keys pasted where a name belongs, and checks before jobs start (issue 9) -----------------------------------
FAKE_KEY = "sk-ant-api03-SELFEXPLAINfake0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "key_like"),
    [
        (FAKE_KEY, True),
        ("sk-proj-Abc123def456ghi789", True),
        ("AIzaSyA1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6", True),
        ("hf_abcdefghijklmnopqrstuvwx12", True),
        ("a8f9e0c1d2b3a4f5e6d7c8b9a0f1e2d3", True),  # no known prefix, but long and opaque
        ("OPENAI_API_KEY", False),
        ("openai_key", False),
        ("claude_sonnet_4_5", False),
        ("meta-llama/Llama-3.3-70B-Instruct", False),
        (None, False),
    ],
)
def test_looks_like_key(value, key_like):
    assert looks_like_key(value) is key_like


def test_scrub_keys():
    assert scrub_keys(f"bad '{FAKE_KEY}', and sk-proj-ABCdef12345678") == f"bad '{REDACTED}', and {REDACTED}"
    assert scrub_keys("model 'gpt5_2': OPENAI_API_KEY is not set") == "model 'gpt5_2': OPENAI_API_KEY is not set"


@pytest.mark.parametrize("value", [FAKE_KEY, "openai-key", 12345])
def test_a_bad_variable_name_is_never_echoed(tmp_path, value):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"m": {"backend": "openai", "model_id": "x", "api_key_env": value}}}))
    with pytest.raises(ConfigError) as info:
        load_catalog(path, SCHEMAS / "catalog.schema.yaml")
    message = str(info.value)
    assert message.startswith(f"{path}: models.m.api_key_env: must be the NAME of an environment variable")
    assert str(value) not in message and "\n" not in message
    assert ("it looks like a key itself" in message) is (value == FAKE_KEY)


class _Job:
    """What `models_of_jobs` reads of a Snakemake job."""

    def __init__(self, params: dict, wildcards: list[str]) -> None:
        self.params = params
        self.wildcards = wildcards


def test_models_of_jobs_are_the_inference_jobs_models():
    catalog = {"gpt": PRICED, "syn": FREE}
    gpt_json = json.dumps(PRICED.raw, sort_keys=True)
    jobs = [
        _Job({"model": json.dumps(FREE.raw, sort_keys=True)}, ["syn", "income"]),
        _Job({}, ["gpt", "income", "minimal"]),  # scoring: no requests, no model param
        _Job({"model": gpt_json}, ["syn", "gpt"]),  # a predictor job names its reference too: only gpt asks
    ]
    assert models_of_jobs(jobs, catalog) == ["gpt", "syn"]
    assert models_of_jobs(jobs[1:2], catalog) == []


def test_preflight_lists_every_model_that_cannot_run(monkeypatch):
    monkeypatch.delenv("TEST_SELFEXPLAIN_KEY", raising=False)
    monkeypatch.setattr("selfexplain.llm.vllm_backend.vllm_available", lambda: False)
    engine = parse_entry("engine", {"backend": "vllm", "model_id": "org/m"})
    claude = parse_entry("claude", {"backend": "anthropic", "model_id": "c", "api_key_env": "TEST_SELFEXPLAIN_KEY"})
    with pytest.raises(ConfigError) as info:
        preflight([PRICED, FREE, engine, claude])
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("model 'gpt': environment variable TEST_SELFEXPLAIN_KEY is not set or empty")
    assert lines[1].startswith("model 'engine' uses the vllm backend, but vLLM is not installed")
    assert lines[2].startswith("model 'claude': environment variable TEST_SELFEXPLAIN_KEY is not set or empty")
    assert exit_message(info.value).splitlines()[1].startswith("ConfigError: model 'engine'")
    preflight([FREE])  # synthetic models need nothing


def test_preflight_reports_any_actionable_error_without_a_key(monkeypatch):
    from selfexplain.errors import InferenceError

    class Unreachable:
        def preflight(self) -> None:
            raise InferenceError(f"model 'gpt': endpoint said 'bad key {FAKE_KEY}'\n  (HTTP 502)")

    monkeypatch.setattr("selfexplain.llm.backends.make_backend", lambda entry: Unreachable())
    with pytest.raises(ConfigError) as info:
        preflight([PRICED])
    assert str(info.value) == f"model 'gpt': endpoint said 'bad key {REDACTED}' (HTTP 502)"
