"""A LanHAR variant against the default at seeds 0 and 1: the two-seed table of the results README and the
check of the decision rule that every such comparison here uses.

Centring (one run per seed scores both ways; the centred scoring is each record's `other_scoring`, which only
files written before zero-shot centring was removed after `04ff026` carry):
    python docs/results/two_seeds.py centring docs/results/zero-shot-centring/results.json \
        docs/results/zero-shot-centring/seed1/results.json
A training switch (two runs per seed: the default's results.json, then the variant's):
    python docs/results/two_seeds.py runs NAME DEFAULT_SEED0 VARIANT_SEED0 DEFAULT_SEED1 VARIANT_SEED1
(NAME heads the variant's columns.) The rule's first step alone, seed 0 (a variant that loses the seed-0
mean is off, and seed 1 is not run):
    python docs/results/two_seeds.py seed0 NAME DEFAULT_SEED0 VARIANT_SEED0
A variant that won the seed-0 mean but lost a lot on some pair: seed 1 of just those pairs can end it (if
their two-seed change is below -3 points, the rule says off whatever the other pairs do):
    python docs/results/two_seeds.py deciding-pairs NAME DEFAULT_SEED0 VARIANT_SEED0 \
        DEFAULT_SEED1 VARIANT_SEED1
(the seed-1 files hold only the deciding pairs).

The rule (fixed before each variant's runs, in its config): the variant wins the 12-pair accuracy mean at
both seeds, and on the two-seed mean of each pair it loses no more than 3 points.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MAX_PAIR_LOSS = 0.03
Rows = dict[str, dict[str, float]]  # pair -> accuracy, macro_f1, new (new-activity accuracy)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def lanhar_runs(path: Path) -> list[dict]:
    return [run for run in json.loads(path.read_text())["runs"] if run["method"] == "lanhar"]


def scored_as_run(path: Path) -> Rows:
    return {
        run["pair"]: {
            "accuracy": run["accuracy"],
            "macro_f1": run["macro_f1"],
            "new": run["new_activities"]["accuracy_among_new"],
        }
        for run in lanhar_runs(path)
    }


def scored_centred(path: Path) -> Rows:
    """The same embeddings scored the other way (every LanHAR record's `other_scoring`)."""
    if not all(run.get("other_scoring") for run in lanhar_runs(path)):
        sys.exit(
            f"{path}: a LanHAR record has no `other_scoring`. Zero-shot centring was removed from the code "
            "after 04ff026, so results.json files written since carry no centred scoring; compare the files "
            "of docs/results/zero-shot-centring/, or check out 04ff026 to score new runs both ways."
        )
    return {
        run["pair"]: {
            "accuracy": run["other_scoring"]["accuracy"],
            "macro_f1": run["other_scoring"]["macro_f1"],
            "new": run["other_scoring"]["new_activity_accuracy"],
        }
        for run in lanhar_runs(path)
    }


def rule_adopts(mean_changes: list[float], pair_changes: list[float]) -> bool:
    """The rule: the variant wins the 12-pair mean at every seed (mean_changes, one per seed) and loses no
    more than MAX_PAIR_LOSS on any pair's mean over the seeds (pair_changes, one per pair)."""
    return all(change > 0 for change in mean_changes) and min(pair_changes) >= -MAX_PAIR_LOSS


def print_pair_rows(seeds: list[tuple[Rows, Rows]], pairs: list[str], variant_name: str) -> dict[str, float]:
    """Prints the table's header and one row per pair (accuracy at each seed and the two-seed change);
    returns each pair's two-seed change."""
    print(f"| pair | seed 0: default | {variant_name} | seed 1: default | {variant_name} | two-seed change |")
    print("|---|---|---|---|---|---|")
    changes = {}
    for pair in pairs:
        cells = [f"{rows[pair]['accuracy']:.3f}" for pair_rows in seeds for rows in pair_rows]
        changes[pair] = mean(
            [variant[pair]["accuracy"] - default[pair]["accuracy"] for default, variant in seeds]
        )
        print(f"| {pair} | {' | '.join(cells)} | {100 * changes[pair]:+.1f} |")
    return changes


def compare(seeds: list[tuple[Rows, Rows]], variant_name: str) -> None:
    """seeds: (default, variant) rows at seed 0, then at seed 1. Prints the table and the rule's verdict."""
    pairs = list(seeds[0][0])
    changes = print_pair_rows(seeds, pairs, variant_name)
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("new", "new activities")):
        cells = [f"{mean([r[key] for r in rows.values()]):.3f}" for pair_rows in seeds for rows in pair_rows]
        print(f"| mean {name} | {' | '.join(cells)} | |")
    mean_changes = [
        mean([variant[p]["accuracy"] - default[p]["accuracy"] for p in pairs]) for default, variant in seeds
    ]
    wins = [change > 0 for change in mean_changes]
    worst_pair = min(changes, key=changes.get)
    adopted = rule_adopts(mean_changes, list(changes.values()))
    print(
        f"\nwins the mean at seed 0 / seed 1: {wins}; largest two-seed loss on a pair: "
        f"{100 * changes[worst_pair]:+.2f} points ({worst_pair}); rule says: {'on' if adopted else 'off'}"
    )


def first_seed(default: Rows, variant: Rows, variant_name: str) -> None:
    """The seed-0 table and whether the variant wins the seed-0 mean (the rule's first step)."""
    print(
        f"| pair | seed 0: default | {variant_name} | change (points) | new act.: default | {variant_name} |"
    )
    print("|---|---|---|---|---|---|")
    for pair in default:
        before, after = default[pair], variant[pair]
        change = 100 * (after["accuracy"] - before["accuracy"])
        print(
            f"| {pair} | {before['accuracy']:.3f} | {after['accuracy']:.3f} | {change:+.1f} "
            f"| {before['new']:.3f} | {after['new']:.3f} |"
        )
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("new", "new activities")):
        before, after = (mean([r[key] for r in rows.values()]) for rows in (default, variant))
        print(f"| mean {name} | {before:.3f} | {after:.3f} | {100 * (after - before):+.1f} | | |")
    wins = mean([variant[p]["accuracy"] - default[p]["accuracy"] for p in default]) > 0
    print(
        f"\nwins the mean at seed 0: {wins}; rule says: {'run seed 1' if wins else 'off (seed 1 not needed)'}"
    )


def deciding_pairs(seed0: tuple[Rows, Rows], seed1: tuple[Rows, Rows], variant_name: str) -> None:
    """The two-seed change of the pairs run at seed 1 (a subset), and whether one of them already ends it."""
    changes = print_pair_rows([seed0, seed1], list(seed1[0]), variant_name)
    worst_pair = min(changes, key=changes.get)
    ended = changes[worst_pair] < -MAX_PAIR_LOSS
    verdict = "off, whatever the other pairs do at seed 1" if ended else "run both full seed-1 matrices"
    loss = f"{100 * changes[worst_pair]:+.2f} points ({worst_pair})"
    print(f"\nlargest two-seed loss: {loss}; rule says: {verdict}")


def main(mode: str, *arguments: str) -> None:
    if mode == "centring" and len(arguments) == 2:
        compare([(scored_as_run(Path(f)), scored_centred(Path(f))) for f in arguments], "centred")
    elif mode == "runs" and len(arguments) == 5:
        name, *files = arguments
        rows = [scored_as_run(Path(f)) for f in files]
        compare([(rows[0], rows[1]), (rows[2], rows[3])], name)
    elif mode == "seed0" and len(arguments) == 3:
        name, default, variant = arguments
        first_seed(scored_as_run(Path(default)), scored_as_run(Path(variant)), name)
    elif mode == "deciding-pairs" and len(arguments) == 5:
        name, *files = arguments
        rows = [scored_as_run(Path(f)) for f in files]
        deciding_pairs((rows[0], rows[1]), (rows[2], rows[3]), name)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(*sys.argv[1:])
