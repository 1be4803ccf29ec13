#!/usr/bin/env bash
# Sets up .venv, then runs the main job: the default FedLanHAR federation (10 synthetic heterogeneous clients,
# rules interpreter, offline MiniLM, a new activity pushed mid-run) as a real Flower simulation on Ray.
#   bash scripts/run.sh                                   # the embedded default (no download)
#   bash scripts/run.sh configs/federated-real.toml       # an experiment config (one TOML per experiment)
# Outputs go to runs/<config name>/ (metrics.json, rounds.json, metrics_over_rounds.png, sensor encoder, label
# bank); trained text spaces to runs/text-spaces/, where a later run with the same stage-1 inputs reuses them.
# Env: NUM_CLIENTS (default 10), FEDLANHAR_OUT, FEDLANHAR_DATA_DIR (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/flower-env.sh
CONFIG="${1:-}"
NAME=$( [ -n "$CONFIG" ] && basename "$CONFIG" .toml || echo default )
OUT="${FEDLANHAR_OUT:-$PWD/runs/$NAME}"
DATA_DIR="${FEDLANHAR_DATA_DIR:-$(cd .. && pwd)/shared/data}"
mkdir -p "$OUT"
# flwr takes either one TOML file or key=value pairs, not both: write the experiment's TOML plus the three
# absolute paths (the ServerApp does not run in this directory) into one file.
.venv/bin/python - "$CONFIG" "$OUT" "$DATA_DIR" > "$OUT/run-config.toml" <<'PY'
import pathlib, sys, tomllib
config_file, out_dir, data_dir = sys.argv[1:4]
values = tomllib.load(open(config_file, "rb")) if config_file else {}
values.setdefault("out-dir", out_dir)
values.setdefault("data-dir", data_dir)
# Stage 1 depends only on the server's source side: a later run with the same inputs reuses its text space.
values.setdefault("text-space-cache", str(pathlib.Path("runs/text-spaces").resolve()))
def toml(v):
    return ("true" if v else "false") if isinstance(v, bool) else repr(v) if isinstance(v, (int, float)) else f'"{v}"'
print("\n".join(f"{key} = {toml(value)}" for key, value in values.items()))
PY
# `flwr run` starts a local SuperLink (with its SuperExec and Ray) when none listens on this checkout's port
# (scripts/flower-env.sh), and leaves it running after it exits. When this run starts it, it is stopped at the
# end, by pid: the process whose command line names this FLWR_HOME and port, with its process group and
# children (simulations/processes.py). One that was already listening (an earlier run's still going, or one
# started by hand) is not this script's to stop and is left alone.
if ! .venv/bin/python -m simulations.processes port-in-use "$FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"; then
  trap '.venv/bin/python -m simulations.processes stop-local-superlink "$FLWR_HOME" \
    "$FLWR_LOCAL_SUPERLINK_HTTP_API_PORT" || true' EXIT
fi
# `flwr run` exits 0 even when the ServerApp stops with an error, so the run's own output decides: a run that
# wrote no fresh metrics.json failed (simulations/run_check.py, as `fedlanhar bench` and `experiment` check it).
STAMP=$(.venv/bin/python -m simulations.run_check stamp "$OUT")
set +e
flwr run . --stream --run-config "$OUT/run-config.toml" \
  --federation-config "num-supernodes=${NUM_CLIENTS:-10} client-resources-num-cpus=1" "${@:2}" \
  2>&1 | tee "$OUT/flwr-run.log"
STATUS=${PIPESTATUS[0]}
set -e
.venv/bin/python -m simulations.run_check check "$OUT" "$STAMP" "$STATUS" "$OUT/flwr-run.log" || exit 1
echo "outputs in $OUT"
