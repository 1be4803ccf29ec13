# Environment for running Flower here (sourced by scripts/run.sh and the tests; see docs/federation.md, "The run
# config").
# Must be set before the local SuperLink starts: otherwise every run re-installs the app's dependencies into a
# fresh environment (several GB, CUDA torch) and fails.
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
export FLWR_TELEMETRY_ENABLED=0
export FLWR_DISABLE_UPDATE_CHECK=1
# A project-local Flower home keeps this project's SuperLink state and app copies apart from others'.
export FLWR_HOME="${FLWR_HOME:-$(pwd)/.flwr}"
export PATH="$(pwd)/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export OMP_NUM_THREADS=1
# Ray: with RAY_ADDRESS unset, `ray.init()` attaches to the last cluster `ray start` left on this machine. "local"
# keeps every simulation on a private instance unless RAY_ADDRESS names a cluster (docs/federation.md,
# "Simulation on a Ray cluster").
export RAY_ADDRESS="${RAY_ADDRESS:-local}"
# `flwr run .` reuses any SuperLink answering on its local ports (default 39091/39093), and that SuperLink keeps
# the FLWR_HOME, Python and RAY_ADDRESS it was started with: a run from a second checkout would execute in the
# first one's. Each checkout gets ports of its own, derived from its path (a later `flwr run` reuses a SuperLink
# still listening there; scripts/run.sh stops the one it started), and cluster runs get others again.
slot=$(( $(printf '%s' "$(pwd)" | cksum | cut -d' ' -f1) % 1000 ))
[ "$RAY_ADDRESS" != local ] && slot=$(( slot + 1000 ))
export FLWR_LOCAL_SUPERLINK_HTTP_API_PORT="${FLWR_LOCAL_SUPERLINK_HTTP_API_PORT:-$(( 41000 + 2 * slot ))}"
export FLWR_LOCAL_CONTROL_API_PORT="${FLWR_LOCAL_CONTROL_API_PORT:-$(( 41001 + 2 * slot ))}"
