"""Stopping a run's processes by pid: only those naming the run's own directory, children included."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from simulations.processes import processes_naming, stop_process_trees, stop_processes_naming

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


# A session leader whose child starts a grandchild and exits: the grandchild is re-parented away from the
# leader (as daemons like Ray's raylet are) but stays in the leader's process group.
ORPHANING = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', "
    '\'import subprocess, sys; subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])\''
    "]).wait(); "
    "time.sleep(60)"
)


def test_stops_a_started_process_with_its_group_and_descendants_only() -> None:
    ours = subprocess.Popen([sys.executable, "-c", ORPHANING], start_new_session=True)
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan = None
        for _ in range(100):  # wait until the grandchild exists
            members = [p for p in psutil.process_iter() if p.pid != ours.pid and _pgid(p.pid) == ours.pid]
            orphan = members[0] if len(members) == 1 and members[0].ppid() != ours.pid else None
            if orphan is not None:  # its parent has exited: only the process group still ties it to ours
                break
            time.sleep(0.1)
        assert orphan is not None
        stopped = stop_process_trees([ours], timeout=5)
        assert ours.pid in stopped and orphan.pid in stopped
        assert ours.wait(timeout=5) is not None
        assert not orphan.is_running() or orphan.status() == "zombie"
        assert theirs.poll() is None
    finally:
        for process in (ours, theirs):
            if process.poll() is None:
                process.kill()
                process.wait()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _superlink_ports(checkout, **env) -> tuple[str, str]:
    """The local SuperLink ports scripts/flower-env.sh sets in `checkout` (the script sourced from there)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "flower-env.sh"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLWR_LOCAL_", "RAY_ADDRESS"))}
    shell = f'source "{script}"; echo "$FLWR_LOCAL_SUPERLINK_HTTP_API_PORT $FLWR_LOCAL_CONTROL_API_PORT"'
    out = subprocess.run(["bash", "-c", shell], cwd=checkout, env=clean | env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    http, control = out.stdout.split()
    return http, control


def test_each_checkout_gets_its_own_local_superlink_ports(tmp_path) -> None:
    """`flwr run .` reuses any SuperLink on its ports with that SuperLink's FLWR_HOME and Python: a second
    checkout must not land in the first one's."""
    first = tmp_path / "checkout"
    others = [tmp_path / f"other-checkout-{i}" for i in range(5)]
    for directory in (first, *others):
        directory.mkdir()
    ports = _superlink_ports(first)
    assert ports == _superlink_ports(first)  # the same checkout reuses its SuperLink
    # 1,000 port pairs: two checkouts share one by chance 1 time in 1,000, all five others never do.
    assert any(_superlink_ports(other) != ports for other in others)
    assert ports != _superlink_ports(first, RAY_ADDRESS="10.0.0.1:6379")  # a cluster run gets its own
    assert all(41000 <= int(port) < 45000 for port in ports) and ports[0] != ports[1]
    assert _superlink_ports(first, FLWR_LOCAL_SUPERLINK_HTTP_API_PORT="50001")[0] == "50001"


def test_run_sh_stops_only_the_local_superlink_of_its_own_flwr_home_and_port(tmp_path) -> None:
    """scripts/run.sh stops the SuperLink `flwr run` started for it: the process whose command line names
    its FLWR_HOME's log file and its port, never one of another FLWR_HOME or port (stand-ins here)."""
    from simulations.processes import local_superlink_pids, main

    def superlink(home: Path, port: int) -> subprocess.Popen:
        log_file = str(home / "local-superlink" / "superlink.log")
        arguments = ["--simulation", "--port", str(port), "--log-file", log_file]
        return subprocess.Popen([sys.executable, "-c", SLEEPER, *arguments], start_new_session=True)

    ours = superlink(tmp_path / "flwr-home", 41234)
    other_port = superlink(tmp_path / "flwr-home", 41236)
    other_home = superlink(tmp_path / "flwr-home-2", 41234)
    try:
        for _ in range(50):  # wait until our stand-in has started its child
            if psutil.Process(ours.pid).children():
                break
            time.sleep(0.1)
        assert local_superlink_pids(tmp_path / "flwr-home", 41234) == [ours.pid]
        assert main(["stop-local-superlink", str(tmp_path / "flwr-home"), "41234"]) == 0
        assert ours.wait(timeout=5) is not None
        assert other_port.poll() is None and other_home.poll() is None  # not this run's: untouched
        assert local_superlink_pids(tmp_path / "flwr-home", 41234) == []
    finally:
        stop_process_trees([ours, other_port, other_home], timeout=5)


def test_run_sh_asks_whether_a_superlink_already_listens_on_its_port() -> None:
    import socket

    from simulations.processes import main

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert main(["port-in-use", str(port)]) == 0
    assert main(["port-in-use", str(port)]) == 1
