"""Find and stop the processes one run started, by pid, never by a broad name match.

`flwr run` starts a detached local SuperLink that outlives the command. A benchmark or test gives each run its
own directory (FLWR_HOME, out-dir), so the processes whose command line names that directory are exactly the
ones it started: those are stopped by pid, with their children, and nothing else on the machine is touched
(not a user's own SuperLink, not another run's).
"""

from __future__ import annotations

import socket

import psutil


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def own_local_superlink_env() -> dict[str, str]:
    """Environment for `flwr run` to start a local SuperLink on ports of its own.

    `flwr run` reuses ANY local SuperLink listening on the default ports (39091/39093), whoever started it: on
    a shared machine a run would land in another user's SuperLink (their FLWR_HOME, their code). Free ports
    make it start its own, which `stop_processes_naming` can then stop by pid.
    """
    return {
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
        "FLWR_LOCAL_CONTROL_API_PORT": str(free_port()),
    }


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
    targets: dict[int, psutil.Process] = {}
    for root in processes_naming(marker):
        try:
            for process in [root, *root.children(recursive=True)]:
                targets[process.pid] = process
        except psutil.Error:
            continue  # it ended while we looked
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
