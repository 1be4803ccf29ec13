#!/usr/bin/env bash
# Sets up .venv with the test extras, then runs the whole test suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/flower-env.sh
.venv/bin/ruff check .
# --durations: every run (CI included) lists its slowest tests, where the suite's time goes.
# -n 2 --dist worksteal: two test processes, an idle one taking queued tests from the busy one. The end-to-end
# tests spend much of their time waiting on the processes they start (SuperLink, SuperNodes, Ray, a llama
# server), so two of them share 2 cores well. Each such test has its own FLWR_HOME, free ports and temporary
# folder, so they do not meet. `-n 0` on the command line runs one process.
.venv/bin/python -m pytest -q --durations=25 -n 2 --dist worksteal "$@"
