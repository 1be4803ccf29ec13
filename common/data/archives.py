"""Readers for the ORIGINAL public archives of UCI-HAPT, WISDM 2019 and Daily and Sports, into windows.

Each reader takes the directory the official zip was extracted into, checks every file it reads (a malformed
line is a DataError naming the file, the line number and the field), converts to acc m/s^2 incl. gravity and
gyro rad/s, resamples to 20 Hz with an anti-alias filter and cuts non-overlapping 120-sample windows inside
one continuous recording of one activity (a "segment"). Label names are the data set's own activity names in
lowercase; common.data.loading.load_dataset canonicalises them.

- UCI HAPT (id 341): RawData/acc_expXX_userYY.txt (g), gyro_expXX_userYY.txt (rad/s), 50 Hz, labels.txt rows
  "exp user activity start end" (1-based, inclusive sample indices). Activities 1-6 kept, transitions dropped.
- WISDM 2019 (id 507): wisdm-dataset/raw/phone/{accel,gyro}/data_<subject>_{accel,gyro}_phone.txt, lines
  "subject,activity_code,timestamp_ns,x,y,z;" at about 20 Hz, acc in m/s^2.
- Daily and Sports Activities (id 256): data/aXX/pY/sZZ.txt, 125 rows x 45 columns at 25 Hz, five Xsens units
  (T, RA, LA, RL, LL) of 9 columns each (acc m/s^2, gyro rad/s, magnetometer).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.data.errors import DataError
from common.data.windows import GRAVITY, MODEL_RATE_HZ, WINDOW_LENGTH, WindowSet, cut_windows, resample_signal

# ------------------------------------------------------------------------------------------ windowing


class WindowCollector:
    """Windows of many recordings: each add() is one recording (one segment id) of one label and user."""

    def __init__(self, label_names: Sequence[str]) -> None:
        self.label_names = list(label_names)
        self._windows: list[np.ndarray] = []
        self._labels: list[int] = []
        self._users: list[int] = []
        self._segments: list[int] = []

    def add(self, stream: np.ndarray, label: str, user: int) -> int:
        """Cut a [T, 6] stream at MODEL_RATE_HZ into windows; returns how many it gave (the tail is dropped).

        Called once per continuous recording of one activity, so no window spans two recordings or labels.
        """
        windows = cut_windows(stream)
        if len(windows):
            self._windows.append(windows)
            segment = len(self._windows)  # 1, 2, ... one id per recording that gave windows
            self._labels += [self.label_names.index(label)] * len(windows)
            self._users += [user] * len(windows)
            self._segments += [segment] * len(windows)
        return len(windows)

    def build(self, source: Path, name: str, position: str, device: str, missing: str = "") -> WindowSet:
        """The collected windows as one WindowSet; none at all is an error about `source` (what `missing`
        says was not found, by default a recording of a known activity as long as one window)."""
        if not self._windows:
            missing = missing or (
                f"no recording of a known activity lasts a full {WINDOW_LENGTH}-sample window "
                f"({WINDOW_LENGTH / MODEL_RATE_HZ:g} s)"
            )
            raise DataError(f"{source}: {missing}")
        return WindowSet(
            X=np.concatenate(self._windows).astype(np.float32),
            y=np.asarray(self._labels, dtype=np.int64),
            label_names=self.label_names,
            user=np.asarray(self._users, dtype=np.int64),
            segment=np.asarray(self._segments, dtype=np.int64),
            name=name,
            position=position,
            device=device,
        )


# ------------------------------------------------------------------------------------------------- UCI HAPT
HAPT_RATE_HZ = 50.0
# activity_labels.txt ids 1..6; 7..12 are postural transitions (stand to sit, ...) and are not kept.
HAPT_ACTIVITIES = {1: "walking", 2: "upstairs", 3: "downstairs", 4: "sitting", 5: "standing", 6: "lying"}
HAPT_TRANSITION_IDS = range(7, 13)


def find_hapt_root(directory: Path) -> Path | None:
    for candidate in (directory, directory / "RawData", *directory.glob("*/RawData")):
        if (candidate / "labels.txt").is_file() and any(candidate.glob("acc_exp*_user*.txt")):
            return candidate
    return None


def _read_number_table(path: Path, n_columns: int, what: str) -> np.ndarray:
    """A whitespace-separated table of floats [rows, n_columns]; errors name the file, line and column."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_columns:
                raise DataError(
                    f"{path}, line {line_number}: expected {n_columns} {what} columns, got {len(fields)}: "
                    f"{line.strip()[:80]!r}"
                )
            try:
                rows.append([float(value) for value in fields])
            except ValueError as error:
                raise DataError(
                    f"{path}, line {line_number}: {what} value is not a number ({error})"
                ) from error
    if not rows:
        raise DataError(f"{path}: file holds no {what} rows")
    table = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(table).all():
        line_number = int(np.argwhere(~np.isfinite(table))[0, 0]) + 1
        raise DataError(f"{path}, data row {line_number}: {what} value is NaN or infinite")
    return table


def read_uci_hapt(directory: str | Path, name: str = "uci") -> WindowSet:
    """UCI HAPT RawData -> 20 Hz windows of activities 1-6 (acc g -> m/s^2; gyro rad/s)."""
    directory = Path(directory)
    root = find_hapt_root(directory)
    if root is None:
        raise DataError(f"{directory}: no UCI HAPT RawData (labels.txt and acc_expXX_userYY.txt) found")
    labels_path = root / "labels.txt"
    label_rows = _read_number_table(labels_path, 5, "label (exp user activity start end)").astype(np.int64)

    label_names = [HAPT_ACTIVITIES[i] for i in sorted(HAPT_ACTIVITIES)]
    collector = WindowCollector(label_names)
    streams: dict[tuple[int, int], np.ndarray] = {}
    for row_number, (experiment, user, activity_id, start, end) in enumerate(label_rows, start=1):
        where = f"{labels_path}, line {row_number}"
        if activity_id in HAPT_TRANSITION_IDS:
            continue
        if activity_id not in HAPT_ACTIVITIES:
            raise DataError(f"{where}: field 'activity' = {activity_id}, expected 1..12")
        if not 1 <= start <= end:
            raise DataError(f"{where}: fields 'start'/'end' = {start}/{end}, expected 1 <= start <= end")
        key = (int(experiment), int(user))
        if key not in streams:
            streams[key] = _read_hapt_stream(root, *key)
        stream = streams[key]
        n_raw_samples = round(stream.shape[0] * HAPT_RATE_HZ / MODEL_RATE_HZ)
        if end > n_raw_samples:
            raise DataError(
                f"{where}: field 'end' = {end} is beyond the {n_raw_samples} samples of "
                f"experiment {experiment}, user {user}"
            )
        # Samples [start-1, end) at 50 Hz map to [(start-1)*0.4, end*0.4) at 20 Hz; the whole experiment was
        # resampled once so the anti-alias filter sees no artificial edges at label boundaries.
        first = int(np.ceil((start - 1) * MODEL_RATE_HZ / HAPT_RATE_HZ))
        last = int(np.floor(end * MODEL_RATE_HZ / HAPT_RATE_HZ))
        collector.add(stream[first:last], HAPT_ACTIVITIES[activity_id], int(user))
    missing = f"no labelled activity (ids 1-6) lasts a full {WINDOW_LENGTH}-sample window"
    return collector.build(labels_path, name, position="waist", device="samsung_galaxy_s2", missing=missing)


def _read_hapt_stream(root: Path, experiment: int, user: int) -> np.ndarray:
    """One experiment's [T, 6] stream at 20 Hz in m/s^2 and rad/s."""
    acc_path = root / f"acc_exp{experiment:02d}_user{user:02d}.txt"
    gyro_path = root / f"gyro_exp{experiment:02d}_user{user:02d}.txt"
    for path in (acc_path, gyro_path):
        if not path.is_file():
            raise DataError(
                f"{root / 'labels.txt'} refers to experiment {experiment}, user {user} but {path} is missing"
            )
    acc = _read_number_table(acc_path, 3, "acc x/y/z (g)") * GRAVITY
    gyro = _read_number_table(gyro_path, 3, "gyro x/y/z (rad/s)")
    if len(acc) != len(gyro):
        raise DataError(f"{acc_path} has {len(acc)} rows but {gyro_path} has {len(gyro)}; they must match")
    return resample_signal(np.concatenate([acc, gyro], axis=1), HAPT_RATE_HZ, MODEL_RATE_HZ)


# ----------------------------------------------------------------------------------------------- WISDM 2019
WISDM_MAX_GAP_S = 0.5  # a longer pause between two samples ends a continuous run
# Activity codes of activity_key.txt (there is no code N).
WISDM_ACTIVITIES = {
    "A": "walking",
    "B": "jogging",
    "C": "stairs",
    "D": "sitting",
    "E": "standing",
    "F": "typing",
    "G": "brushing teeth",
    "H": "eating soup",
    "I": "eating chips",
    "J": "eating pasta",
    "K": "drinking from cup",
    "L": "eating sandwich",
    "M": "kicking soccer ball",
    "O": "playing catch with tennis ball",
    "P": "dribbling basketball",
    "Q": "writing",
    "R": "clapping",
    "S": "folding clothes",
}
WISDM_POSITIONS = {"phone": "pocket", "watch": "wrist"}


def find_wisdm_root(directory: Path, device: str) -> Path | None:
    for candidate in (
        directory / "wisdm-dataset" / "raw" / device,
        directory / "raw" / device,
        directory / device,
        directory,
    ):
        if (candidate / "accel").is_dir() and (candidate / "gyro").is_dir():
            return candidate
    return None


def _read_wisdm_file(path: Path, subject: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """activity code -> (timestamps ns [n], xyz [n, 3]) of one raw WISDM file, sorted by time."""
    columns: dict[str, tuple[list[int], list[list[float]]]] = {}
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip().rstrip(";")
            if not line:
                continue
            fields = line.split(",")
            where = f"{path}, line {line_number}"
            if len(fields) != 6:
                raise DataError(
                    f"{where}: expected 6 fields 'subject,activity_code,timestamp_ns,x,y,z;', "
                    f"got {len(fields)}"
                )
            try:
                line_subject = int(fields[0])
            except ValueError as error:
                raise DataError(f"{where}: field 'subject' = {fields[0]!r} is not an integer") from error
            if line_subject != subject:
                raise DataError(
                    f"{where}: field 'subject' = {line_subject}, but the file name says {subject}"
                )
            code = fields[1].strip()
            if code not in WISDM_ACTIVITIES:
                raise DataError(
                    f"{where}: field 'activity_code' = {code!r} is not one of {''.join(WISDM_ACTIVITIES)}"
                )
            try:
                timestamp = int(fields[2])
            except ValueError as error:
                raise DataError(f"{where}: field 'timestamp_ns' = {fields[2]!r} is not an integer") from error
            try:
                xyz = [float(value) for value in fields[3:]]
            except ValueError as error:
                raise DataError(f"{where}: field 'x/y/z' is not a number ({error})") from error
            if not all(np.isfinite(xyz)):
                raise DataError(f"{where}: field 'x/y/z' holds NaN or inf: {fields[3:]}")
            times, values = columns.setdefault(code, ([], []))
            times.append(timestamp)
            values.append(xyz)
    return {
        code: sorted_samples(np.asarray(times, dtype=np.int64), np.asarray(values, dtype=np.float64))
        for code, (times, values) in columns.items()
    }


def sorted_samples(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times, values [n, C]) sorted by time, repeated timestamps dropped (the first sample is kept)."""
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    keep = np.concatenate([[True], np.diff(times) > 0])
    return times[keep], values[keep]


def continuous_runs(times_s: np.ndarray, max_gap_s: float = WISDM_MAX_GAP_S) -> list[tuple[float, float]]:
    """[start, end] of the stretches without a pause longer than ``max_gap_s`` (sorted times in s)."""
    breaks = np.flatnonzero(np.diff(times_s) > max_gap_s)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(times_s) - 1]])
    return [(float(times_s[s]), float(times_s[e])) for s, e in zip(starts, ends, strict=True) if e > s]


def intersect_runs(
    first: list[tuple[float, float]], second: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    overlaps = []
    for start_a, end_a in first:
        for start_b, end_b in second:
            start, end = max(start_a, start_b), min(end_a, end_b)
            if end > start:
                overlaps.append((start, end))
    return sorted(overlaps)


def on_grid(times_s: np.ndarray, values: np.ndarray, start: float, end: float, rate_hz: float) -> np.ndarray:
    """[n, C] linear interpolation of irregular samples onto the uniform grid start, start + 1/rate .. end."""
    grid = start + np.arange(int((end - start) * rate_hz) + 1) / rate_hz
    return np.stack([np.interp(grid, times_s, values[:, i]) for i in range(values.shape[1])], axis=1)


def read_wisdm(directory: str | Path, name: str = "wisdm_phone", device: str = "phone") -> WindowSet:
    """WISDM 2019 raw phone (or watch) streams -> 20 Hz windows of the 18 activities.

    Acc and gyro are interpolated onto one 20 Hz grid where both sensors record without a pause of more
    than 0.5 s; each such stretch of one subject and activity is a segment. Subjects without a gyro file
    are skipped with a warning (some copies of the archive lack files).
    """
    directory = Path(directory)
    if device not in WISDM_POSITIONS:
        raise DataError(f"read_wisdm: device {device!r} unknown, expected one of {sorted(WISDM_POSITIONS)}")
    root = find_wisdm_root(directory, device)
    if root is None:
        raise DataError(f"{directory}: no WISDM raw/{device}/accel and raw/{device}/gyro directories found")
    pattern = re.compile(rf"data_(\d+)_accel_{device}\.txt$")
    subjects = sorted(int(m.group(1)) for p in (root / "accel").iterdir() if (m := pattern.match(p.name)))
    if not subjects:
        raise DataError(f"{root / 'accel'}: no data_<subject>_accel_{device}.txt files")

    codes = list(WISDM_ACTIVITIES)
    collector = WindowCollector([WISDM_ACTIVITIES[code] for code in codes])
    skipped = []
    for subject in subjects:
        acc_path = root / "accel" / f"data_{subject}_accel_{device}.txt"
        gyro_path = root / "gyro" / f"data_{subject}_gyro_{device}.txt"
        if not gyro_path.is_file():
            skipped.append(subject)
            continue
        acc_streams = _read_wisdm_file(acc_path, subject)
        gyro_streams = _read_wisdm_file(gyro_path, subject)
        for code in codes:
            if code not in acc_streams or code not in gyro_streams:
                continue
            acc_times, acc = acc_streams[code]
            gyro_times, gyro = gyro_streams[code]
            acc_s, gyro_s = acc_times / 1e9, gyro_times / 1e9
            for start, end in intersect_runs(continuous_runs(acc_s), continuous_runs(gyro_s)):
                parts = [on_grid(t, v, start, end, MODEL_RATE_HZ) for t, v in ((acc_s, acc), (gyro_s, gyro))]
                collector.add(np.concatenate(parts, axis=1), WISDM_ACTIVITIES[code], subject)
    if skipped:
        warnings.warn(f"{root}: skipped subjects without a gyro file: {skipped}", stacklevel=2)
    missing = f"no subject has a {WINDOW_LENGTH / MODEL_RATE_HZ:g} s stretch with accel and gyro"
    return collector.build(root, name, position=WISDM_POSITIONS[device], device=device, missing=missing)


# ---------------------------------------------------------------------------------- Daily and Sports (DSADS)
DSADS_RATE_HZ = 25.0
DSADS_ROWS_PER_FILE = 125  # 5 s at 25 Hz
DSADS_COLUMNS = 45
DSADS_ACTIVITIES = (
    "sitting",
    "standing",
    "lying on back",
    "lying on right side",
    "upstairs",
    "downstairs",
    "standing in elevator",
    "moving around in elevator",
    "walking",
    "walking on treadmill",
    "walking on inclined treadmill",
    "running on treadmill",
    "exercising on stepper",
    "exercising on cross trainer",
    "cycling on exercise bike (horizontal)",
    "cycling on exercise bike (vertical)",
    "rowing",
    "jumping",
    "playing basketball",
)
# Unit order in a row; each unit has 9 columns: x,y,z acc (m/s^2), x,y,z gyro (rad/s), x,y,z magnetometer.
DSADS_UNITS = ("torso", "right arm", "left arm", "right leg", "left leg")
# Other names of the units; a unit's own name may also be written without spaces ("rightleg").
_DSADS_POSITION_ALIASES = dict(
    t="torso", chest="torso", ra="right arm", la="left arm", rl="right leg", ll="left leg"
)


def find_dsads_root(directory: Path) -> Path | None:
    for candidate in (directory / "data", directory):
        if candidate.is_dir() and any(
            re.fullmatch(r"a\d\d", p.name) and p.is_dir() for p in candidate.iterdir()
        ):
            return candidate
    return None


def _dsads_unit(position: str) -> int:
    names = {unit.replace(" ", ""): unit for unit in DSADS_UNITS} | _DSADS_POSITION_ALIASES
    unit = names.get(position.strip().lower().replace("_", "").replace(" ", ""))
    if unit is None:
        raise DataError(f"read_dsads: position {position!r} unknown, expected one of {list(DSADS_UNITS)}")
    return DSADS_UNITS.index(unit)


def _read_dsads_file(path: Path, columns: slice) -> np.ndarray:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.strip().split(",")
            if len(fields) != DSADS_COLUMNS:
                raise DataError(
                    f"{path}, line {line_number}: expected {DSADS_COLUMNS} comma-separated columns "
                    f"(5 units x 9), got {len(fields)}"
                )
            try:
                rows.append([float(value) for value in fields[columns]])
            except ValueError as error:
                raise DataError(
                    f"{path}, line {line_number}: acc/gyro column is not a number ({error})"
                ) from error
    if len(rows) != DSADS_ROWS_PER_FILE:
        raise DataError(f"{path}: expected {DSADS_ROWS_PER_FILE} rows (5 s at 25 Hz), got {len(rows)}")
    table = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(table).all():
        line_number = int(np.argwhere(~np.isfinite(table))[0, 0]) + 1
        raise DataError(f"{path}, line {line_number}: acc/gyro value is NaN or infinite")
    return table


def read_dsads(directory: str | Path, name: str = "dsads_torso", position: str = "torso") -> WindowSet:
    """Daily and Sports Activities -> 20 Hz windows of one unit ("torso" or "right leg", ...).

    The numbered 5-s files sZZ of one activity and subject are consecutive; a run of consecutive numbers is
    concatenated, resampled 25 -> 20 Hz and cut into windows (one segment per run).
    """
    directory = Path(directory)
    root = find_dsads_root(directory)
    if root is None:
        raise DataError(f"{directory}: no DSADS data/aXX/pY/sZZ.txt layout found")
    unit = _dsads_unit(position)
    columns = slice(unit * 9, unit * 9 + 6)  # acc x,y,z then gyro x,y,z of the chosen unit
    file_pattern = re.compile(r"s(\d+)\.txt$")

    collector = WindowCollector(DSADS_ACTIVITIES)
    for activity_index in range(len(DSADS_ACTIVITIES)):
        activity_dir = root / f"a{activity_index + 1:02d}"
        if not activity_dir.is_dir():
            continue
        for subject_dir in sorted(activity_dir.glob("p*")):
            subject = int(subject_dir.name[1:]) if subject_dir.name[1:].isdigit() else None
            if subject is None:
                continue
            numbered = sorted(
                (int(m.group(1)), p) for p in subject_dir.iterdir() if (m := file_pattern.match(p.name))
            )
            for run in _consecutive_runs(numbered):
                stream = np.concatenate([_read_dsads_file(path, columns) for path in run])
                resampled = resample_signal(stream, DSADS_RATE_HZ, MODEL_RATE_HZ)
                collector.add(resampled, DSADS_ACTIVITIES[activity_index], subject)
    missing = f"no aXX/pY directory holds {WINDOW_LENGTH / MODEL_RATE_HZ:g} s of sZZ.txt files"
    return collector.build(root, name, position=DSADS_UNITS[unit], device="xsens mtx", missing=missing)


def _consecutive_runs(numbered: list[tuple[int, Path]]) -> list[list[Path]]:
    runs: list[list[Path]] = []
    previous = None
    for number, path in numbered:
        if previous is None or number != previous + 1:
            runs.append([])
        runs[-1].append(path)
        previous = number
    return runs
