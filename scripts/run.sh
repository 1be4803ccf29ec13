#!/usr/bin/env bash
# Sets up .venv, then runs the main job: the default FedLanHAR federation (10 synthetic heterogeneous clients,
# rules interpreter, offline MiniLM, a new activity pushed mid-run) as a real Flower simulation on Ray.
# Outputs go to runs/default/ (metrics.json, rounds.json, metrics_over_rounds.png, sensor encoder, label bank).
# Extra arguments are passed to `flwr run`, e.g.  bash scripts/run.sh --run-config configs/federated-real.toml
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/flower-env.sh
OUT="${FEDLANHAR_OUT:-$PWD/runs/default}"
mkdir -p "$OUT"
flwr run . --stream \
  --run-config "out-dir='$OUT' data-dir='${FEDLANHAR_DATA_DIR:-$(cd .. && pwd)/shared/data}'" \
  --federation-config "num-supernodes=${NUM_CLIENTS:-10} client-resources-num-cpus=1" "$@"
echo "outputs in $OUT"
