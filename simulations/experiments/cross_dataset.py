"""Cross-dataset recognition (the paper's Table 2): every source->target pair, LanHAR against the baselines.

Per pair, each method trains on the source (LanHAR also on the unlabeled windows of half of the target users)
and is scored on the other half of the target users, in the activities both sets share: walking, upstairs,
downstairs, sitting; pairs where one set has a single "stairs" class (wisdm_phone) use walking, stairs,
sitting (settings.pair_label_space, read from the data). The goal table compares LanHAR's average with the
paper's 0.774 / 0.731 and with the best supervised baseline here. LanHAR's diagnostics set its sensor
encoder beside its text path (rules interpretation -> fine-tuned text encoder -> nearest label) on the same
windows: accuracies, agreement and per-class recall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from simulations.experiments import new_activity
from simulations.experiments.methods import METHOD_NAMES, NLS, SUPERVISED, check_methods, run_method
from simulations.experiments.report import (
    PAPER_BEST_BASELINE,
    PAPER_LANHAR,
    PAPER_TRANSFORMER,
    Report,
    configuration_section,
    fmt,
    grouped_bars,
    matrix_heatmap,
    mean,
    pairs_line,
    print_run,
    setup_section,
    signed,
    write_report,
    write_results,
)
from simulations.experiments.sensor_probe import pair_ceilings
from simulations.experiments.settings import Experiment, Pair, pair_config, parse_pairs, short_name
from simulations.experiments.workers import run_pairs

METRICS = (("accuracy", "Accuracy"), ("macro_f1", "F1"), ("category_accuracy", "Category acc."))
_TEXT_METHODS = ("lanhar", *NLS)  # the methods that can name a label from its text alone


@dataclass
class Settings:
    pairs: tuple[str, ...] = ("all",)
    methods: tuple[str, ...] = ("lanhar", "transformer", "cnn", "nls-knowledge")
    seed: int = 0
    keep_models: bool = False  # keep each LanHAR run's fine-tuned text encoder (~90 MB) in runs/
    # Also score the target's other activities with the same LanHAR and NLS-HAR models (the new-activity
    # protocol at the cost of an evaluation, instead of training every model again).
    score_new_activities: bool = True
    central: dict[str, Any] = field(default_factory=dict)  # CentralConfig fields over the budget preset


def run(settings: Settings, experiment: Experiment) -> dict[str, Any]:
    check_methods(settings.methods, "cross-dataset methods")
    pairs = parse_pairs(settings.pairs)
    new_methods = _new_activity_methods(settings)
    # The single-sensor ceiling, for reporting only: before the runs, so a data problem shows before hours of
    # training; the probe's own generator leaves the runs' draws as they were.
    ceilings = pair_ceilings(pairs, experiment, settings.central, settings.seed) if new_methods else None
    records = run_pairs(
        partial(run_pair, settings, experiment),
        pairs,
        experiment.workers,
        on_progress=lambda done: write_results(experiment, settings, {"runs": done}),
    )

    summary = summarise(records, [p.label for p in pairs], settings.methods)
    results: dict[str, Any] = {"runs": records, "summary": summary}
    if new_methods:
        summary["new_activities"] = new_activity.summarise(records, new_methods)
        results["single_sensor_ceiling"] = ceilings
    write_results(experiment, settings, results)
    write_report(experiment, build_report(experiment, settings, pairs, records, summary, ceilings))
    return results


def run_pair(settings: Settings, experiment: Experiment, pair: Pair) -> list[dict[str, Any]]:
    """Every method of the settings on one pair: a record per method, each naming the pair."""
    new = new_activity.new_activities(pair, experiment.data_dir) if settings.score_new_activities else []
    records = []
    for method in settings.methods:
        config = pair_config(pair, experiment, settings.central, settings.seed)
        record = run_method(
            method,
            config,
            experiment.data_dir,
            experiment.run_dir(pair.name, method),
            new_activities=new if method in _TEXT_METHODS else None,
            keep_models=settings.keep_models,
            text_space_cache=experiment.text_space_cache,
        )
        records.append(record | {"pair": pair.label})
        print_run("cross-dataset", pair.label, method, record)
    return records


def _new_activity_methods(settings: Settings) -> list[str]:
    """LanHAR and the first NLS-HAR variant run, when new activities are scored (the table's columns)."""
    if not settings.score_new_activities or "lanhar" not in settings.methods:
        return []
    return ["lanhar"] + [m for m in settings.methods if m in NLS][:1]


def _score(records: list[dict], pair: str, method: str, key: str) -> float | None:
    for record in records:
        if record["pair"] == pair and record["method"] == method:
            return record[key]
    return None


def summarise(records: list[dict], pair_labels: list[str], methods: tuple[str, ...]) -> dict[str, Any]:
    """Averages per method over all pairs, over the 4-class pairs and over the 3-class (wisdm) pairs."""
    four_class = [r["pair"] for r in records if len(r["labels"]) == 4]
    subsets = {
        "": pair_labels,
        "_4class": [p for p in pair_labels if p in four_class],
        "_3class": [p for p in pair_labels if p not in four_class],
    }
    averages: dict[str, dict[str, float | None]] = {
        method: {
            f"{key}{suffix}": mean([_score(records, p, method, key) for p in labels])
            for key, _ in METRICS
            for suffix, labels in subsets.items()
        }
        for method in methods
    }
    supervised = [m for m in methods if m in SUPERVISED and averages[m]["accuracy"] is not None]
    best = max(supervised, key=lambda m: averages[m]["accuracy"]) if supervised else None
    goal: dict[str, Any] = {"best_supervised": best}
    if "lanhar" in averages and averages["lanhar"]["accuracy"] is not None:
        lanhar = averages["lanhar"]
        headline = ("accuracy", "macro_f1")
        goal["lanhar"] = {key: lanhar[key] for key in headline}
        goal["minus_paper"] = {key: lanhar[key] - PAPER_LANHAR[key] for key in headline}
        if best is not None:
            goal["minus_best_supervised"] = {key: lanhar[key] - averages[best][key] for key in headline}
    summary = {"averages": averages, "goal": goal, "pairs": pair_labels}
    diagnostics = lanhar_diagnostics(records)
    if diagnostics is not None:
        summary["lanhar_diagnostics"] = diagnostics
    return summary


DIAGNOSTICS = (
    ("accuracy", "sensor_accuracy"),
    ("text_path_accuracy", "text_path_accuracy"),
    ("path_agreement", "agreement"),
)


def lanhar_diagnostics(records: list[dict]) -> dict[str, Any] | None:
    """Per pair, the sensor encoder's and the text path's accuracy on the same windows and their agreement,
    and their means over the pairs; None without LanHAR runs."""
    runs = [r for r in records if r["method"] == "lanhar" and "path_agreement" in r]
    if not runs:
        return None
    pairs = {r["pair"]: {name: r[key] for key, name in DIAGNOSTICS} for r in runs}
    return {
        "pairs": pairs,
        "mean": {name: mean([p[name] for p in pairs.values()]) for _, name in DIAGNOSTICS},
    }


def recall_rows(records: list[dict]) -> tuple[list[str], list[list]]:
    """Per-class recall of each LanHAR run's sensor encoder and text path: header and a row per (pair, path).

    Columns are the classes of all pairs in order of first appearance; a class outside a pair's space is "".
    """
    runs = [r for r in records if r["method"] == "lanhar" and "text_path" in r]
    classes = list(dict.fromkeys(label for r in runs for label in r["labels"]))
    rows = []
    for record in runs:
        for path, scores in (("sensor encoder", record), ("text path", record["text_path"])):
            per_class = scores["per_class"]
            recall = [per_class[c]["recall"] if c in per_class else "" for c in classes]
            rows.append([record["pair"], path, *recall, scores["accuracy"]])
    return ["pair", "path", *(f"{c} recall" for c in classes), "accuracy"], rows


def matrix_axes(pairs: list[Pair]) -> list[str]:
    """The data sets of the pairs run, in order of first appearance: the heat map's rows and columns."""
    return list(dict.fromkeys(name for pair in pairs for name in (pair.source, pair.target)))


def build_report(
    experiment: Experiment,
    settings: Settings,
    pairs: list[Pair],
    records: list[dict],
    summary: dict[str, Any],
    ceilings: dict[str, Any] | None = None,
) -> Report:
    """The report; `ceilings` (sensor_probe.pair_ceilings) adds the single-sensor ceiling to the new-activity
    tables."""
    report = Report(
        "Cross-dataset recognition (Table 2 analogue)",
        "Train on a labeled source data set, recognise the activities of another data set recorded with a "
        "different device and body position. All methods are scored on the same windows: the held-out half "
        "of the target users (LanHAR's stage 2 saw the unlabeled windows of the other half only). Pairs "
        "where one set has a single stairs class (wisdm_phone) use 3 classes (walking, stairs = up + down, "
        "sitting), the others the 4 common activities (each restricted to what both sets have).",
    )
    methods = ", ".join(METHOD_NAMES[m] for m in settings.methods)
    setup_section(report, experiment, settings, [pairs_line(pairs), f"methods: {methods}"])
    report.section("Results")
    if "lanhar" in summary["goal"]:
        _goal_table(report, len(pairs), summary["goal"], summary["averages"])
    _per_pair_tables(report, settings, records, [p.label for p in pairs], summary["averages"])
    diagnostics = summary.get("lanhar_diagnostics")
    if diagnostics is not None:
        _diagnostics_section(report, records, diagnostics)

    new_methods = _new_activity_methods(settings)
    if new_methods:
        report.paragraph(
            "New activities, same models: each target's activities outside the pair's label space, named "
            "from their descriptions alone, choosing among the new labels (the new-activity protocol, "
            "`fedlanhar experiment new-activity`, on these runs):"
        )
        report.table(
            *new_activity.results_table(pairs, new_methods, records, summary["new_activities"], ceilings)
        )
        new_activity.per_label_section(report, pairs, records, ceilings)

    _figures_section(report, experiment, settings, pairs, records, summary["averages"])
    _notes_section(report, experiment)
    configuration_section(report, experiment, settings)
    return report


def _goal_table(report: Report, n_pairs: int, goal: dict[str, Any], averages: dict[str, Any]) -> None:
    """LanHAR's average here against the paper's LanHAR and baselines."""

    def row(name: str, scores: dict[str, Any], minus: str = "") -> list:
        differences = [signed(goal[minus][key]) for key in ("accuracy", "macro_f1")] if minus else ["", ""]
        return [name, scores["accuracy"], scores["macro_f1"], *differences]

    report.paragraph(f"**Goal table** (average over the {n_pairs} pair(s) run here, accuracy / macro-F1):")
    rows = [
        row("LanHAR here", goal["lanhar"]),
        row("LanHAR, paper (12 other pairs)", PAPER_LANHAR, "minus_paper"),
    ]
    best = goal["best_supervised"]
    if best is not None:
        name = f"best supervised baseline here ({METHOD_NAMES[best]})"
        rows.append(row(name, averages[best], "minus_best_supervised"))
    rows += [
        row(f"{PAPER_BEST_BASELINE['name']}, paper", PAPER_BEST_BASELINE),
        row("Transformer, paper", PAPER_TRANSFORMER),
    ]
    report.table(["", "accuracy", "macro-F1", "LanHAR minus this (acc.)", "LanHAR minus this (F1)"], rows)


def _per_pair_tables(
    report: Report, settings: Settings, records: list[dict], labels: list[str], averages: dict[str, Any]
) -> None:
    """Every method's scores per pair, the paper's Table 2 layout, and averages by label space."""
    report.paragraph("Per pair (columns source→target), the paper's Table 2 layout:")
    header = ["method", "metric", *labels, "average"]
    rows = []
    for method in settings.methods:
        for key, name in METRICS:
            values = [_score(records, label, method, key) for label in labels]
            rows.append([METHOD_NAMES[method], name, *values, averages[method][key]])
    report.table(header, rows)

    if any(len(r["labels"]) == 3 for r in records) and any(len(r["labels"]) == 4 for r in records):
        report.paragraph("Averages by label space:")
        keys = ("accuracy_4class", "macro_f1_4class", "accuracy_3class", "macro_f1_3class")
        report.table(
            ["method", "acc. 4-class pairs", "F1 4-class pairs", "acc. 3-class pairs", "F1 3-class pairs"],
            [[METHOD_NAMES[m], *(averages[m][key] for key in keys)] for m in settings.methods],
        )


def _figures_section(
    report: Report,
    experiment: Experiment,
    settings: Settings,
    pairs: list[Pair],
    records: list[dict],
    averages: dict[str, Any],
) -> None:
    """Bars per pair and method, and LanHAR's source x target matrix as a heatmap and a table."""
    labels = [p.label for p in pairs]
    report.section("Figures")
    bars = grouped_bars(
        experiment.out_dir / "cross_dataset_scores.png",
        [*labels, "average"],
        {
            title: {
                METHOD_NAMES[m]: [*(_score(records, p, m, key) for p in labels), averages[m][key]]
                for m in settings.methods
            }
            for key, title in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"))
        },
        reference_lines={
            "accuracy": {"LanHAR, paper average": PAPER_LANHAR["accuracy"]},
            "macro-F1": {"LanHAR, paper average": PAPER_LANHAR["macro_f1"]},
        },
    )
    report.figure(bars, "Accuracy and macro-F1 per pair and method (dashed: the paper's LanHAR average).")
    if "lanhar" in settings.methods:
        axes = matrix_axes(pairs)
        matrix = np.full((len(axes), len(axes)), np.nan)
        for record in records:
            if record["method"] == "lanhar":
                matrix[axes.index(record["source"]), axes.index(record["target"])] = record["accuracy"]
        names = [short_name(d) for d in axes]
        heatmap = matrix_heatmap(
            experiment.out_dir / "lanhar_matrix.png", matrix, names, names, "LanHAR accuracy", "accuracy"
        )
        report.figure(heatmap, "LanHAR accuracy, source (rows) x target (columns); blank = not run.")
        report.paragraph("The same matrix (rows: source, columns: target; – = not run):")
        report.table(
            ["source \\ target", *axes], [[name, *row] for name, row in zip(axes, matrix, strict=True)]
        )
        report.paragraph("Confusion matrices of every LanHAR run: `runs/<pair>/lanhar/eval/confusion.png`.")


def _notes_section(report: Report, experiment: Experiment) -> None:
    report.section("Notes")
    report.bullets(
        [
            "The paper's 12 pairs are other data sets (HHAR, UCI, Motion, Shoaib); only UCI is shared, so "
            "the comparison with 0.774 / 0.731 is a bar, not a replication.",
            "The interpreter is the offline rules interpreter (`interpreter` in [central]); the paper used "
            "GPT-4.",
            "Seconds per run are in results.json (`runs[*].seconds`); the whole experiment took "
            f"{experiment.elapsed():.0f} s.",
            "Speed, size and memory (interpretation throughput, training time per epoch, latency, "
            "federation at 10/100/1000 clients) are measured by `fedlanhar bench`; centralised vs "
            "federated accuracy by `fedlanhar experiment federated`.",
        ]
    )


def _diagnostics_section(report: Report, records: list[dict], diagnostics: dict[str, Any]) -> None:
    """LanHAR's sensor encoder beside its text path, on the same held-out windows."""
    means = diagnostics["mean"]
    report.paragraph(
        "**LanHAR diagnostics**: the sensor encoder beside the text path on the same held-out windows (text "
        "path: the rules interpretation of each window, embedded by the fine-tuned text encoder, nearest "
        "label embedding). Agreement: the fraction of windows on which both predict the same label. Mean "
        f"over the pairs: text-path accuracy {fmt(means['text_path_accuracy'])}, agreement "
        f"{fmt(means['agreement'])}."
    )
    rows = [
        [pair, scores["sensor_accuracy"], scores["text_path_accuracy"], scores["agreement"]]
        for pair, scores in diagnostics["pairs"].items()
    ]
    rows.append(["mean", means["sensor_accuracy"], means["text_path_accuracy"], means["agreement"]])
    report.table(["pair", "sensor-encoder acc.", "text-path acc.", "agreement"], rows)
    report.paragraph(
        "Per-class recall (both confusion matrices, rows = true label, columns = predicted, are in "
        "results.json: `runs[*].confusion` and `runs[*].text_path.confusion`, in `runs[*].labels` order):"
    )
    report.table(*recall_rows(records))
