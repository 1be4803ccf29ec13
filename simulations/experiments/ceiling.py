"""The single-sensor ceiling of the new-activity score, alone (issue #38): `fedlanhar experiment ceiling`.

The probe of sensor_probe.py on every pair, for a seed, without training anything of the method: for matrices
run before the ceiling existed, or for a seed not run yet. It writes the ceiling per pair and per new label;
given a matrix's results.json it uses that run's split and shows the matrix's new-activity tables with the
ceiling beside LanHAR's sensor encoder and text path.

    fedlanhar experiment ceiling --data-dir ../shared/data --out runs/ceiling       # seed: settings file
    python -m simulations.experiments.ceiling --data-dir ../shared/data --seed 1 --out runs/ceiling-seed1
    python -m simulations.experiments.ceiling --data-dir ../shared/data --matrix runs/matrix/results.json \\
        --out runs/matrix-ceiling     # that matrix's split, and its new-activity tables with the ceiling
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simulations.central import BUDGETS
from simulations.experiments import new_activity
from simulations.experiments.report import (
    Report,
    configuration_section,
    mean,
    setup_section,
    write_report,
    write_results,
)
from simulations.experiments.sensor_probe import pair_ceilings
from simulations.experiments.settings import Experiment, parse_pairs


@dataclass
class Settings:
    pairs: tuple[str, ...] = ("all",)
    seed: int = 0  # the seed of the runs whose held-out users are scored
    central: dict[str, Any] = field(default_factory=dict)  # as the matrix's [central]: the same split
    # A cross-dataset results.json: its pairs, seed, [central] and budget replace the above, and the report
    # shows its new-activity tables with the ceiling beside (for a matrix run before the ceiling existed).
    matrix: str = ""


def pairs_table(ceilings: dict[str, Any]) -> tuple[list[str], list[list]]:
    """A row per pair: how many new labels and windows, chance, and the probe's accuracy; then the mean."""
    rows = [
        [pair, len(c["labels"]), c["windows"], c["training_windows"], 1 / len(c["labels"]), c["accuracy"]]
        for pair, c in ceilings["pairs"].items()
    ]
    rows.append(["mean", "", "", "", mean([r[4] for r in rows]), ceilings["mean_accuracy"]])
    return ["pair", "new labels", "windows", "training windows", "chance", "single-sensor ceiling"], rows


def labels_table(ceilings: dict[str, Any]) -> tuple[list[str], list[list]]:
    """A row per new label: the pairs where it is new and the probe's recall, mean over them."""
    recalls: dict[str, list[float | None]] = {}
    for c in ceilings["pairs"].values():
        for label, recall in c["recall"].items():
            recalls.setdefault(label, []).append(recall)
    rows = [[label, len(values), mean(values)] for label, values in recalls.items()]
    return ["new label", "pairs", "single-sensor ceiling (recall)"], rows


def build_report(
    experiment: Experiment, settings: Settings, ceilings: dict[str, Any], matrix: dict[str, Any] | None
) -> Report:
    report = Report(
        "Single-sensor ceiling of the new-activity score",
        "Per pair, a supervised probe on the target alone: trained on the new-activity windows of the "
        "target users that are not held out, with their labels, scored on the held-out users' windows that "
        "the new-activity score uses. What one sensor at the target's placement can tell apart among the "
        "pair's new labels; a reporting tool, never part of the method "
        "(simulations/experiments/sensor_probe.py).",
    )
    setup_section(report, experiment, settings, [f"probe: `{ceilings['probe']}`"])
    report.section("Results")
    report.table(*pairs_table(ceilings))
    report.paragraph("Per new label, mean over the pairs where it is new:")
    report.table(*labels_table(ceilings))
    if matrix is not None:
        _matrix_tables(report, settings, matrix, ceilings)
    report.section("Notes")
    report.bullets(
        [
            "Features: every column of analyze_windows and the segment's inclination from the wearer's "
            "walking posture (found without labels). The probe reads target labels, which the method never "
            "does: it is a lower bound of what the sensor can tell apart, not a goal the method may tune to.",
            "Per label, a method that names one label for many windows of other labels raises that label's "
            "recall, above the probe's if need be; the accuracy per pair is the figure to compare.",
            f"The whole computation took {experiment.elapsed():.0f} s.",
        ]
    )
    configuration_section(report, experiment, settings)
    return report


def _matrix_tables(
    report: Report, settings: Settings, matrix: dict[str, Any], ceilings: dict[str, Any]
) -> None:
    """The matrix's two new-activity tables, as its report has them, with the ceiling column added."""
    pairs = parse_pairs(settings.pairs)
    records, summary = matrix["runs"], matrix["summary"]["new_activities"]
    report.paragraph(f"The new-activity tables of `{settings.matrix}` with the ceiling beside (LanHAR):")
    report.table(*new_activity.results_table(pairs, ["lanhar"], records, summary, ceilings))
    new_activity.per_label_section(report, pairs, records, ceilings)


def run(settings: Settings, experiment: Experiment) -> dict[str, Any]:
    matrix = None
    if settings.matrix:  # the split of that run: its pairs, seed, [central] and budget
        matrix = json.loads(Path(settings.matrix).read_text())
        used = matrix["settings"]
        settings = replace(settings, pairs=tuple(used["pairs"]), seed=used["seed"], central=used["central"])
        experiment = replace(experiment, budget=matrix["budget"])
    ceilings = pair_ceilings(parse_pairs(settings.pairs), experiment, settings.central, settings.seed)
    results = {"single_sensor_ceiling": ceilings}
    write_results(experiment, settings, results)
    write_report(experiment, build_report(experiment, settings, ceilings, matrix))
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m simulations.experiments.ceiling`: the ceiling for any seed without a settings file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", default="all", help="source:target pairs, comma-separated, or 'all'")
    parser.add_argument("--budget", default="default", choices=BUDGETS, help="the runs' budget preset")
    parser.add_argument(
        "--matrix",
        default="",
        help="a cross-dataset results.json: its split, and its tables with the ceiling",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    experiment = Experiment(
        name="ceiling",
        data_dir=Path(args.data_dir).resolve(),
        budget=args.budget,
        out_dir=Path(args.out).resolve(),
        config_path=None,
        command=shlex.join(["python", "-m", "simulations.experiments.ceiling", *(argv or sys.argv[1:])]),
    )
    experiment.out_dir.mkdir(parents=True, exist_ok=True)
    results = run(Settings(tuple(args.pairs.split(",")), args.seed, matrix=args.matrix), experiment)
    print(f"ceiling: mean {results['single_sensor_ceiling']['mean_accuracy']:.3f}, report in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
