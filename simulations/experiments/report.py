"""Writing a protocol's outputs: report.md (Markdown), results.json and PNG figures.

Figures use matplotlib's Figure/Agg directly (no global backend), like common/base/metrics.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from common.base.serialise import jsonable
from simulations.experiments.settings import Experiment, Pair, machine

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The paper's headline (average over its 12 cross-dataset pairs) and its strongest baselines.
PAPER_LANHAR = {"accuracy": 0.774, "macro_f1": 0.731}
PAPER_BEST_BASELINE = {"name": "UniHAR", "accuracy": 0.721, "macro_f1": 0.646}
PAPER_TRANSFORMER = {"accuracy": 0.449, "macro_f1": 0.231}


def print_run(protocol: str, pair_label: str, method: str, record: Mapping[str, Any]) -> None:
    """One progress line per finished (pair, method) run of a protocol."""
    print(
        f"[{protocol}] {pair_label:18s} {method:14s} accuracy {record['accuracy']:.3f}  "
        f"macro-F1 {record['macro_f1']:.3f}  ({record['seconds']:.0f} s)",
        flush=True,
    )


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: numbers rounded, missing values as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def score_or_na(value: float | None) -> str:
    """A score in a progress line or an attack table: three decimals, "n/a" where there is none."""
    return "n/a" if value is None else f"{value:.3f}"


def signed(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.3f}"


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that exist; None when none does."""
    present = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(present)) if present else None


class Report:
    """A Markdown document built top to bottom."""

    def __init__(self, title: str, summary: str) -> None:
        self.lines: list[str] = [f"# {title}", "", summary, ""]

    def section(self, title: str) -> None:
        self.lines += [f"## {title}", ""]

    def paragraph(self, text: str) -> None:
        self.lines += [text, ""]

    def bullets(self, items: Sequence[str]) -> None:
        self.lines += [f"- {item}" for item in items] + [""]

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.lines.append("| " + " | ".join(fmt(cell) for cell in row) + " |")
        self.lines.append("")

    def figure(self, path: Path, caption: str) -> None:
        self.lines += [f"![{caption}]({path.name})", "", f"*{caption}*", ""]

    def code(self, text: str, language: str = "") -> None:
        self.lines += [f"```{language}", text.rstrip(), "```", ""]

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def setup_section(report: Report, experiment: Experiment, settings: Any, extra: Sequence[str] = ()) -> None:
    """Command, budget, seed, data and machine: what a reader needs to rerun the experiment."""
    info = machine()
    report.section("Setup")
    report.bullets(
        [
            f"command: `{experiment.command}`",
            f"budget: `{experiment.budget}`; seed: {getattr(settings, 'seed', 0)}",
            f"data: `{experiment.data_dir}`",
            f"settings file: `{experiment.config_path or 'none (defaults)'}` (copied under Configuration)",
            f"started {experiment.started_at}; python {info['python']}, torch {info['torch']} with "
            f"{info['torch_threads']} thread(s), {info['cpus']} CPU cores",
            *extra,
        ]
    )


def pairs_line(pairs: Sequence[Pair]) -> str:
    """The setup line naming the pairs run."""
    return f"pairs ({len(pairs)}): {', '.join(p.label for p in pairs)}"


def configuration_section(report: Report, experiment: Experiment, settings: Any) -> None:
    """The settings file as given and the settings as resolved (budget table and --pairs applied)."""
    report.section("Configuration")
    report.paragraph("Settings file:")
    report.code(experiment.config_text, "toml")
    report.paragraph(
        "Resolved settings (the CentralConfig of every single run is in results.json, `runs[*].config`):"
    )
    report.code(json.dumps(jsonable(vars(settings)), indent=2), "json")


def write_results(experiment: Experiment, settings: Any, results: dict[str, Any]) -> Path:
    """results.json: settings, machine, per-run records and summary; rewritten after every run."""
    document = {
        "experiment": experiment.name,
        "budget": experiment.budget,
        "seed": getattr(settings, "seed", 0),
        "command": experiment.command,
        "data_dir": str(experiment.data_dir),
        "settings_file": str(experiment.config_path) if experiment.config_path else None,
        "settings_text": experiment.config_text,
        "settings": vars(settings),
        "machine": machine() | {"workers": experiment.workers},
        "started_at": experiment.started_at,
        "seconds": experiment.elapsed(),
        **results,
    }
    path = experiment.out_dir / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jsonable(document), indent=2, allow_nan=False))
    tmp.replace(path)
    return path


def write_report(experiment: Experiment, report: Report) -> Path:
    path = experiment.out_dir / "report.md"
    path.write_text(report.text())
    return path


# ------------------------------------------------------------------------------------------------ figures


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure of `width` x `height` inches on the Agg canvas (no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def grouped_bars(
    path: Path,
    groups: Sequence[str],
    panels: Mapping[str, Mapping[str, Sequence[float | None]]],
    ylabel: str = "score",
    reference_lines: Mapping[str, Mapping[str, float]] | None = None,
    ymax: float | None = 1.0,
) -> Path:
    """One panel per entry of `panels` (title -> series name -> one value per group); bars side by side.

    `reference_lines` (panel title -> label -> value) are dashed horizontal lines; `ymax` None scales the y
    axis to the data.
    """
    figure = new_figure(max(6.0, 0.9 * len(groups) + 3.0), 3.6 * len(panels))
    for row, (title, series) in enumerate(panels.items()):
        axes = figure.add_subplot(len(panels), 1, row + 1)
        width = 0.8 / max(len(series), 1)
        x = np.arange(len(groups))
        for i, (name, values) in enumerate(series.items()):
            heights = [np.nan if v is None else float(v) for v in values]
            axes.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name)
        for j, (name, value) in enumerate((reference_lines or {}).get(title, {}).items()):
            axes.axhline(value, color=f"C{len(series) + j}", linestyle="--", linewidth=1, label=name)
        axes.set_xticks(x, list(groups), rotation=30, ha="right", fontsize=8)
        axes.set_ylim(0.0, ymax)
        axes.set_ylabel(ylabel)
        axes.set_title(title, fontsize=10)
        axes.grid(axis="y", alpha=0.3)
        if row == 0:  # one legend, right of the first panel
            axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def matrix_heatmap(
    path: Path, matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str, label: str
) -> Path:
    """A rows x columns matrix of scores in [0, 1]; NaN cells (e.g. source = target) stay blank."""
    figure = new_figure(1.3 * len(columns) + 2.5, 1.0 * len(rows) + 1.8)
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label=label)
    axes.set_xticks(range(len(columns)), list(columns), rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), list(rows), fontsize=8)
    axes.set_xlabel("target")
    axes.set_ylabel("source")
    for i in range(len(rows)):
        for j in range(len(columns)):
            if np.isfinite(matrix[i, j]):
                colour = "black" if matrix[i, j] > 0.6 else "white"
                axes.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8, color=colour)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
