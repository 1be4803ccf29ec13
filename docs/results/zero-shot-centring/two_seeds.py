"""Zero-shot centring at seeds 0 and 1: the table of the results README and the decision rule's check.

    python docs/results/zero-shot-centring/two_seeds.py docs/results/zero-shot-centring/results.json \
        docs/results/zero-shot-centring/seed1/results.json

Each results.json is a cross-dataset run; every LanHAR record holds the default scoring and, under
`other_scoring`, the centred one of the same embeddings. The rule (fixed before the seed-1 run, see
cross-dataset-seed1.toml): centring wins the 12-pair mean at seed 1 as at seed 0, and on the two-seed mean of
each pair it loses no more than 3 points.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MAX_PAIR_LOSS = 0.03


def lanhar_rows(path: Path) -> dict[str, dict[str, float]]:
    """Per pair: accuracy and new-activity accuracy, default and centred."""
    runs = json.loads(path.read_text())["runs"]
    rows = {}
    for run in runs:
        if run["method"] != "lanhar":
            continue
        other = run["other_scoring"]
        rows[run["pair"]] = {
            "default": run["accuracy"],
            "centred": other["accuracy"],
            "default_f1": run["macro_f1"],
            "centred_f1": other["macro_f1"],
            "new_default": run["new_activities"]["accuracy_among_new"],
            "new_centred": other["new_activity_accuracy"],
        }
    return rows


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main(seed0_file: str, seed1_file: str) -> None:
    seeds = [lanhar_rows(Path(seed0_file)), lanhar_rows(Path(seed1_file))]
    pairs = list(seeds[0])
    print("| pair | seed 0: default | centred | seed 1: default | centred | two-seed change |")
    print("|---|---|---|---|---|---|")
    changes = {}
    for pair in pairs:
        cells = []
        for rows in seeds:
            cells += [f"{rows[pair]['default']:.3f}", f"{rows[pair]['centred']:.3f}"]
        changes[pair] = mean([rows[pair]["centred"] - rows[pair]["default"] for rows in seeds])
        print(f"| {pair} | {' | '.join(cells)} | {100 * changes[pair]:+.1f} |")
    for default_key, centred_key, name in (
        ("default", "centred", "accuracy"),
        ("default_f1", "centred_f1", "macro-F1"),
        ("new_default", "new_centred", "new activities"),
    ):
        cells = []
        for rows in seeds:
            cells += [
                f"{mean([r[default_key] for r in rows.values()]):.3f}",
                f"{mean([r[centred_key] for r in rows.values()]):.3f}",
            ]
        print(f"| mean {name} | {' | '.join(cells)} | |")
    wins = [mean([r["centred"] - r["default"] for r in rows.values()]) > 0 for rows in seeds]
    worst_pair = min(changes, key=changes.get)
    adopted = all(wins) and changes[worst_pair] >= -MAX_PAIR_LOSS
    print(
        f"\nwins the mean at seed 0 / seed 1: {wins}; largest two-seed loss on a pair: "
        f"{100 * changes[worst_pair]:+.2f} points ({worst_pair}); rule says: {'on' if adopted else 'off'}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
