"""Thinking kept apart from the answer: <think> blocks (every backend) and gpt-oss's harmony channels (vLLM)."""

from __future__ import annotations

import pytest

from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.vllm_backend import engine_kwargs
from selfexplain.parsing.thinking import split_harmony, split_thinking, strip_thinking


@pytest.mark.parametrize(
    ("text", "reasoning", "answer"),
    [
        (
            "<|channel|>analysis<|message|>Weigh age and blood pressure.<|end|><|start|>assistant<|channel|>final"
            "<|message|>[ANSWER]\nYES<|return|>",
            "Weigh age and blood pressure.",
            "[ANSWER]\nYES",
        ),
        ("<|channel|>analysis<|message|>cut off before the answer", "cut off before the answer", ""),
        ("<|channel|>final<|message|>[ANSWER]\nNO<|return|>", None, "[ANSWER]\nNO"),
        (
            "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>analysis<|message|>b<|end|>"
            "<|start|>assistant<|channel|>final<|message|>c",
            "a\nb",
            "c",
        ),
        ("<think>x</think> y", "x", "y"),  # not harmony: the <think> rules apply
    ],
)
def test_split_harmony(text, reasoning, answer):
    assert split_harmony(text) == (reasoning, answer)


def test_one_rule_for_backends_and_parsers():
    text = "the template opened it</think>[ANSWER] YES"
    reasoning, answer = split_thinking(text)
    assert (reasoning, answer) == ("the template opened it", "[ANSWER] YES")
    assert strip_thinking(text).strip() == answer


def test_output_format_is_not_an_engine_argument():
    entry = parse_entry(
        "oss", {"backend": "vllm", "model_id": "openai/gpt-oss-20b", "vllm": {"output_format": "harmony"}}
    )
    assert "output_format" not in engine_kwargs(entry, cuda=True)
