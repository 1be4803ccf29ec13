"""What the tests that start a real Flower run share."""

from __future__ import annotations

import subprocess
from pathlib import Path

from simulations.processes import flower_env, flwr_run_simulation, stop_processes_naming

REPO = Path(__file__).resolve().parents[1]

# The smallest run config that still runs every phase of the protocol (summaries, targets, a round, a push of
# new labels). Each message costs a deployment several seconds (a SuperNode polls every 3 s and starts a
# ClientApp process per message), so one round with its push, and one stage-1 step.
SMALL_RUN = (
    "num-server-rounds=1 new-activities='jogging' new-activities-round=1 stage1-steps=1 "
    "server-pretrain-epochs=1 source-windows-per-activity=16 windows-per-client=40 local-epochs=1 "
    "sensor-width=64"
)


def run_flwr(
    tmp_path: Path,
    run_config: str | Path,
    num_supernodes: int,
    env: dict[str, str] | None = None,
    timeout: int = 1200,
) -> str:
    """`flwr run` of this checkout as a simulation, with a SuperLink of its own (its FLWR_HOME and ports under
    `tmp_path`, stopped by pid afterwards) and `env` added to its environment; asserts it exited 0 and
    returns its output (stdout + stderr)."""
    try:
        run = subprocess.run(
            flwr_run_simulation(run_config, num_supernodes=num_supernodes),
            cwd=REPO,
            env=flower_env(tmp_path / "flwr-home") | (env or {}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        stop_processes_naming(str(tmp_path))  # the SuperLink `flwr run` left, by pid
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    return output
