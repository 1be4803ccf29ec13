"""Find and stop the processes one run started, by pid, never by a broad name match.

`flwr run` starts a detached local SuperLink that outlives the command. A benchmark or test gives each run its
own directory (FLWR_HOME, out-dir), so the processes whose command line names that directory are exactly the
ones it started: those are stopped by pid, with their children, and nothing else on the machine is touched
(not a user's own SuperLink, not another run's).
"""

from __future__ import annotations

import psutil


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
