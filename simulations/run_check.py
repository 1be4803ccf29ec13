"""Did a federated run work? Its own output decides: a fresh metrics.json, else the error read from its log.

`flwr run` exits 0 even when the ServerApp stops with an error (the run is then marked failed on the
SuperLink, not in the exit code), so every caller that runs a federation asks here instead: scripts/run.sh
(through `python -m simulations.run_check`), `fedlanhar bench` (simulations/federated_bench.py) and the
in-process simulations of `fedlanhar experiment federated` (simulations/experiments/federated.py).

    STAMP=$(python -m simulations.run_check stamp OUT)            # before the run
    python -m simulations.run_check check OUT STAMP EXIT_CODE LOG   # after: exit 1 and the error if it failed
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

METRICS = "metrics.json"
# The lines of a log that carry an error, as a Python traceback and Flower's log print them.
ERROR_LINE = re.compile(r"Error|Exception|Traceback")
LINES_AFTER_ERROR = 4  # the lines after each one (the traceback's frames, the message)
MAX_ERROR_LINES = 30


class RunFailed(RuntimeError):
    """A federated run that failed or wrote no fresh metrics.json; the message carries its error."""


def metrics_stamp(out_dir: Path) -> str:
    """metrics.json's identity as "inode:mtime-ns", "none" when there is none. Taken before a run: the
    ServerApp writes its metrics.json anew (a temporary file moved into place, a new inode), so after the run
    a different stamp is this run's file and the same stamp an earlier run's."""
    try:
        status = (Path(out_dir) / METRICS).stat()
    except FileNotFoundError:
        return "none"
    return f"{status.st_ino}:{status.st_mtime_ns}"


def error_excerpt(log_text: str) -> str:
    """The log's error lines, each with the few lines after it, the last MAX_ERROR_LINES of them."""
    lines = log_text.splitlines()
    keep: set[int] = set()
    for index, line in enumerate(lines):
        if ERROR_LINE.search(line):
            keep.update(range(index, min(index + LINES_AFTER_ERROR + 1, len(lines))))
    return "\n".join(lines[i] for i in sorted(keep)[-MAX_ERROR_LINES:])


def fresh_metrics(
    out_dir: Path, stamp_before: str, exit_code: int = 0, log_path: Path | None = None, what: str = "the run"
) -> dict:
    """The run's metrics.json when it exited 0 and wrote a fresh one; else RunFailed with the log's error."""
    metrics_path = Path(out_dir) / METRICS
    if exit_code == 0 and metrics_stamp(out_dir) not in ("none", stamp_before):
        return json.loads(metrics_path.read_text())
    message = f"{what} failed (exit {exit_code}) and wrote no new {metrics_path}."
    if log_path is not None:
        log_text = Path(log_path).read_text(errors="replace") if Path(log_path).is_file() else ""
        message += (
            f"\nIts error (full log: {log_path}):\n{error_excerpt(log_text) or '(no error in the log)'}"
        )
    raise RunFailed(message)


def main(argv: list[str] | None = None) -> int:
    """`stamp OUT` prints metrics.json's stamp; `check OUT STAMP EXIT_CODE LOG` exits 1 with the error on
    stderr when the run failed (scripts/run.sh)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["stamp"] and len(args) == 2:
        print(metrics_stamp(Path(args[1])))
        return 0
    if args[:1] == ["check"] and len(args) == 5:
        out_dir, stamp, exit_code, log_path = Path(args[1]), args[2], int(args[3]), Path(args[4])
        try:
            fresh_metrics(out_dir, stamp, exit_code, log_path, what="FedLanHAR: the run")
        except RunFailed as failure:
            print(failure, file=sys.stderr)
            return 1
        return 0
    print(__doc__.split("\n\n")[-1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
