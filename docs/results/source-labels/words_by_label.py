"""How the rules interpreter words level walking and stairs on each placement: the share of each label's
windows that gets each phrase, per category. Labels are read only to tabulate; nothing of the method is
chosen from it. It shows where the words of two activities coincide (the reason for the source-label term,
docs/results/source-labels/cross-dataset-seed0.toml).

    python docs/results/source-labels/words_by_label.py --data-dir ../shared/data \
        --out docs/results/source-labels
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from common.data.features import analyze_windows
from common.data.loading import load_dataset
from common.language.prompts import SENSOR_VOCABULARY, STANDARD_CATEGORIES, SensorContext
from common.language.rules import RulesInterpreter

DATASETS = ("uci", "wisdm_phone", "dsads_torso", "dsads_rightleg")
LABELS = ("walking", "upstairs", "downstairs", "stairs")


def words_by_label(name: str, data_dir: Path) -> dict:
    windows = load_dataset(name, data_dir)
    features = analyze_windows(windows.X, windows.sampling_rate, windows.has_gyro)
    context = SensorContext(windows.sampling_rate, windows.position, name, has_gyro=windows.has_gyro)
    interpreter = RulesInterpreter()
    chosen = interpreter.phrase_indices(features, context)
    result = {}
    for label in LABELS:
        if label not in windows.label_names:
            continue
        rows = windows.y == list(windows.label_names).index(label)
        result[label] = {
            "windows": int(rows.sum()),
            "shares": {
                category: {
                    phrase: round(float(np.mean(chosen[rows, column] == index)), 3)
                    for index, phrase in enumerate(SENSOR_VOCABULARY[category])
                    if np.any(chosen[rows, column] == index)
                }
                for column, category in enumerate(STANDARD_CATEGORIES)
            },
        }
    return {"position": windows.position, "labels": result}


def report(results: dict) -> str:
    lines = []
    for name, result in results["datasets"].items():
        labels = list(result["labels"])
        heading = f"### {name} ({result['position']})"
        lines += [heading, "", "| category | phrase | " + " | ".join(labels) + " |"]
        lines.append("|---|---|" + "---|" * len(labels))
        for category in STANDARD_CATEGORIES:
            for phrase in SENSOR_VOCABULARY[category]:
                shares = [result["labels"][label]["shares"][category].get(phrase, 0.0) for label in labels]
                if max(shares) >= 0.05:
                    cells = " | ".join(f"{share:.2f}" for share in shares)
                    lines.append(f"| {category} | {phrase} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.monotonic()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    results = {
        "command": "python docs/results/source-labels/words_by_label.py --data-dir ../shared/data "
        "--out docs/results/source-labels",
        "commit": commit.strip(),
        "datasets": {name: words_by_label(name, args.data_dir) for name in DATASETS},
    }
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "words.json").write_text(json.dumps(results, indent=1) + "\n")
    header = (
        "# Walking and stairs in the rules interpreter's words\n\n"
        "Share of each label's windows that gets each phrase (shares >= 0.05 shown). "
        f"`{results['command']}`, commit `{results['commit']}`, {results['wall_seconds']} s.\n\n"
    )
    (args.out / "words.md").write_text(header + report(results))
    print(header + report(results))


if __name__ == "__main__":
    main()
