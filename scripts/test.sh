#!/usr/bin/env bash
# Sets up .venv with the test extras, then runs the whole test suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/flower-env.sh
.venv/bin/ruff check .
# --durations: every run (CI included) lists its slowest tests, where the suite's time goes.
.venv/bin/python -m pytest -q --durations=25 "$@"
