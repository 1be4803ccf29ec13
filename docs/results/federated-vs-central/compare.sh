#!/usr/bin/env bash
# Federated (configs/federated-real.toml: 8 dsads_torso clients by user; the held-out users' clients only
# evaluate) vs central, trained alike: the same source users (the config's source-eval-users-fraction leaves
# out central's source validation users), target users,
# stage-1 text space, stage-2 settings (batch 64 on both sides) and order (central-federation-order.toml:
# source first, then target). A second central run (central-fedavg.toml) also trains the target phase as the
# federation does: 5 rounds of per-user copies averaged (FedAvg in one process).
# Central runs on 1 torch thread, as each matrix worker and each simulated client does. From the repository
# root:
#   bash docs/results/federated-vs-central/compare.sh OUT [TEXT_SPACE_CACHE] [SEED]
# Central trains first (stage 1 reused from the cache when it holds it); the federation loads its text encoder.
# SEED (default 0) draws the held-out users of both runs alike, and everything else each run draws.
#
# The first central row (central-federation-order.toml) needs stage2_schedule "source-then-target", which was
# removed from the code after 04ff026: it runs only in a checkout of 04ff026 (or earlier). On a later commit
# the script says so at once, skips that row and runs the FedAvg central row and the federation, whose text
# encoder then comes from the FedAvg central run (the same stage-1 text space: both reuse one cache entry).
set -euo pipefail
OUT=$(realpath -m "$1")
CACHE=${2:-$OUT/text-spaces}
SEED=${3:-0}
DATA_DIR=${FEDLANHAR_DATA_DIR:-../shared/data}
mkdir -p "$OUT"
SCHEDULES=$(.venv/bin/python -c 'from simulations.central import STAGE2_SCHEDULES; print(*STAGE2_SCHEDULES)')
if [[ " $SCHEDULES " == *" source-then-target "* ]]; then
    start=$(date +%s)
    OMP_NUM_THREADS=1 .venv/bin/fedlanhar train --data-dir "$DATA_DIR" --source uci --target dsads_torso \
        --budget default --config docs/results/federated-vs-central/central-federation-order.toml \
        --seed "$SEED" --out "$OUT/central" --text-space-cache "$CACHE"
    OMP_NUM_THREADS=1 .venv/bin/fedlanhar evaluate --data-dir "$DATA_DIR" --model "$OUT/central" \
        --target dsads_torso --seed "$SEED" --out "$OUT/central/eval"
    echo "central: $(( $(date +%s) - start )) s"
    TEXT_ENCODER="$OUT/central/text_encoder"
else
    echo "compare.sh: skipping the central row 'source then target' (central-federation-order.toml): its" \
        "stage2_schedule \"source-then-target\" was removed after 04ff026; check out 04ff026 to run it." \
        "Running the FedAvg central row and the federation." >&2
    TEXT_ENCODER="$OUT/central-fedavg/text_encoder"
fi
start=$(date +%s)
OMP_NUM_THREADS=1 .venv/bin/fedlanhar train --data-dir "$DATA_DIR" --source uci --target dsads_torso \
    --budget default --config docs/results/federated-vs-central/central-fedavg.toml \
    --seed "$SEED" --out "$OUT/central-fedavg" --text-space-cache "$CACHE"
OMP_NUM_THREADS=1 .venv/bin/fedlanhar evaluate --data-dir "$DATA_DIR" --model "$OUT/central-fedavg" \
    --target dsads_torso --seed "$SEED" --out "$OUT/central-fedavg/eval"
echo "central, FedAvg target phase: $(( $(date +%s) - start )) s"
cp configs/federated-real.toml "$OUT/federated.toml"
echo "text-encoder-path = \"$TEXT_ENCODER\"" >> "$OUT/federated.toml"
echo "seed = $SEED" >> "$OUT/federated.toml"
start=$(date +%s)
NUM_CLIENTS=8 FEDLANHAR_OUT="$OUT/federated" bash scripts/run.sh "$OUT/federated.toml"
echo "federated: $(( $(date +%s) - start )) s"
