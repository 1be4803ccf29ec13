"""How often the decision rule of two_seeds.py adopts a switch, given the noise measured by A/A comparisons.

An A/A comparison runs the same code twice at the same seed and on the same splits, changing only what should
not matter (the CPU type, the torch thread count). Its pair changes are the null distribution of a variant
comparison: what a pair moves by when the variant does nothing. This script pools them and asks, by
resampling:
  - how far the 12-pair mean and single pairs move with nothing changed;
  - how likely the rule (wins the 12-pair mean at every seed, loses no more than the pair limit on any
    pair's mean over the seeds) is to adopt a variant that truly adds g points on every pair;
  - which pair limit would keep a variant that truly changes nothing from being turned down by the pair
    condition alone more than 10% of the time, at 2, 3 and 5 seeds.

    python docs/results/rule_power.py A1.json B1.json [A2.json B2.json ...]

Each A/B couple is one comparison at one seed, over the pairs both sides ran. A side may join several
results.json files with "+" (runs split over processes, e.g. part1/results.json+part2/results.json). The
simulated variant comparisons have as many pairs as the largest comparison (12 for the matrix).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from two_seeds import MAX_PAIR_LOSS, Rows, mean, rule_adopts, scored_as_run

DRAWS = 20_000
SEED = 0  # of the resampling, fixed so that the printed figures reproduce


def load_side(argument: str) -> Rows:
    rows: Rows = {}
    for file in argument.split("+"):
        rows |= scored_as_run(Path(file))
    return rows


def pair_changes(a: Rows, b: Rows, label: str) -> dict[str, float]:
    """The accuracy change of every pair that both sides ran (a run stopped early covers fewer pairs)."""
    common = [pair for pair in a if pair in b]
    if not common:
        sys.exit(f"{label}: the two sides have no pair in common")
    return {pair: b[pair]["accuracy"] - a[pair]["accuracy"] for pair in common}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def adopted(null_pool: list[float], gain: float, pairs: int, seeds: int, rng: random.Random) -> bool:
    """One simulated variant comparison: every pair at every seed moves by a null draw plus the true gain."""
    changes = [[rng.choice(null_pool) + gain for _ in range(seeds)] for _ in range(pairs)]
    mean_changes = [mean([pair[s] for pair in changes]) for s in range(seeds)]
    return rule_adopts(mean_changes, [mean(pair) for pair in changes])


def worst_pair_mean(null_pool: list[float], pairs: int, seeds: int, rng: random.Random) -> float:
    return min(mean([rng.choice(null_pool) for _ in range(seeds)]) for _ in range(pairs))


def main(files: list[str]) -> None:
    if len(files) < 2 or len(files) % 2:
        sys.exit(__doc__)
    couples = list(zip(files[::2], files[1::2], strict=True))
    comparisons = [pair_changes(load_side(a), load_side(b), f"{a} vs {b}") for a, b in couples]
    print("| A/A comparison | pairs | mean change over its pairs | largest pair loss | largest pair gain |")
    print("|---|---|---|---|---|")
    for (a, b), changes in zip(couples, comparisons, strict=True):
        values = list(changes.values())
        print(
            f"| {Path(a.split('+')[0]).parent} vs {Path(b.split('+')[0]).parent} | {len(values)} "
            f"| {100 * mean(values):+.1f} | {100 * min(values):+.1f} | {100 * max(values):+.1f} |"
        )
    # The sign of an A/A change is arbitrary (which run is called A), so the null is symmetric.
    observed = [change for changes in comparisons for change in changes.values()]
    null_pool = observed + [-change for change in observed]
    pairs = max(len(changes) for changes in comparisons)
    spread = mean([change**2 for change in null_pool]) ** 0.5
    print(
        f"\n{len(observed)} pair changes with nothing changed: root mean square {100 * spread:.1f} points, "
        f"|change| > 3 points in {sum(abs(c) > MAX_PAIR_LOSS for c in observed)} of {len(observed)}"
    )

    rng = random.Random(SEED)
    print(
        f"\nP(the rule adopts a variant that truly adds g points on every pair), {pairs} pairs, "
        f"{DRAWS} draws:"
    )
    print("| g (points) | 2 seeds | 3 seeds | 5 seeds |")
    print("|---|---|---|---|")
    for gain in (0.0, 0.01, 0.02, 0.03, 0.05):
        cells = [
            sum(adopted(null_pool, gain, pairs, seeds, rng) for _ in range(DRAWS)) / DRAWS
            for seeds in (2, 3, 5)
        ]
        print(f"| {100 * gain:+.0f} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")

    print("\nPair limit that a variant changing nothing exceeds on some pair in only 10% of comparisons:")
    print("| seeds | limit (points) | P(a pair loses > 3 points), nothing changed |")
    print("|---|---|---|")
    for seeds in (2, 3, 5):
        worst = [worst_pair_mean(null_pool, pairs, seeds, rng) for _ in range(DRAWS)]
        over = sum(w < -MAX_PAIR_LOSS for w in worst) / DRAWS
        print(f"| {seeds} | {-100 * quantile(worst, 0.10):.1f} | {over:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
