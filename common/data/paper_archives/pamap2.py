"""PAMAP2 Physical Activity Monitoring (Reiss and Stricker, ISWC 2012; UCI id 231).

Format, from the archive's readme.pdf and DataCollectionProtocol.pdf (https://archive.ics.uci.edu/dataset/231):
- PAMAP2_Dataset/Protocol/subject101.dat .. subject109.dat (Optional/ holds the optional activities of some
  subjects), one row per 100 Hz sample, 54 space-separated columns:
  1 timestamp (s), 2 activityID, 3 heart rate (bpm, about 9 Hz, NaN in between), then three Colibri IMUs
  (4-20 hand on the dominant wrist, 21-37 chest, 38-54 ankle), each with 17 columns: temperature (C),
  3D acc +-16 g scale (m/s^2), 3D acc +-6 g scale (m/s^2), 3D gyro (rad/s), 3D magnetometer (uT), and a 4D
  orientation marked invalid.
- Missing values are NaN (dropped wireless packets, the heart rate between its readings).
- activityID 0 is "other", the transient time between activities, and is dropped.

The +-16 g accelerometer is read: the readme recommends it because the +-6 g one saturates in fast
movements. A recording is a run of rows with one activityID. Rows where the chosen IMU's acc or gyro is NaN
are left out; a hole longer than PAMAP2_MAX_GAP_S, or a timestamp jump as long, splits the recording, shorter
holes are bridged by linear interpolation on the 100 Hz grid before the anti-alias resampling to 20 Hz.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.data.archives import WindowCollector, continuous_runs, on_grid
from common.data.errors import DataError
from common.data.labels import normalise
from common.data.paper_archives._shared import find_folder, parse_number
from common.data.windows import MODEL_RATE_HZ, WindowSet, resample_signal

PAMAP2_RATE_HZ = 100.0
PAMAP2_COLUMNS = 54
PAMAP2_TRANSIENT_ID = 0
PAMAP2_ACTIVITIES = {  # readme.pdf, table of activity IDs; 9-11 and 18-20 are the optional activities
    1: "lying",
    2: "sitting",
    3: "standing",
    4: "walking",
    5: "running",
    6: "cycling",
    7: "nordic walking",
    9: "watching tv",
    10: "computer work",
    11: "car driving",
    12: "ascending stairs",
    13: "descending stairs",
    16: "vacuum cleaning",
    17: "ironing",
    18: "folding laundry",
    19: "house cleaning",
    20: "playing soccer",
    24: "rope jumping",
}
PAMAP2_OPTIONAL_IDS = (9, 10, 11, 18, 19, 20)  # recorded by some subjects only, in Optional/
# IMU -> (first column, 0-based, of its 17; WindowSet position).
PAMAP2_IMUS = {"hand": (3, "dominant wrist"), "chest": (20, "chest"), "ankle": (37, "dominant ankle")}
_ACC16, _GYRO = slice(1, 4), slice(7, 10)  # within an IMU's 17 columns
PAMAP2_MAX_GAP_S = 0.5
_SUBJECT_FILE = re.compile(r"subject(\d+)\.dat$")


def find_pamap2_root(directory: Path) -> Path | None:
    """The folder holding Protocol/ (PAMAP2_Dataset in the official zip)."""
    return find_folder(directory, lambda folder: any((folder / "Protocol").glob("subject*.dat")))


def read_pamap2(
    directory: str | Path, name: str = "pamap2_chest", position: str = "chest", include_optional: bool = False
) -> WindowSet:
    """One IMU ("hand", "chest" or "ankle") of PAMAP2's Protocol files -> 20 Hz windows.

    ``include_optional`` also reads Optional/subject1NN.dat (watching TV, computer work, car driving,
    folding laundry, house cleaning, playing soccer for the subjects who did them).
    """
    directory = Path(directory)
    imu = normalise(position)
    if imu not in PAMAP2_IMUS:
        raise DataError(f"read_pamap2: position {position!r} unknown, expected one of {list(PAMAP2_IMUS)}")
    root = find_pamap2_root(directory)
    if root is None:
        raise DataError(f"{directory}: no PAMAP2 Protocol/subject1NN.dat files found")
    first_column, body_position = PAMAP2_IMUS[imu]
    imu_columns = np.r_[first_column + _ACC16.start : first_column + _ACC16.stop,
                        first_column + _GYRO.start : first_column + _GYRO.stop]  # fmt: skip
    folders = ["Protocol", "Optional"] if include_optional else ["Protocol"]
    files = sorted(
        (folder, int(match.group(1)), path)
        for folder in folders
        if (root / folder).is_dir()
        for path in (root / folder).iterdir()
        if (match := _SUBJECT_FILE.match(path.name))
    )
    recordings = []  # (20 Hz stream, label, subject), collected first: the label list depends on them
    for _, subject, path in files:
        table = _read_subject(path)
        for start, end in _activity_runs(table[:, 1]):
            activity_id = int(table[start, 1])
            if activity_id == PAMAP2_TRANSIENT_ID:
                continue
            rows = table[start:end]
            valid = np.isfinite(rows[:, imu_columns]).all(axis=1)
            times, values = rows[valid, 0], rows[valid][:, imu_columns]
            for run_start, run_end in continuous_runs(times, PAMAP2_MAX_GAP_S):
                stream = on_grid(times, values, run_start, run_end, PAMAP2_RATE_HZ)
                stream = resample_signal(stream, PAMAP2_RATE_HZ, MODEL_RATE_HZ)
                recordings.append((stream, PAMAP2_ACTIVITIES[activity_id], subject))
    # The protocol activities always; the optional ones only when read or present, so that a new-activity
    # evaluation does not offer labels that no window can have.
    present = {label for _, label, _ in recordings}
    labels = [
        label
        for activity_id, label in PAMAP2_ACTIVITIES.items()
        if activity_id not in PAMAP2_OPTIONAL_IDS or include_optional or label in present
    ]
    collector = WindowCollector(labels)
    for stream, label, subject in recordings:
        collector.add(stream, label, subject)
    return collector.build(root, name, body_position, device="colibri imu")


def _read_subject(path: Path) -> np.ndarray:
    """[n, 54] table of one subject file; NaN allowed except in the timestamp and activityID columns."""
    rows, line_numbers = [], []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}, line {line_number}"
            if len(fields) != PAMAP2_COLUMNS:
                raise DataError(
                    f"{where}: expected {PAMAP2_COLUMNS} space-separated columns, got {len(fields)}"
                )
            try:  # fast path; the files hold millions of numbers
                row = [float(value) for value in fields]
            except ValueError:
                row = []
            if not row or any(np.isinf(row)):  # find the field to name in the error
                for index, value in enumerate(fields):
                    parse_number(value, where, _column_name(index), allow_nan=True)
            timestamp, activity = row[0], row[1]
            if np.isnan(timestamp):
                raise DataError(f"{where}: field 'timestamp' = {fields[0]!r} is missing")
            if not activity.is_integer() or int(activity) not in (PAMAP2_TRANSIENT_ID, *PAMAP2_ACTIVITIES):
                raise DataError(
                    f"{where}: field 'activityID' = {fields[1]!r} is not 0 or one of "
                    f"{sorted(PAMAP2_ACTIVITIES)}"
                )
            rows.append(row)
            line_numbers.append(line_number)
    if not rows:
        raise DataError(f"{path}: file holds no rows")
    table = np.asarray(rows, dtype=np.float64)
    backwards = np.flatnonzero(np.diff(table[:, 0]) <= 0)
    if len(backwards):
        line_number = line_numbers[backwards[0] + 1]
        raise DataError(f"{path}, line {line_number}: field 'timestamp' is not after the previous row's")
    return table


def _activity_runs(activity_ids: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) row ranges with one activityID."""
    breaks = np.flatnonzero(np.diff(activity_ids) != 0) + 1
    bounds = [0, *breaks.tolist(), len(activity_ids)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _column_name(index: int) -> str:
    """Readable name of the 0-based column ``index`` for error messages ("chest gyro y")."""
    if index < 3:
        return ("timestamp", "activityID", "heart rate")[index]
    imu = next(name for name, (first, _) in PAMAP2_IMUS.items() if first <= index < first + 17)
    offset = index - PAMAP2_IMUS[imu][0]
    kinds = ["temperature", *(f"acc16 {a}" for a in "xyz"), *(f"acc6 {a}" for a in "xyz")]
    kinds += [*(f"gyro {a}" for a in "xyz"), *(f"magnetometer {a}" for a in "xyz")]
    kinds += [f"orientation {i}" for i in range(1, 5)]
    return f"{imu} {kinds[offset]}"
