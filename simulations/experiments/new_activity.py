"""New-activity recognition (the paper's section 4.3): activities no model was trained on, named by text only.

Per pair, LanHAR and NLS-HAR train on the pair's shared activities (settings.pair_label_space); every other
activity of the target is new, its label embedding from its descriptions (LanHAR) or sentences (NLS-HAR)
alone. Scored on the held-out target users' windows of the new activities: accuracy and top-3 among the new
labels against chance; for LanHAR also among all labels ("full bank"), the text path's accuracy, the two
paths' agreement, and per label both recalls and what the sensor encoder calls that label's windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.data.errors import DataError
from simulations.experiments.methods import METHOD_NAMES, NLS, run_method
from simulations.experiments.report import (
    Report,
    configuration_section,
    grouped_bars,
    mean,
    pairs_line,
    setup_section,
    write_report,
    write_results,
)
from simulations.experiments.sensor_probe import pair_ceilings
from simulations.experiments.settings import (
    Experiment,
    Pair,
    new_activities,
    pair_config,
    pair_label_space,
    parse_pairs,
)


@dataclass
class Settings:
    pairs: tuple[str, ...] = ("all",)
    nls_variant: str = "nls-knowledge"  # the NLS-HAR baseline to compare with ("" = none)
    seed: int = 0
    keep_models: bool = False
    central: dict[str, Any] = field(default_factory=dict)


def run(settings: Settings, experiment: Experiment) -> dict[str, Any]:
    if settings.nls_variant and settings.nls_variant not in NLS:
        raise DataError(f"new-activity nls_variant: '{settings.nls_variant}' unknown; use one of {list(NLS)}")
    methods = ["lanhar"] + ([settings.nls_variant] if settings.nls_variant else [])
    pairs = parse_pairs(settings.pairs)
    # Reporting only, before the runs so a data problem shows before hours of training; the probe's own
    # generator leaves the runs' draws as they were.
    ceilings = pair_ceilings(pairs, experiment, settings.central, settings.seed)
    records: list[dict[str, Any]] = []
    for pair in pairs:
        new = new_activities(pair, experiment.data_dir)
        if not new:
            known = pair_label_space(pair, experiment.data_dir).activities
            raise DataError(f"new-activity: target '{pair.target}' has no activity outside {list(known)}")
        for method in methods:
            config = pair_config(pair, experiment, settings.central, settings.seed)
            out_dir, cache = experiment.run_dir(pair.name, method), experiment.text_space_cache
            record = run_method(
                method, config, experiment.data_dir, out_dir, new, settings.keep_models, cache
            )
            records.append(record | {"pair": pair.label})
            scores = record["new_activities"]
            print(
                f"[new-activity] {pair.label:18s} {method:14s} {len(new)} new: accuracy "
                f"{scores['accuracy_among_new']:.3f} top-3 {scores['top3_among_new']:.3f} "
                f"(chance {scores['chance']:.3f}, {record['seconds']:.0f} s)",
                flush=True,
            )
            write_results(experiment, settings, {"runs": records})

    summary = summarise(records, methods)
    results = {"runs": records, "summary": summary, "single_sensor_ceiling": ceilings}
    write_results(experiment, settings, results)
    write_report(experiment, build_report(experiment, settings, pairs, methods, records, summary, ceilings))
    return results


def summarise(records: list[dict], methods: list[str]) -> dict[str, dict[str, float | None]]:
    """Per method: mean accuracy among the new labels, top-3 and chance over the pairs."""
    return {
        method: {
            key: mean([r["new_activities"][key] for r in records if r["method"] == method])
            for key in ("accuracy_among_new", "top3_among_new", "chance")
        }
        for method in methods
    }


def results_table(
    pairs: list[Pair],
    methods: list[str],
    records: list[dict],
    summary: dict[str, Any],
    ceilings: dict[str, Any] | None = None,
) -> tuple[list[str], list[list]]:
    """Header and rows (a row per pair, then the average): LanHAR, then NLS-HAR if run, against chance.

    With `ceilings` (sensor_probe.pair_ceilings) the last column is the single-sensor ceiling of the pair's
    new-activity accuracy.
    """
    by_pair = {(r["pair"], r["method"]): r for r in records}
    header = ["pair", "new labels", "windows", "chance", "LanHAR acc.", "LanHAR top-3", "LanHAR full bank"]
    header += ["text path acc.", "agreement"]
    if len(methods) > 1:
        header += ["NLS-HAR acc.", "NLS-HAR top-3"]
    header += ["LanHAR known-activity acc."]
    scores = ["accuracy_among_new", "top3_among_new", "accuracy_full_bank", "text_path_accuracy_among_new"]
    scores += ["path_agreement"]
    rows = []
    for pair in pairs:
        lanhar = by_pair[(pair.label, "lanhar")]
        new = lanhar["new_activities"]
        row = [pair.label, len(new["labels"]), new["windows"], new["chance"], *(new[key] for key in scores)]
        if len(methods) > 1:
            nls = by_pair[(pair.label, methods[1])]["new_activities"]
            row += [nls["accuracy_among_new"], nls["top3_among_new"]]
        rows.append(row + [lanhar["accuracy"]])
    average = ["average", "", "", summary["lanhar"]["chance"], summary["lanhar"]["accuracy_among_new"]]
    average += [summary["lanhar"]["top3_among_new"], *(mean([r[i] for r in rows]) for i in (6, 7, 8))]
    if len(methods) > 1:
        average += [summary[methods[1]]["accuracy_among_new"], summary[methods[1]]["top3_among_new"]]
    rows.append(average + [mean([r[-1] for r in rows])])
    if ceilings is not None:
        header.append("single-sensor ceiling")
        for row, pair in zip(rows[:-1], pairs, strict=True):
            row.append(_pair_ceiling(ceilings, pair.label).get("accuracy"))
        rows[-1].append(mean([row[-1] for row in rows[:-1]]))
    return header, rows


def _pair_ceiling(ceilings: dict[str, Any], pair_label: str) -> dict[str, Any]:
    """The pair's probe, or {} for a pair it was not run on (a pair without new labels)."""
    return ceilings["pairs"].get(pair_label, {})


def per_label_table(
    pairs: list[Pair], records: list[dict], ceilings: dict[str, Any] | None = None
) -> tuple[list[str], list[list]]:
    """Header and rows (a row per new label, over the pairs where it is new): what each path names it.

    Recall of the sensor encoder and of the text path among the new labels, their mean over the pairs, and
    the label the sensor encoder names most often for its windows: where the zero-shot step fails, by label.
    With `ceilings` (sensor_probe.pair_ceilings): the single-sensor probe's recall beside them, same pairs.
    """
    asked = {pair.label for pair in pairs}
    recalls: dict[str, dict[str, list[float]]] = {}
    named_as: dict[str, dict[str, int]] = {}  # per true label: how often the sensor encoder named each label
    for record in records:
        if record["method"] != "lanhar" or record["pair"] not in asked:
            continue
        new = record["new_activities"]
        labels = new["labels"]
        confusion = new["sensor"]["confusion"]
        for i, label in enumerate(labels):
            entry = recalls.setdefault(label, {"sensor": [], "text": [], "ceiling": []})
            entry["sensor"].append(new["sensor"]["per_class"][label]["recall"])
            entry["text"].append(new["text_path"]["per_class"][label]["recall"])
            if ceilings is not None:
                entry["ceiling"].append(_pair_ceiling(ceilings, record["pair"]).get("recall", {}).get(label))
            counts = named_as.setdefault(label, {})
            for j, other in enumerate(labels):
                counts[other] = counts.get(other, 0) + int(confusion[i][j])
    header = ["new label", "pairs", "sensor encoder recall", "text path recall"]
    header += ["single-sensor ceiling"] if ceilings is not None else []
    rows = [
        [
            label,
            len(entry["sensor"]),
            mean(entry["sensor"]),
            mean(entry["text"]),
            *([mean(entry["ceiling"])] if ceilings is not None else []),
            max(named_as[label], key=named_as[label].get),
        ]
        for label, entry in recalls.items()
    ]
    return header + ["most often named (sensor)"], rows


def per_label_section(
    report: Report, pairs: list[Pair], records: list[dict], ceilings: dict[str, Any] | None = None
) -> None:
    report.paragraph("Per new label, mean over the pairs where it is new:")
    report.table(*per_label_table(pairs, records, ceilings))
    if ceilings is not None:
        report.paragraph(CEILING_NOTE)


# Below each table with the ceiling: what it is and is not (simulations/experiments/sensor_probe.py).
CEILING_NOTE = (
    "Single-sensor ceiling: a supervised probe on the target alone (gradient-boosted trees on the window's "
    "signal analysis and the segment's inclination from the wearer's walking posture), trained with the "
    "labels of the target users that are not held out and scored on the same held-out windows, among the "
    "same new labels: its recall per label, its accuracy per pair. What one sensor at that placement can "
    "tell apart, estimated from below; it reads target labels, so it is reported only and never used by "
    "the method (results.json: `single_sensor_ceiling`). Compare accuracies: a method that names one label "
    "for many windows of other labels raises that label's recall, above the probe's if need be."
)


def build_report(
    experiment: Experiment,
    settings: Settings,
    pairs: list[Pair],
    methods: list[str],
    records: list[dict],
    summary: dict[str, Any],
    ceilings: dict[str, Any] | None = None,
) -> Report:
    report = Report(
        "New-activity recognition",
        "Models trained on the activities a pair shares must name the target's other activities, given only "
        "their label descriptions (LanHAR) or activity sentences (NLS-HAR). Scored on the held-out target "
        "users' windows of those activities, choosing among the new labels.",
    )
    method_names = ", ".join(METHOD_NAMES[m] for m in methods)
    setup_section(report, experiment, settings, [pairs_line(pairs), f"methods: {method_names}"])
    by_pair = {(r["pair"], r["method"]): r for r in records}
    new_labels = {p: by_pair[(p.label, "lanhar")]["new_activities"]["labels"] for p in pairs}
    report.section("Results")
    report.table(*results_table(pairs, methods, records, summary, ceilings))
    per_target = (f"{p.target}: {', '.join(new_labels[p])}" for p in {p.target: p for p in pairs}.values())
    report.paragraph("New labels per target: " + "; ".join(per_target))
    per_label_section(report, pairs, records, ceilings)

    report.section("Figures")
    groups = [p.label for p in pairs]
    panels = {}
    for key, title in (("accuracy_among_new", "accuracy among new labels"), ("top3_among_new", "top-3")):
        series = {"chance": [by_pair[(g, "lanhar")]["new_activities"]["chance"] for g in groups]}
        if key == "top3_among_new":  # chance of the truth being among 3 picks of n labels
            series["chance"] = [min(1.0, 3 * c) for c in series["chance"]]
        for method in methods:
            series[METHOD_NAMES[method]] = [by_pair[(g, method)]["new_activities"][key] for g in groups]
        panels[title] = series
    figure = grouped_bars(experiment.out_dir / "new_activity_scores.png", groups, panels)
    report.figure(figure, "New-activity accuracy and top-3 per pair, against chance.")

    report.section("Notes")
    few = sorted({p.target for p in pairs if len(new_labels[p]) <= 3})
    notes = [f"{', '.join(few)}: at most 3 new labels, so top-3 is trivially 1."] if few else []
    notes += [
        "Label descriptions come from configs/label_knowledge.toml (the rules interpreter's label texts); "
        "labels without an entry get template descriptions.",
        f"The whole experiment took {experiment.elapsed():.0f} s; seconds per run in results.json.",
    ]
    report.bullets(notes)
    configuration_section(report, experiment, settings)
    return report
