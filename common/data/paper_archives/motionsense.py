"""MotionSense (Malekzadeh et al., "Mobile sensor data anonymization", IoTDI 2019), DeviceMotion data.

Format, from the data set's README (https://github.com/mmalekzadeh/motion-sense):
- A_DeviceMotion_data/<activity>_<trial>/sub_<n>.csv: one file per trial and subject (24 subjects), an iPhone
  6s in the front trouser pocket, Core Motion's CMDeviceMotion at 50 Hz.
- A header row names the columns; the first, unnamed column is a row index. The columns read here:
  gravity.x/y/z and userAcceleration.x/y/z in g, rotationRate.x/y/z in rad/s (attitude.* is not used).
- Activities dws (downstairs), ups (upstairs), wlk (walking), jog (jogging), sit (sitting), std (standing);
  trials 1, 2, 11 dws; 3, 4, 12 ups; 7, 8, 15 wlk; 9, 16 jog; 5, 13 sit; 6, 14 std.

Sign convention. Core Motion reports gravity as the vector pointing DOWN in the device frame: a phone lying
flat face-up reads gravity.z = -1 g. Android and the UCI/WISDM/DSADS archives read what the accelerometer
measures, +1 g on the axis pointing UP when still. So the acceleration incl. gravity in this project's
convention is -(userAcceleration + gravity) * 9.80665 m/s^2. Negating the vector does not change the axes:
both platforms use x right, y up the screen, z out of the screen, and counter-clockwise-positive rotation
rates, so rotationRate is used as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.data.archives import WindowCollector
from common.data.errors import DataError
from common.data.paper_archives._shared import csv_rows, find_folder, parse_number
from common.data.windows import GRAVITY, MODEL_RATE_HZ, WindowSet, resample_signal

MOTIONSENSE_RATE_HZ = 50.0
MOTIONSENSE_ACTIVITIES = dict(
    dws="downstairs", ups="upstairs", wlk="walking", jog="jogging", sit="sitting", std="standing"
)
# Read in this order: acc parts (g) for the sum, then the gyro (rad/s).
MOTIONSENSE_COLUMNS = tuple(
    f"{quantity}.{axis}" for quantity in ("userAcceleration", "gravity", "rotationRate") for axis in "xyz"
)
_TRIAL_FOLDER = re.compile(r"(dws|ups|wlk|jog|sit|std)_(\d+)$")
_SUBJECT_FILE = re.compile(r"sub_(\d+)\.csv$")


def find_motionsense_root(directory: Path) -> Path | None:
    def has_trials(folder: Path) -> bool:
        return any(_TRIAL_FOLDER.match(child.name) and child.is_dir() for child in folder.iterdir())

    return find_folder(directory, has_trials)


def read_motionsense(directory: str | Path, name: str = "motionsense") -> WindowSet:
    """MotionSense DeviceMotion trials -> 20 Hz windows; one segment per (trial, subject) file."""
    directory = Path(directory)
    root = find_motionsense_root(directory)
    if root is None:
        raise DataError(f"{directory}: no MotionSense A_DeviceMotion_data/<activity>_<trial>/ folders found")
    collector = WindowCollector(list(MOTIONSENSE_ACTIVITIES.values()))
    trials = sorted(
        (match.group(1), int(match.group(2)), folder)
        for folder in root.iterdir()
        if folder.is_dir() and (match := _TRIAL_FOLDER.match(folder.name))
    )
    for code, _, folder in trials:
        subjects = sorted(
            (int(match.group(1)), path)
            for path in folder.iterdir()
            if (match := _SUBJECT_FILE.match(path.name))
        )
        for subject, path in subjects:
            table = _read_device_motion(path)
            user_acc, gravity, rotation_rate = table[:, 0:3], table[:, 3:6], table[:, 6:9]
            # Core Motion's down-pointing gravity -> Android's convention.
            acc = -(user_acc + gravity) * GRAVITY
            stream = np.concatenate([acc, rotation_rate], axis=1)
            stream = resample_signal(stream, MOTIONSENSE_RATE_HZ, MODEL_RATE_HZ)
            collector.add(stream, MOTIONSENSE_ACTIVITIES[code], subject)
    return collector.build(root, name, position="front trouser pocket", device="iphone 6s")


def _read_device_motion(path: Path) -> np.ndarray:
    """[n, 9] MOTIONSENSE_COLUMNS of one sub_<n>.csv, checked field by field."""
    rows = [
        [parse_number(row[column], where, column) for column in MOTIONSENSE_COLUMNS]
        for where, row in csv_rows(path, MOTIONSENSE_COLUMNS)
    ]
    if not rows:
        raise DataError(f"{path}: file holds no data rows")
    return np.asarray(rows, dtype=np.float64)
