"""Test helper: a device type TOML with `data` and the npz of its recordings, written into a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.data.synthetic import generate_windows

ACTIVITIES = ["walking", "upstairs", "sitting"]


def write_recorded_device(
    directory: Path,
    rate: float = 50.0,
    window_seconds: float = 6.0,
    n_users: int = 4,
    toml_extra: str = "",
    **fields: object,
) -> Path:
    """``directory``/my_pendant.toml naming recordings.npz beside it: simulated waist windows of 3 activities
    and ``n_users`` users at ``rate`` Hz, 2 windows per recording. ``fields`` replace npz fields (None
    removes one). Returns the TOML's path."""
    recorded = generate_windows(
        ACTIVITIES,
        8,
        seed=1,
        n_users=n_users,
        sampling_rate=rate,
        window=int(round(rate * window_seconds)),
        windows_per_recording=2,
    )
    arrays: dict[str, object] = {
        "X": recorded.X,
        "y": recorded.y,
        "label_names": np.array(recorded.label_names),
        "user": recorded.user,
        "segment": recorded.segment,
        "sampling_rate": np.float64(rate),
    }
    arrays.update(fields)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "recordings.npz", **{k: v for k, v in arrays.items() if v is not None})
    toml = directory / "my_pendant.toml"
    toml.write_text(
        f'description = "a pendant"\nsampling_rate = {rate}\nplacement = "neck"\ndata = "recordings.npz"\n'
        + toml_extra
    )
    return toml
