#!/usr/bin/env bash
# Sets up .venv, then runs the main job: the default FedLanHAR federation (10 synthetic heterogeneous clients,
# rules interpreter, offline MiniLM, a new activity pushed mid-run) as a real Flower simulation on Ray.
#   bash scripts/run.sh                                   # the embedded default (no download)
#   bash scripts/run.sh configs/federated-real.toml       # an experiment config (one TOML per experiment)
# Outputs go to runs/<config name>/ (metrics.json, rounds.json, metrics_over_rounds.png, sensor encoder, label
# bank). Env: NUM_CLIENTS (default 10), FEDLANHAR_OUT, FEDLANHAR_DATA_DIR (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/flower-env.sh
CONFIG="${1:-}"
NAME=$( [ -n "$CONFIG" ] && basename "$CONFIG" .toml || echo default )
OUT="${FEDLANHAR_OUT:-$PWD/runs/$NAME}"
DATA_DIR="${FEDLANHAR_DATA_DIR:-$(cd .. && pwd)/shared/data}"
mkdir -p "$OUT"
# flwr takes either one TOML file or key=value pairs, not both: write the experiment's TOML plus the two
# absolute paths (the ServerApp does not run in this directory) into one file.
.venv/bin/python - "$CONFIG" "$OUT" "$DATA_DIR" > "$OUT/run-config.toml" <<'PY'
import sys, tomllib
config_file, out_dir, data_dir = sys.argv[1:4]
values = tomllib.load(open(config_file, "rb")) if config_file else {}
values.setdefault("out-dir", out_dir)
values.setdefault("data-dir", data_dir)
def toml(v):
    return ("true" if v else "false") if isinstance(v, bool) else repr(v) if isinstance(v, (int, float)) else f'"{v}"'
print("\n".join(f"{key} = {toml(value)}" for key, value in values.items()))
PY
# `flwr run` exits 0 even when the ServerApp stops with an error, so the run's own output decides: a run that
# wrote no fresh metrics.json failed. The marker's time tells this run's metrics.json from an earlier one's.
STARTED="$OUT/.run-started"
touch "$STARTED"
set +e
flwr run . --stream --run-config "$OUT/run-config.toml" \
  --federation-config "num-supernodes=${NUM_CLIENTS:-10} client-resources-num-cpus=1" "${@:2}" \
  2>&1 | tee "$OUT/flwr-run.log"
STATUS=${PIPESTATUS[0]}
set -e
if [ "$STATUS" -ne 0 ] || [ ! "$OUT/metrics.json" -nt "$STARTED" ]; then
  echo "FedLanHAR: the run failed (flwr exit $STATUS) and wrote no new $OUT/metrics.json." >&2
  echo "Its error (full log: $OUT/flwr-run.log):" >&2
  grep -E -A4 "Error|Exception|Traceback" "$OUT/flwr-run.log" | tail -n 30 >&2
  exit 1
fi
echo "outputs in $OUT"
