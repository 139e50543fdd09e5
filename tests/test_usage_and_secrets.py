"""Usage/cost accounting and API-key handling."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.secrets import REDACTED, api_key, redact
from selfexplain.llm.usage import cost_usd, summarise_usage, table_usage

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
