"""Shoaib et al., "Fusion of smartphone motion sensors for physical activity recognition" (Sensors 14, 2014).

Format, from the data set description of the University of Twente's Pervasive Systems group
(https://www.utwente.nl/en/eemcs/ps/research/dataset/) and the paper, section 3:
- Participant_<n>.csv for 10 participants, each carrying five Samsung Galaxy S II phones at once (left and
  right jeans pocket, belt clip towards the right leg, right upper arm, right wrist), sampled at 50 Hz.
- Comma-separated with TWO header rows. Row 1 names the position at the first column of its block:
  Left_pocket, Right_pocket, Wrist, Upper_arm, Belt. Row 2 names the columns of every block of 14:
  time_stamp, Ax, Ay, Az (acc, m/s^2, incl. gravity), Lx, Ly, Lz (linear acc), Gx, Gy, Gz (gyro, rad/s),
  Mx, My, Mz (magnetometer, uT), then one spare column; the LAST column of a row is the activity label.
- Activities walking, standing, jogging, sitting, biking, upstairs, downstairs, in this order per
  participant; some files spell upstairs "upsatirs", read here as upstairs.

The rows of a file are consecutive 50 Hz samples. A recording is a run of rows with one label; a time stamp
that jumps forward by more than SHOAIB_MAX_GAP_STEPS typical steps also starts a new one (the time stamp's
unit is not documented, so the gap is measured in steps of the file's own median step).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.data.archives import WindowCollector
from common.data.errors import DataError
from common.data.labels import normalise
from common.data.paper_archives._shared import find_folder, parse_number
from common.data.windows import MODEL_RATE_HZ, WindowSet, resample_signal

SHOAIB_RATE_HZ = 50.0
SHOAIB_ACTIVITIES = ("walking", "standing", "jogging", "sitting", "biking", "upstairs", "downstairs")
SHOAIB_LABEL_TYPOS = {"upsatirs": "upstairs"}
# Header-row-1 name -> the position's name in WindowSet.position and in data set names (shoaib_<key>).
SHOAIB_POSITIONS = {
    "left pocket": "left trouser pocket",
    "right pocket": "right trouser pocket",
    "wrist": "right wrist",
    "upper arm": "right upper arm",
    "belt": "belt",
}
SHOAIB_BLOCK_COLUMNS = ("time_stamp", "Ax", "Ay", "Az", "Lx", "Ly", "Lz", "Gx", "Gy", "Gz", "Mx", "My", "Mz")
_READ_COLUMNS = ("Ax", "Ay", "Az", "Gx", "Gy", "Gz")
SHOAIB_MAX_GAP_STEPS = 25.0  # half a second at 50 Hz
_PARTICIPANT_FILE = re.compile(r"Participant_(\d+)\.csv$")


def find_shoaib_root(directory: Path) -> Path | None:
    return find_folder(directory, lambda folder: any(folder.glob("Participant_*.csv")))


def shoaib_position(position: str) -> str:
    """The header name ("left pocket") of a position given as "leftpocket", "Left_pocket", "left pocket"."""
    key = normalise(position).replace(" ", "")
    for name in SHOAIB_POSITIONS:
        if name.replace(" ", "") == key:
            return name
    raise DataError(f"read_shoaib: position {position!r} unknown, expected one of {list(SHOAIB_POSITIONS)}")


def read_shoaib(
    directory: str | Path, name: str = "shoaib_rightpocket", position: str = "right pocket"
) -> WindowSet:
    """One body position of the Shoaib 2014 files -> 20 Hz windows of the seven activities."""
    directory = Path(directory)
    position = shoaib_position(position)
    root = find_shoaib_root(directory)
    if root is None:
        raise DataError(f"{directory}: no Shoaib Participant_<n>.csv files found")
    collector = WindowCollector(SHOAIB_ACTIVITIES)
    participants = sorted(
        (int(match.group(1)), path)
        for path in root.iterdir()
        if (match := _PARTICIPANT_FILE.match(path.name))
    )
    for participant, path in participants:
        times, values, labels = _read_participant(path, position)
        for start, end in _recordings(times, labels):
            stream = resample_signal(values[start:end], SHOAIB_RATE_HZ, MODEL_RATE_HZ)
            collector.add(stream, labels[start], participant)
    return collector.build(root, name, SHOAIB_POSITIONS[position], device="samsung galaxy s2")


def _read_participant(path: Path, position: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(time stamps [n], acc + gyro [n, 6], labels [n]) of one position in one Participant file."""
    with open(path, encoding="utf-8") as handle:
        positions = [normalise(field) for field in handle.readline().rstrip("\r\n").split(",")]
        columns = [field.strip() for field in handle.readline().rstrip("\r\n").split(",")]
        if position not in positions:
            found = [p for p in positions if p]
            raise DataError(f"{path}, line 1: no {position!r} block in the position row (found {found})")
        first = positions.index(position)
        for offset, expected in enumerate(SHOAIB_BLOCK_COLUMNS):
            actual = columns[first + offset] if first + offset < len(columns) else "<none>"
            if actual.lower() != expected.lower():
                raise DataError(
                    f"{path}, line 2: column {first + offset + 1} of the {position!r} block is {actual!r}, "
                    f"expected {expected!r} (block layout {list(SHOAIB_BLOCK_COLUMNS)})"
                )
        read = [first + SHOAIB_BLOCK_COLUMNS.index(column) for column in _READ_COLUMNS]
        times, values, labels = [], [], []
        for line_number, line in enumerate(handle, start=3):
            fields = line.rstrip("\r\n").split(",")
            if not any(field.strip() for field in fields):  # blank or only commas: spreadsheet padding
                continue
            where = f"{path}, line {line_number}"
            if len(fields) != len(columns):
                raise DataError(f"{where}: expected {len(columns)} comma-separated fields, got {len(fields)}")
            label = fields[-1].strip().lower()
            label = SHOAIB_LABEL_TYPOS.get(label, label)
            if label not in SHOAIB_ACTIVITIES:
                raise DataError(
                    f"{where}: field 'activity' (last column) = {fields[-1]!r} is not one of "
                    f"{list(SHOAIB_ACTIVITIES)}"
                )
            times.append(parse_number(fields[first], where, f"{position} time_stamp"))
            values.append([parse_number(fields[i], where, f"{position} {columns[i]}") for i in read])
            labels.append(label)
    if not labels:
        raise DataError(f"{path}: file holds no data rows after the two header rows")
    return np.asarray(times), np.asarray(values, dtype=np.float64), labels


def _recordings(times: np.ndarray, labels: list[str]) -> list[tuple[int, int]]:
    """[start, end) row ranges of one label without a forward jump of the time stamp (see module doc)."""
    steps = np.diff(times)
    positive = steps[steps > 0]
    typical = float(np.median(positive)) if len(positive) else 0.0
    breaks = [
        row
        for row in range(1, len(labels))
        if labels[row] != labels[row - 1] or (typical > 0 and steps[row - 1] > SHOAIB_MAX_GAP_STEPS * typical)
    ]
    bounds = [0, *breaks, len(labels)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))
