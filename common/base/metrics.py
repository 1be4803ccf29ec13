"""Evaluation numbers and plots: accuracy, macro-F1, category-level accuracy, per-class scores.

Category accuracy (LanHAR section 4.5) counts a prediction as right when it falls in the same category as the
truth (e.g. "jogging" for "running" are both locomotion). Plots use matplotlib's Figure/Agg directly so no
global backend is touched (safe in headless Flower workers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score


def _as_names(values: Sequence[str] | np.ndarray, label_names: list[str], field: str) -> np.ndarray:
    """Label names as a str array; integer inputs are indices into label_names."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{field} must be 1-D, got shape {list(array.shape)}")
    if array.size and np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() >= len(label_names):
            raise ValueError(f"{field} has indices outside [0, {len(label_names)}) of label_names")
        return np.asarray(label_names, dtype=object)[array]
    array = array.astype(object)
    unknown = sorted({str(value) for value in array} - set(label_names))
    if unknown:
        raise ValueError(f"{field} has labels that are not in label_names: {unknown}")
    return array


def classification_metrics(
    y_true: Sequence[str] | np.ndarray,
    y_pred: Sequence[str] | np.ndarray,
    label_names: Sequence[str],
    category_of: Callable[[str], str],
) -> dict:
    """Metrics of predicted vs true labels (names, or indices into label_names).

    Returns accuracy, macro_f1 (over labels present in y_true), category_accuracy, per_class counts and
    scores, confusion (rows truth, columns prediction, label_names order).
    """
    label_names = [str(label) for label in label_names]
    if len(set(label_names)) != len(label_names):
        raise ValueError("label_names must be unique")
    truth = _as_names(y_true, label_names, "y_true")
    predicted = _as_names(y_pred, label_names, "y_pred")
    if len(truth) != len(predicted):
        raise ValueError(f"y_true has {len(truth)} entries but y_pred has {len(predicted)}")
    if len(truth) == 0:
        raise ValueError("y_true is empty: nothing to score")
    index = {label: i for i, label in enumerate(label_names)}
    truth_index = np.array([index[label] for label in truth], dtype=np.int64)
    predicted_index = np.array([index[label] for label in predicted], dtype=np.int64)

    confusion = np.zeros((len(label_names), len(label_names)), dtype=np.int64)
    np.add.at(confusion, (truth_index, predicted_index), 1)
    present = [label for label in label_names if label in set(truth)]
    category_of_label = {label: category_of(label) for label in label_names}
    return {
        "n": int(len(truth)),
        "accuracy": float(np.mean(truth_index == predicted_index)),
        "macro_f1": float(
            f1_score(
                truth.astype(str), predicted.astype(str), labels=present, average="macro", zero_division=0
            )
        ),
        "category_accuracy": float(
            np.mean(
                [category_of_label[t] == category_of_label[p] for t, p in zip(truth, predicted, strict=True)]
            )
        ),
        "labels": label_names,
        "labels_present": present,
        "per_class": _per_class_scores(confusion, label_names),
        "confusion": confusion.tolist(),
    }


def _per_class_scores(confusion: np.ndarray, label_names: list[str]) -> dict[str, dict]:
    """Per label its support, predicted and correct counts, precision, recall and F1 (0 where undefined)."""
    per_class = {}
    for i, label in enumerate(label_names):
        support, correct = int(confusion[i].sum()), int(confusion[i, i])
        predicted_count = int(confusion[:, i].sum())
        precision = correct / predicted_count if predicted_count else 0.0
        recall = correct / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "support": support,
            "predicted": predicted_count,
            "correct": correct,
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    return per_class


def _new_axes(figsize: tuple[float, float]):  # -> (Figure, Axes)
    """A figure with one axes on its own Agg canvas (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure, path: str | Path) -> Path:
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def plot_confusion(
    confusion: np.ndarray | Sequence[Sequence[int]], labels: Sequence[str], path: str | Path
) -> Path:
    """Heat map of a confusion matrix (rows truth); colours are row-normalised, cells show the counts."""
    confusion = np.asarray(confusion, dtype=np.float64)
    labels = [str(label) for label in labels]
    if confusion.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion must be [{len(labels)}, {len(labels)}] for {len(labels)} labels")
    rows = confusion.sum(axis=1, keepdims=True)
    shown = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    size = max(4.0, 0.55 * len(labels) + 2.0)
    figure, axes = _new_axes((size + 1.0, size))
    image = axes.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the row")
    axes.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if confusion[i, j]:
                    colour = "white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black"
                    axes.text(
                        j, i, f"{int(confusion[i, j])}", ha="center", va="center", fontsize=7, color=colour
                    )
    return _save(figure, path)


def plot_curves(
    curves: Mapping[str, Sequence[float | None]],
    path: str | Path,
    xlabel: str = "round",
    ylabel: str = "value",
    title: str | None = None,
    new_labels_round: int | None = None,
) -> Path:
    """Line plot of metrics over rounds 1..n (or epochs); None values are gaps.

    `new_labels_round` draws a vertical marker where new activities were added to the label bank.
    """
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    figure, axes = _new_axes((6.5, 4.0))
    for name, values in curves.items():
        y = np.array([np.nan if value is None else float(value) for value in values], dtype=np.float64)
        if not np.all(np.isnan(y)):
            axes.plot(np.arange(1, len(y) + 1), y, marker="o", markersize=3, label=name)
    if new_labels_round is not None:
        axes.axvline(
            new_labels_round, color="grey", linestyle="--", linewidth=1, label="new activities added"
        )
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    if title:
        axes.set_title(title)
    return _save(figure, path)
