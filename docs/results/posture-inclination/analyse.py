"""What the gravity frame throws away: a still window's inclination from its wearer's walking posture.

The sensor encoder and the rules interpreter read each window through quantities that no rotation of the
device changes, so a still window of sitting, standing or lying reads the same. `walking_frame`
(CentralConfig.walking_frame) turns each user's windows so that the user's walking posture, found without
labels, is the +z axis; tilt_z is then the body segment's inclination, which the rules interpreter words in
three bins (rules.INCLINATION_BINS: upright < 30 deg <= tilted < 60 deg <= horizontal).

This table shows, per data set and label, the inclination of the quiet windows (|acc| std below the rules
interpreter's QUIET_AMPLITUDE) and how the interpreter words it. Labels are read only to tabulate; nothing
of the method is chosen from it (the bins were fixed before the first run).

    python docs/results/posture-inclination/analyse.py --data-dir ../shared/data \
        --out docs/results/posture-inclination
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from common.data.features import FEATURE_INDEX, analyze_windows
from common.data.loading import load_dataset
from common.language.prompts import SENSOR_VOCABULARY
from common.language.rules import INCLINATION_BINS, QUIET_AMPLITUDE, rhythmic_movement
from common.method.lanhar import to_walking_frame

DATASETS = ("uci", "wisdm_phone", "dsads_torso", "dsads_rightleg")
PHRASES = SENSOR_VOCABULARY["body inclination"]
MIN_ROWS_SHOWN = 20  # a label that is rarely quiet says nothing about its posture


def analyse(name: str, data_dir: Path) -> dict:
    windows = to_walking_frame(load_dataset(name, data_dir))
    features = analyze_windows(windows.X, windows.sampling_rate, windows.has_gyro)
    inclination = features[:, FEATURE_INDEX["tilt_z"]].astype(np.float64)
    worded = np.searchsorted(np.asarray(INCLINATION_BINS), inclination, side="right")
    quiet = features[:, FEATURE_INDEX["acc_mag_std"]] < QUIET_AMPLITUDE
    labels = {}
    for index, label in enumerate(windows.label_names):
        rows = quiet & (windows.y == index)
        if rows.sum() == 0:
            continue
        labels[label] = {
            "quiet_windows": int(rows.sum()),
            "median_deg": round(float(np.median(inclination[rows])), 1),
            "quartiles_deg": [round(float(np.percentile(inclination[rows], q)), 1) for q in (25, 75)],
            "worded": {
                phrase: round(float(np.mean(worded[rows] == b)), 3) for b, phrase in enumerate(PHRASES)
            },
        }
    return {
        "position": windows.position,
        "windows": len(windows),
        "users": int(len(np.unique(windows.user))),
        "rhythmic_windows": int(rhythmic_movement(features).sum()),
        "quiet_labels": labels,
    }


def report(results: dict) -> str:
    lines = [
        "| data set (position) | label | quiet windows | median deg | quartiles | worded "
        + " / ".join(f"'{p.split(',')[0]}'" for p in PHRASES)
        + " |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in results["datasets"].items():
        for label, row in result["quiet_labels"].items():
            if row["quiet_windows"] < MIN_ROWS_SHOWN:
                continue
            shares = " / ".join(f"{row['worded'][phrase]:.2f}" for phrase in PHRASES)
            quartiles = f"{row['quartiles_deg'][0]:.1f}-{row['quartiles_deg'][1]:.1f}"
            lines.append(
                f"| {name} ({result['position']}) | {label} | {row['quiet_windows']} "
                f"| {row['median_deg']:.1f} | {quartiles} | {shares} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    results = {
        "command": "python docs/results/posture-inclination/analyse.py --data-dir ../shared/data --out ...",
        "commit": commit.strip(),
        "config": {
            "datasets": list(DATASETS),
            "inclination_bins_deg": list(INCLINATION_BINS),
            "quiet_below_acc_mag_std": QUIET_AMPLITUDE,
            "reference": "per user: densest gravity direction of rules.rhythmic_movement windows (no labels)",
        },
        "datasets": {name: analyse(name, args.data_dir) for name in DATASETS},
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report(results)
    (args.out / "table.md").write_text(table)
    print(table, end="")
    print(f"{results['seconds']} s")


if __name__ == "__main__":
    main()
