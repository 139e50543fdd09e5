"""Inference layer: chat requests in, completions out, journaled so a rerun never pays twice."""

from selfexplain.llm.types import ChatRequest, Completion, Sampling

__all__ = ["ChatRequest", "Completion", "Sampling"]
