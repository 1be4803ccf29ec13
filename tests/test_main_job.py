"""The main job exactly as the README runs it: `flwr run . --stream` on the embedded synthetic default."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulations.processes import flower_env, flwr_run_simulation, stop_processes_naming

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_flwr_run_default_completes_above_chance(tmp_path):
    env = flower_env(tmp_path / "flwr-home")  # a fresh local SuperLink on ports of its own
    out_dir = tmp_path / "out"
    try:
        run = subprocess.run(
            flwr_run_simulation(f"out-dir='{out_dir}'", num_supernodes=10),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        stop_processes_naming(str(tmp_path))  # the SuperLink `flwr run` left, by pid
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "round 4:" in run.stdout + run.stderr  # the per-round summary lines are streamed
    metrics = json.loads((out_dir / "metrics.json").read_text())
    chance = 1.0 / len(metrics["rounds"][-1]["labels"])
    assert metrics["accuracy"] > chance
    assert metrics["new_activity_accuracy"] > 0.5  # two new labels: chance is 0.5
    assert metrics["targets"]["clients"] == 10
    assert metrics["config"]["num-server-rounds"] == 4 and metrics["seed"] == 0


@pytest.mark.slow
def test_run_sh_exits_non_zero_with_the_error_when_the_server_app_fails(tmp_path):
    """`flwr run` exits 0 when the ServerApp raises; scripts/run.sh must not report success then."""
    config = tmp_path / "broken.toml"
    # The ServerApp refuses this at its start: the new activities would arrive after the last round.
    config.write_text("num-server-rounds = 2\nnew-activities-round = 3\n")
    out_dir = tmp_path / "out"
    env = flower_env(tmp_path / "flwr-home") | {"FEDLANHAR_OUT": str(out_dir), "NUM_CLIENTS": "2"}
    try:
        run = subprocess.run(
            ["bash", "scripts/run.sh", str(config)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        stop_processes_naming(str(tmp_path))
    assert run.returncode != 0, run.stdout[-3000:]
    assert "the run failed" in run.stderr and "wrote no new" in run.stderr
    assert "new-activities-round" in run.stderr  # the ServerApp's own error is printed
    assert "outputs in" not in run.stdout
    assert not (out_dir / "metrics.json").exists()
