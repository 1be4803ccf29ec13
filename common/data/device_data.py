"""A device type's own recordings (`data = "recordings.npz"` in its TOML); the checks run on a device type.

The recordings are an npz window file (docs/data.md, read by common.data.loading.read_npz with its checks of
shapes, units and NaN) recorded by the device itself, at its own rate and window length. They are brought to
the model's layout here: the windows of one `segment` (consecutive pieces of one continuous recording, in
time order) are joined, resampled to 20 Hz with an anti-alias filter and cut again into 120-sample windows
(the tail that does not fill a window is dropped). Files already at 20 Hz with 120-sample windows are used as
they are. The windows then carry the device type's name and placement; labels, when present, are used only
to score clients. Layout and rules: docs/devices.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from common.data.devices import DeviceType, device_type_path, load_device_type
from common.data.errors import DataError
from common.data.loading import read_npz
from common.data.synthetic import simulated_segment
from common.data.windows import MODEL_RATE_HZ, WINDOW_LENGTH, WindowSet, cut_windows, resample_signal


def check_device_type(name_or_path: str | Path) -> DeviceType:
    """The device type, once what a run's preflight checks of it (server/federation.py,
    check_device_types) is checked, for `fedlanhar devices check`: its fields, and either its recordings'
    arrays, units and rate (`data`) or that the simulator knows its placement. Raises DataError naming the
    file and the field."""
    device = load_device_type(name_or_path)
    if device.data:
        device_recordings(device)
    else:
        simulated_segment(device.placement, source=f"{device_type_path(name_or_path)}: field 'placement'")
    return device


def device_recordings(device: DeviceType) -> WindowSet:
    """The windows of ``device.data`` in the model's layout (20 Hz, 120 samples), as ``device`` records them:
    its name and placement, no gyroscope channels when it has none. Read once per process and file."""
    if not device.data:
        raise DataError(f"device type {device.name!r}: field 'data' is empty (a simulated device type)")
    path = Path(device.data)
    windows = _model_layout_recordings(
        str(path), path.stat().st_mtime_ns, device.sampling_rate, device.has_gyro
    )
    return replace(windows, name=device.name, position=device.placement, device=device.name)


@functools.lru_cache(maxsize=8)
def _model_layout_recordings(
    path: str, modified_ns: int, device_rate: float, device_has_gyro: bool
) -> WindowSet:
    """The file at ``path`` (``modified_ns`` only keys the cache) at 20 Hz in 120-sample windows."""
    recordings = read_npz(path, window_length=None)  # any length: the device's own windows
    rate = _recording_rate(Path(path), recordings.sampling_rate, device_rate)
    if device_has_gyro and not recordings.has_gyro:
        raise DataError(
            f"{path}: field 'has_gyro': the recordings have no gyroscope (has_gyro false or all-zero gyro "
            "channels) but the device type says has_gyro = true; set has_gyro = false in its TOML"
        )
    _check_segments(recordings, path)
    n_samples = recordings.X.shape[1]
    if rate == MODEL_RATE_HZ and n_samples == WINDOW_LENGTH:
        windows = replace(recordings, sampling_rate=MODEL_RATE_HZ)
    else:
        windows = _rejoin_and_cut(recordings, rate, path)
    if not device_has_gyro:
        windows.X[..., 3:] = 0.0  # the device type has none: what the file holds there is not used
    return replace(windows, has_gyro=device_has_gyro)


def _recording_rate(path: Path, file_rate: float, device_rate: float) -> float:
    """The rate the windows of ``path`` are sampled at: its `sampling_rate` field, else the device's."""
    with np.load(path, allow_pickle=False) as archive:
        states_rate = "sampling_rate" in archive.files
    if not states_rate:
        return device_rate
    if not any(math.isclose(file_rate, allowed) for allowed in (device_rate, MODEL_RATE_HZ)):
        raise DataError(
            f"{path}: field 'sampling_rate' is {file_rate:g} Hz, but the device type records at "
            f"{device_rate:g} Hz; the file must be at the device's rate or already at the model's "
            f"{MODEL_RATE_HZ:g} Hz"
        )
    return file_rate


def _check_segments(recordings: WindowSet, source: str) -> None:
    """Every segment (one continuous recording) is of one user and one activity, as the splits assume."""
    for field_name, values in (("user", recordings.user), ("y", recordings.y)):
        pairs = np.unique(np.stack([recordings.segment, values]), axis=1)
        segments, counts = np.unique(pairs[0], return_counts=True)
        if (counts > 1).any():
            raise DataError(
                f"{source}: field 'segment': segment(s) {segments[counts > 1][:5].tolist()} hold more than "
                f"one value of field {field_name!r}; a segment is one continuous recording of one user and "
                "one activity"
            )


def _rejoin_and_cut(recordings: WindowSet, rate: float, source: str) -> WindowSet:
    """Each segment's windows joined in file order, resampled from ``rate`` to 20 Hz, cut into 120 samples."""
    X_parts, y_parts, user_parts, segment_parts = [], [], [], []
    for segment in dict.fromkeys(recordings.segment.tolist()):  # in the order of the file
        index = np.flatnonzero(recordings.segment == segment)
        stream = recordings.X[index].reshape(-1, recordings.X.shape[2]).astype(np.float64)
        windows = cut_windows(resample_signal(stream, rate, MODEL_RATE_HZ, axis=0), WINDOW_LENGTH)
        X_parts.append(windows.astype(np.float32))
        for parts, values in ((y_parts, recordings.y), (user_parts, recordings.user)):
            parts.append(np.full(len(windows), values[index[0]], dtype=np.int64))
        segment_parts.append(np.full(len(windows), segment, dtype=np.int64))
    X = np.concatenate(X_parts)
    if len(X) == 0:
        longest = np.bincount(np.unique(recordings.segment, return_inverse=True)[1]).max()
        raise DataError(
            f"{source}: field 'X' (shape {list(recordings.X.shape)} at {rate:g} Hz): no segment lasts "
            f"{WINDOW_LENGTH / MODEL_RATE_HZ:g} s (the longest holds {longest} window(s), "
            f"{longest * recordings.X.shape[1] / rate:g} s); a model window is {WINDOW_LENGTH} samples at "
            f"{MODEL_RATE_HZ:g} Hz"
        )
    return replace(
        recordings,
        X=X,
        y=np.concatenate(y_parts),
        user=np.concatenate(user_parts),
        segment=np.concatenate(segment_parts),
        sampling_rate=MODEL_RATE_HZ,
    )
