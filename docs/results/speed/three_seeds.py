"""The 128-wide sensor encoder against the 384-wide default over seeds 0-2 (AMD type), and the verdict of
the rule written in narrow-encoder-seed1.toml / -seed2.toml before their runs.

    D=docs/results; S=$D/speed
    python $S/three_seeds.py \
        --default $D/zero-shot-centring/results.json $D/zero-shot-centring/seed1/results.json \
            $D/open-target-pool/seed2-A/results.json,$D/open-target-pool/seed2-B/results.json \
        --narrow $S/narrow-encoder-seed0/results.json $S/narrow-encoder-seed1/results.json \
            $S/narrow-encoder-seed2/results.json

A seed given as several comma-separated files (a matrix run in halves) is their union. Prints the per-pair
table, the per-seed means and the rule's verdict.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ACCURACY_MARGIN = 0.01  # within 1 point of the default's three-seed mean
PAIR_FLOOR = 0.65  # no pair below this at any seed
NEW_ACTIVITY_FLOOR = 0.33  # the floor for the three-seed new-activity mean


def seed_rows(files: str) -> dict[str, dict[str, float]]:
    """pair -> accuracy, macro-F1 and new-activity accuracy of the LanHAR records of one seed's files."""
    rows = {}
    for name in files.split(","):
        for run in json.loads(Path(name).read_text())["runs"]:
            if run["method"] == "lanhar":
                rows[run["pair"]] = {
                    "accuracy": run["accuracy"],
                    "macro_f1": run["macro_f1"],
                    "new": run["new_activities"]["accuracy_among_new"],
                }
    if len(rows) != 12:
        raise SystemExit(f"{files}: expected 12 LanHAR pairs, found {len(rows)}")
    return rows


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def seed_means(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    means = {key: mean([row[key] for row in rows.values()]) for key in ("accuracy", "macro_f1", "new")}
    means["worst"] = min(row["accuracy"] for row in rows.values())
    return means


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--default", nargs=3, required=True, help="the default's results, seeds 0, 1, 2")
    parser.add_argument("--narrow", nargs=3, required=True, help="the 128-wide encoder's results, seeds 0-2")
    args = parser.parse_args()
    default = [seed_rows(files) for files in args.default]
    narrow = [seed_rows(files) for files in args.narrow]
    pairs = list(default[0])
    print("| pair | " + " | ".join(f"seed {s}: 384 | 128" for s in range(3)) + " | mean: 384 | 128 |")
    print("|---|" + "---|---|" * 4)
    for pair in pairs:
        cells = [
            f"{d[pair]['accuracy']:.3f} | {n[pair]['accuracy']:.3f}"
            for d, n in zip(default, narrow, strict=True)
        ]
        means = [mean([rows[pair]["accuracy"] for rows in runs]) for runs in (default, narrow)]
        print(f"| {pair} | " + " | ".join(cells) + f" | {means[0]:.3f} | {means[1]:.3f} |")
    summaries = {
        name: [seed_means(rows) for rows in runs] for name, runs in (("384", default), ("128", narrow))
    }
    print(
        "\n| mean over the 12 pairs | "
        + " | ".join(f"seed {s}: 384 | 128" for s in range(3))
        + " | three seeds: 384 | 128 |"
    )
    print("|---|" + "---|---|" * 4)
    for key, title in (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("new", "new activities"),
        ("worst", "worst pair"),
    ):
        cells = [f"{summaries['384'][s][key]:.3f} | {summaries['128'][s][key]:.3f}" for s in range(3)]
        over = [
            (min if key == "worst" else mean)([seed[key] for seed in summaries[w]]) for w in ("384", "128")
        ]
        print(f"| {title} | " + " | ".join(cells) + f" | {over[0]:.3f} | {over[1]:.3f} |")
    default_mean = mean([seed["accuracy"] for seed in summaries["384"]])
    narrow_mean = mean([seed["accuracy"] for seed in summaries["128"]])
    narrow_new = mean([seed["new"] for seed in summaries["128"]])
    narrow_worst = min(seed["worst"] for seed in summaries["128"])
    checks = {
        f"mean {narrow_mean:.3f} >= {default_mean - ACCURACY_MARGIN:.3f}": narrow_mean
        >= default_mean - ACCURACY_MARGIN,
        f"worst pair {narrow_worst:.3f} >= {PAIR_FLOOR}": narrow_worst >= PAIR_FLOOR,
        f"new activities {narrow_new:.3f} >= {NEW_ACTIVITY_FLOOR}": narrow_new >= NEW_ACTIVITY_FLOOR,
    }
    print()
    for check, holds in checks.items():
        print(f"- {check}: {'holds' if holds else 'fails'}")
    verdict = (
        "the 128-wide encoder becomes the default" if all(checks.values()) else "the 384-wide encoder stays"
    )
    print(f"\nrule says: {verdict}")


if __name__ == "__main__":
    main()
