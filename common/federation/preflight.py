"""Client preflight: what makes a client unusable, found before it takes part (and named in the refusal).

A client whose data is empty, constant (a stuck sensor), NaN/inf-ridden, or of an unknown device type is
refused in the first phase: it answers the server with the reason instead of summaries, the server logs it
in metrics.json ("refused_clients") and the run goes on without it, unless every client of a device type the
run config names refused: then the server stops the run (server/federation.py, check_refusals). The device
types the run config names are checked by the server before anything trains (its preflight); an unknown one
reaches a client only from a SuperNode's own `--node-config`.
"""

from __future__ import annotations

import numpy as np

from common.data.windows import WindowSet
from common.federation.partition import ClientData

# A window whose every channel moves less than this over its 6 s is flat (m/s^2 or rad/s): no real
# body-worn IMU is that still (its noise alone is larger).
FLAT_STD = 1e-4
# Refuse when more than this share of a client's windows is flat.
MAX_FLAT_SHARE = 0.5


def windows_problem(windows: WindowSet, part: str) -> str | None:
    """Why these windows cannot be used (None when they can)."""
    X = windows.X
    if not np.isfinite(X).all():
        window, sample, channel = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
        bad = int((~np.isfinite(X)).any(axis=(1, 2)).sum())
        return (
            f"{part} windows hold NaN/inf values: {bad} of {len(X)} windows, first at window {window}, "
            f"sample {sample}, channel {channel}"
        )
    flat = (X.astype(np.float64).std(axis=1) < FLAT_STD).all(axis=1)
    if flat.mean() > MAX_FLAT_SHARE:
        return f"{part} windows are constant: {int(flat.sum())} of {len(X)} windows do not move at all"
    return None


def client_data_problem(data: ClientData) -> str | None:
    """Why this client cannot take part (None when it can)."""
    if not data.trains and not data.evaluates:
        return "no windows (empty data)"
    for part, windows in (("training", data.train), ("evaluation", data.eval)):
        if len(windows):
            problem = windows_problem(windows, part)
            if problem:
                return problem
    return None
