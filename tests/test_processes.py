"""Stopping a run's processes by pid: only those naming the run's own directory, children included."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from simulations.processes import processes_naming, stop_processes_naming

SLEEPER = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"  # noqa: E501


def test_stops_only_the_processes_naming_the_marker_and_their_children(tmp_path) -> None:
    ours = subprocess.Popen([sys.executable, "-c", SLEEPER, str(tmp_path / "run-a")])
    theirs = subprocess.Popen([sys.executable, "-c", SLEEPER, str(tmp_path / "run-b")])
    try:
        for _ in range(50):  # wait until the grandchild exists
            if processes_naming(str(tmp_path / "run-a")) and len(psutil.Process(ours.pid).children()):
                break
            time.sleep(0.1)
        child = psutil.Process(ours.pid).children()[0]
        stopped = stop_processes_naming(str(tmp_path / "run-a"), timeout=5)
        assert ours.pid in stopped and child.pid in stopped
        assert ours.wait(timeout=5) is not None
        assert not child.is_running() or child.status() == "zombie"
        assert theirs.poll() is None  # another run's process is untouched
    finally:
        for process in (ours, theirs):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_refuses_a_marker_too_short_to_be_one_runs_own() -> None:
    with pytest.raises(ValueError, match="too short"):
        processes_naming("flwr")
