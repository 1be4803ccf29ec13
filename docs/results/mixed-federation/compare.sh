#!/usr/bin/env bash
# The shipped mixed real federation (configs/federated-mixed.toml, 52 clients) with lean updates both ways
# (update-compression = "sparse-int8"), run from scratch, then the same run with float32 updates on the first
# run's stage-1 text encoder (stage 1 is seeded: the same encoder, loaded instead of trained again).
# Run from the repository root:  bash docs/results/mixed-federation/compare.sh OUT [SEED [TEXT_ENCODER]]
# With TEXT_ENCODER (e.g. the seed-0 run's OUT/lean/text_encoder) both runs load that stage-1 encoder.
set -euo pipefail
OUT=$(realpath -m "$1")
SEED=${2:-0}
TEXT_ENCODER=${3:-}
mkdir -p "$OUT"
cp configs/federated-mixed.toml "$OUT/lean.toml"
printf 'seed = %s\nupdate-compression = "sparse-int8"\n' "$SEED" >> "$OUT/lean.toml"
[ -n "$TEXT_ENCODER" ] && printf 'text-encoder-path = "%s"\n' "$(realpath "$TEXT_ENCODER")" >> "$OUT/lean.toml"
start=$(date +%s)
NUM_CLIENTS=52 FEDLANHAR_OUT="$OUT/lean" bash scripts/run.sh "$OUT/lean.toml"
echo "lean: $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
cp configs/federated-mixed.toml "$OUT/float32.toml"
printf 'seed = %s\ntext-encoder-path = "%s"\n' "$SEED" "$(realpath "${TEXT_ENCODER:-$OUT/lean/text_encoder}")" \
    >> "$OUT/float32.toml"
start=$(date +%s)
NUM_CLIENTS=52 FEDLANHAR_OUT="$OUT/float32" bash scripts/run.sh "$OUT/float32.toml"
echo "float32 (stage 1 loaded): $(( $(date +%s) - start )) s" | tee -a "$OUT/wall.txt"
