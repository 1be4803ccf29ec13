# Environment for running Flower here (sourced by scripts/run.sh and the tests; see docs/flower-notes in README).
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
