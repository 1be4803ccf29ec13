"""The main job exactly as the README runs it: `flwr run . --stream` on the embedded synthetic default."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from flower_runs import run_flwr

from simulations.processes import (
    flower_env,
    processes_naming,
    stop_processes_naming,
)
from simulations.run_check import main as check_main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_flwr_run_default_completes_above_chance(tmp_path):
    out_dir = tmp_path / "out"
    output = run_flwr(tmp_path, f"out-dir='{out_dir}'", num_supernodes=10)  # a SuperLink of its own
    assert "round 4:" in output  # the per-round summary lines are streamed
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
    # The local SuperLink `flwr run` started for this run (with its SuperExec and Ray) was stopped by run.sh.
    assert "stopped the local SuperLink this run started" in run.stderr
    assert not processes_naming(str(tmp_path / "flwr-home"))


def test_run_sh_check_wants_a_fresh_metrics_json_and_prints_the_error_from_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What scripts/run.sh runs after `flwr run` (simulations/run_check.py), without a run: a metrics.json
    an earlier run left is not this run's, and the failure names the log and quotes its error."""
    out, log = tmp_path / "out", tmp_path / "out" / "flwr-run.log"
    out.mkdir()
    log.write_text(
        "INFO : starting\nTraceback (most recent call last):\n  File 'server/federation.py'\n"
        "RuntimeError: every client of a device type the run config names refused\nINFO : done\n"
    )
    before = run_check(["stamp", str(out)], capsys)
    assert before == "none"
    (out / "metrics.json").write_text("{}")  # this run's
    assert run_check(["check", str(out), before, "0", str(log)], capsys) == ""
    stale = run_check(["stamp", str(out)], capsys)  # the next run writes nothing new
    assert check_main(["check", str(out), stale, "0", str(log)]) == 1
    error = capsys.readouterr().err
    assert "FedLanHAR: the run failed (exit 0) and wrote no new" in error and str(log) in error
    assert "RuntimeError: every client of a device type" in error and "INFO : starting" not in error
    assert check_main(["check", str(out), "none", "1", str(log)]) == 1  # flwr itself failed


def run_check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert check_main(argv) == 0
    return capsys.readouterr().out.strip()
