"""HHAR, the Heterogeneity Activity Recognition data set (Stisen et al., SenSys 2015; UCI id 344).

Format, from the archive's README and the UCI page (https://archive.ics.uci.edu/dataset/344):
- "Activity recognition exp/" holds Phones_accelerometer.csv, Phones_gyroscope.csv, Watch_accelerometer.csv
  and Watch_gyroscope.csv, comma-separated with the header
  ``Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt``.
- Creation_Time is the sensor event's own timestamp in NANOSECONDS (Arrival_Time is the OS arrival time in ms
  and is not used): samples are joined on Creation_Time, which acc and gyro of one device share.
- x, y, z: acc in m/s^2 including gravity (Android convention, +9.8 on the axis pointing up when still),
  gyro in rad/s.
- User "a".."i" (9 users), Model (nexus4, s3, s3mini, samsungold; gear, lgwatch), Device (e.g. "nexus4_1"),
  gt one of bike, sit, stand, walk, stairsup, stairsdown, or "null" (no activity): null rows are dropped.
- The devices sample "as fast as possible", so the rates differ (about 50 Hz for samsungold up to 200 Hz
  for nexus4 and lgwatch) and the timestamps jitter. Phones were carried in a pouch at the waist, the
  watches on the arms (Stisen et al., section 3).

One recording is one (user, device, gt) stream. A pause of more than HHAR_MAX_GAP_S in either sensor ends a
continuous run; where acc and gyro runs overlap, both are interpolated onto a 200 Hz grid (at or above every
device's rate, so nothing is lost) and brought to 20 Hz by common.data.resample_signal's anti-alias filter.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from common.data.archives import WindowCollector, continuous_runs, intersect_runs, on_grid, sorted_samples
from common.data.errors import DataError
from common.data.paper_archives._shared import csv_rows, find_folder, parse_number
from common.data.windows import MODEL_RATE_HZ, WindowSet, resample_signal

HHAR_COLUMNS = ("Index", "Arrival_Time", "Creation_Time", "x", "y", "z", "User", "Model", "Device", "gt")
HHAR_ACTIVITIES = ("bike", "sit", "stand", "walk", "stairsup", "stairsdown")
HHAR_NULL_LABEL = "null"
HHAR_FAMILIES = {"phone": ("Phones", "waist"), "watch": ("Watch", "wrist")}  # file prefix, body position
HHAR_MAX_GAP_S = 0.5  # at 50-200 Hz a longer silence is a dropped stream, not jitter
HHAR_GRID_HZ = 200.0  # the fastest device's rate: interpolating onto it loses nothing before the filter

# (user, device, gt) -> (Creation_Time ns, x/y/z flattened); array() keeps millions of rows compact.
_Streams = dict[tuple[str, str, str], tuple[array, array]]


def find_hhar_root(directory: Path, device: str = "phone") -> Path | None:
    prefix = HHAR_FAMILIES[device][0]
    return find_folder(directory, lambda folder: (folder / f"{prefix}_accelerometer.csv").is_file())


def read_hhar(directory: str | Path, name: str = "hhar_phone", device: str = "phone") -> WindowSet:
    """HHAR phone (or watch) accelerometer + gyroscope -> 20 Hz windows of the six activities."""
    directory = Path(directory)
    if device not in HHAR_FAMILIES:
        raise DataError(f"read_hhar: device {device!r} unknown, expected one of {sorted(HHAR_FAMILIES)}")
    prefix, position = HHAR_FAMILIES[device]
    root = find_hhar_root(directory, device)
    if root is None:
        raise DataError(f"{directory}: no HHAR {prefix}_accelerometer.csv found (also looked in sub-folders)")
    models: dict[str, str] = {}
    acc_streams = _read_hhar_file(root / f"{prefix}_accelerometer.csv", models)
    gyro_streams = _read_hhar_file(root / f"{prefix}_gyroscope.csv", models)

    collector = WindowCollector(HHAR_ACTIVITIES)
    for key in sorted(acc_streams.keys() & gyro_streams.keys()):
        user, _, activity = key
        acc_ns, acc = _sorted_stream(*acc_streams[key])
        gyro_ns, gyro = _sorted_stream(*gyro_streams[key])
        origin = min(acc_ns[0], gyro_ns[0])  # subtract in int64: epoch ns do not fit a float's 53 bits
        acc_s, gyro_s = (acc_ns - origin) / 1e9, (gyro_ns - origin) / 1e9
        runs = intersect_runs(continuous_runs(acc_s, HHAR_MAX_GAP_S), continuous_runs(gyro_s, HHAR_MAX_GAP_S))
        for start, end in runs:
            stream = np.concatenate(
                [on_grid(t, v, start, end, HHAR_GRID_HZ) for t, v in ((acc_s, acc), (gyro_s, gyro))], axis=1
            )
            collector.add(resample_signal(stream, HHAR_GRID_HZ, MODEL_RATE_HZ), activity, _user_id(user))
    return collector.build(root, name, position, ", ".join(sorted(set(models.values()))))


def _read_hhar_file(path: Path, models: dict[str, str]) -> _Streams:
    """Rows of one HHAR csv by (user, device, gt), null rows dropped; fills ``models`` (device -> model)."""
    if not path.is_file():
        raise DataError(f"{path} is missing (HHAR needs the accelerometer and the gyroscope file)")
    streams: _Streams = {}
    for where, row in csv_rows(path, HHAR_COLUMNS):
        activity = row["gt"].strip()
        if activity == HHAR_NULL_LABEL:
            continue
        if activity not in HHAR_ACTIVITIES:
            raise DataError(
                f"{where}: field 'gt' = {activity!r} is not one of {[*HHAR_ACTIVITIES, HHAR_NULL_LABEL]}"
            )
        user, device = row["User"].strip(), row["Device"].strip()
        _user_id(user, where)
        try:
            timestamp = int(row["Creation_Time"])
        except ValueError as error:
            raise DataError(
                f"{where}: field 'Creation_Time' = {row['Creation_Time']!r} is not an integer (nanoseconds)"
            ) from error
        xyz = [parse_number(row[axis], where, axis) for axis in ("x", "y", "z")]
        models.setdefault(device, row["Model"].strip())
        times, values = streams.setdefault((user, device, activity), (array("q"), array("d")))
        times.append(timestamp)
        values.extend(xyz)
    return streams


def _sorted_stream(times: array, values: array) -> tuple[np.ndarray, np.ndarray]:
    """(times ns, xyz [n, 3]) sorted by time, repeated timestamps dropped (the first sample is kept)."""
    return sorted_samples(
        np.frombuffer(times, dtype=np.int64), np.frombuffer(values, dtype=np.float64).reshape(-1, 3)
    )


def _user_id(user: str, where: str = "HHAR") -> int:
    """HHAR users are the letters a..i; they become 1..9 (WindowSet users are integers)."""
    if len(user) != 1 or not "a" <= user <= "z":
        raise DataError(f"{where}: field 'User' = {user!r} is not a single lowercase letter (a..i)")
    return ord(user) - ord("a") + 1
