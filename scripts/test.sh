#!/usr/bin/env bash
# Sets up .venv with the test extras, then runs the whole test suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/flower-env.sh
.venv/bin/ruff check .
# --durations: every run (CI included) lists its slowest tests, where the suite's time goes.
# -n 4 --dist worksteal: four test processes, an idle one taking queued tests from a busy one. The end-to-end
# tests spend much of their time waiting on the processes they start (SuperLink, SuperNodes, Ray, a llama
# server): on 2 cores the suite used one core's worth of CPU with two processes (docs/results/speed). Each
# such test has its own FLWR_HOME, free ports and temporary folder, so they do not meet. `-n 0` on the
# command line runs one process.
.venv/bin/python -m pytest -q --durations=25 -n 4 --dist worksteal "$@"
