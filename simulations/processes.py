"""Find and stop the processes one run started, by pid, never by a broad name match.

`flwr run` starts a detached local SuperLink that outlives the command. A benchmark or test gives each run its
own directory (FLWR_HOME, out-dir), so the processes whose command line names that directory are exactly the
ones it started: those are stopped by pid, with their children, and nothing else on the machine is touched
(not a user's own SuperLink, not another run's).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from common.base.network import free_ports


def own_local_superlink_env() -> dict[str, str]:
    """Environment for `flwr run` to start a local SuperLink on ports of its own.

    `flwr run` reuses ANY local SuperLink listening on the default ports (39091/39093), whoever started it: on
    a shared machine a run would land in another user's SuperLink (their FLWR_HOME, their code). Free ports
    make it start its own, which `stop_processes_naming` can then stop by pid.
    """
    http_port, control_port = free_ports(2)
    return {
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(http_port),
        "FLWR_LOCAL_CONTROL_API_PORT": str(control_port),
    }


def flower_env(flwr_home: Path, own_superlink: bool = True) -> dict[str, str]:
    """The environment for the Flower commands a test or benchmark starts, as scripts/flower-env.sh sets it.

    This Python's bin first on PATH (its flwr and Flower executables), a FLWR_HOME of the caller's own, no
    telemetry, update check or runtime dependency installation, one OpenMP thread, a private Ray instance
    unless RAY_ADDRESS is set; with `own_superlink`, `flwr run`'s local SuperLink on free ports of its own.
    """
    env = os.environ | {
        "FLWR_HOME": str(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "RAY_ADDRESS": os.environ.get("RAY_ADDRESS", "local"),
    }
    return env | own_local_superlink_env() if own_superlink else env


def flwr_run_simulation(run_config: str | Path, num_supernodes: int) -> list[str]:
    """`flwr run` of this app in the local simulation, as scripts/run.sh runs it: `run_config` is key=value
    pairs or a TOML file; one CPU per simulated client. Run it from the repository root with `flower_env`."""
    return [
        str(Path(sys.executable).parent / "flwr"),
        "run",
        ".",
        "--stream",
        "--run-config",
        str(run_config),
        "--federation-config",
        f"num-supernodes={num_supernodes} client-resources-num-cpus=1",
    ]


def processes_naming(marker: str) -> list[psutil.Process]:
    """Running processes whose command line contains `marker` (a run's own directory), this one excluded."""
    if len(marker) < 8:
        raise ValueError(f"marker {marker!r} is too short to name one run's processes only")
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if marker in cmdline and process.pid != psutil.Process().pid:
            found.append(process)
    return found


def stop_processes_naming(marker: str, timeout: float = 10.0) -> list[int]:
    """SIGTERM the processes naming `marker` and their children, SIGKILL what is left after `timeout` s.

    Returns the pids that were signalled.
    """
    return _stop(_with_descendants(processes_naming(marker)), timeout)


def stop_process_trees(roots: Iterable[int | subprocess.Popen], timeout: float = 10.0) -> list[int]:
    """Stop processes this program started, given by pid or Popen, with every descendant, by pid.

    A root started with `start_new_session=True` leads its own process group: members of that group are
    stopped too, which catches helpers re-parented away from the root (Ray's raylet and GCS; a SuperNode's
    SuperExec once the SuperNode has exited). A group id is its leader's pid: for a pid, the leader must be
    alive while we look, so the group cannot be someone else's; for a Popen (our own child) the group is
    looked up even after the leader has exited. SIGTERM first, SIGKILL after `timeout` s.
    Returns the pids that were signalled.
    """
    found: list[psutil.Process] = []
    for root in roots:
        pid = root.pid if isinstance(root, subprocess.Popen) else root
        # An exited child's group can only hold processes it started (a new group of that id would need
        # its pid to be reused within moments).
        leads_group = _pgid(pid) == pid or (isinstance(root, subprocess.Popen) and root.poll() is not None)
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            pass  # already ended
        if leads_group:
            found.extend(p for p in psutil.process_iter() if p.pid != pid and _pgid(p.pid) == pid)
    return _stop(_with_descendants(found), timeout)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _with_descendants(roots: Iterable[psutil.Process]) -> dict[int, psutil.Process]:
    targets: dict[int, psutil.Process] = {}
    for root in roots:
        try:
            for process in [root, *root.children(recursive=True)]:
                targets[process.pid] = process
        except psutil.Error:
            continue  # it ended while we looked
    targets.pop(psutil.Process().pid, None)  # never this process
    return targets


def _stop(targets: dict[int, psutil.Process], timeout: float) -> list[int]:
    for process in targets.values():
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(targets.values()), timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    return sorted(targets)


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def local_superlink_pids(flwr_home: Path, port: int) -> list[int]:
    """The local SuperLink `flwr run` starts for `flwr_home` on `port`: its command line names both (its log
    file under FLWR_HOME, `--port`), so a SuperLink of another FLWR_HOME or port is never among them."""
    log_file = str(Path(flwr_home) / "local-superlink" / "superlink.log")  # as `flwr run` names it
    pids = []
    for process in processes_naming(log_file):
        try:
            arguments = process.cmdline()
        except psutil.Error:
            continue  # it ended while we looked
        if "--port" in arguments[:-1] and arguments[arguments.index("--port") + 1] == str(port):
            pids.append(process.pid)
    return pids


def main(argv: list[str] | None = None) -> int:
    """For scripts/run.sh: `port-in-use PORT` exits 0 when something listens there, 1 when not;
    `stop-local-superlink FLWR_HOME PORT` stops that SuperLink with its SuperExec and Ray, by pid."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["port-in-use"] and len(args) == 2:
        return 0 if port_in_use(int(args[1])) else 1
    if args[:1] == ["stop-local-superlink"] and len(args) == 3:
        stopped = stop_process_trees(local_superlink_pids(Path(args[1]), int(args[2])))
        print(f"stopped the local SuperLink this run started ({len(stopped)} processes)", file=sys.stderr)
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


def wait_for_port(port: int, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Wait until something listens on 127.0.0.1:`port`; fail early if `process` (the server) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
