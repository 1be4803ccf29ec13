#!/usr/bin/env bash
# The shipped mixed real federation (configs/federated-mixed.toml, 52 clients, lean updates: int8 changes of
# the top layer) against the same run with float32 updates of the whole model ("before"). Run from the
# repository root:  bash docs/results/mixed-federation/compare.sh OUT [SEED [TEXT_ENCODER]]
# Without TEXT_ENCODER the lean run is the shipped config from scratch (stage 1 included) and the float32 run
# loads its stage-1 text encoder; with one (e.g. the seed-0 run's OUT/lean/text_encoder) both load it. The
# server's pre-training is re-seeded after stage 1, so both runs start from the same model.
set -euo pipefail
OUT=$(realpath -m "$1")
SEED=${2:-0}
TEXT_ENCODER=${3:-}
mkdir -p "$OUT"
cp configs/federated-mixed.toml "$OUT/lean.toml"
printf 'seed = %s\n' "$SEED" >> "$OUT/lean.toml"
[ -n "$TEXT_ENCODER" ] && printf 'text-encoder-path = "%s"\n' "$(realpath "$TEXT_ENCODER")" >> "$OUT/lean.toml"
start=$(date +%s)
NUM_CLIENTS=52 FEDLANHAR_OUT="$OUT/lean" bash scripts/run.sh "$OUT/lean.toml"
echo "lean: $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
# The same config with float32 updates of the whole model (the two keys replaced: TOML forbids repeats).
grep -v -E '^(update-compression|client-train-layers) ' configs/federated-mixed.toml > "$OUT/float32.toml"
printf 'update-compression = "none"\nclient-train-layers = 0\nseed = %s\ntext-encoder-path = "%s"\n' "$SEED" \
    "$(realpath "${TEXT_ENCODER:-$OUT/lean/text_encoder}")" >> "$OUT/float32.toml"
start=$(date +%s)
NUM_CLIENTS=52 FEDLANHAR_OUT="$OUT/float32" bash scripts/run.sh "$OUT/float32.toml"
echo "float32 (stage 1 loaded): $(( $(date +%s) - start )) s" | tee -a "$OUT/wall.txt"
