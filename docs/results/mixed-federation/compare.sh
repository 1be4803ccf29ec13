#!/usr/bin/env bash
# The shipped mixed real federation (configs/federated-mixed.toml, 52 clients) with lean updates both ways
# (update-compression = "sparse-int8"), run from scratch, then the same run with float32 updates on the first
# run's stage-1 text encoder (stage 1 is seeded: the same encoder, loaded instead of trained again).
# Run from the repository root:  bash docs/results/mixed-federation/compare.sh OUT [SEED]
set -euo pipefail
OUT=$(realpath -m "$1")
SEED=${2:-0}
mkdir -p "$OUT"
cp configs/federated-mixed.toml "$OUT/lean.toml"
printf 'seed = %s\nupdate-compression = "sparse-int8"\n' "$SEED" >> "$OUT/lean.toml"
start=$(date +%s)
NUM_CLIENTS=52 FEDLANHAR_OUT="$OUT/lean" bash scripts/run.sh "$OUT/lean.toml"
echo "lean (from scratch): $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
cp configs/federated-mixed.toml "$OUT/float32.toml"
printf 'seed = %s\ntext-encoder-path = "%s"\n' "$SEED" "$OUT/lean/text_encoder" >> "$OUT/float32.toml"
start=$(date +%s)
NUM_CLIENTS=52 FEDLANHAR_OUT="$OUT/float32" bash scripts/run.sh "$OUT/float32.toml"
echo "float32 (stage 1 loaded): $(( $(date +%s) - start )) s" | tee -a "$OUT/wall.txt"
