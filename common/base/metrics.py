"""Evaluation numbers and plots: accuracy, macro-F1, category-level accuracy, new-activity accuracy.

Category accuracy (LanHAR section 4.5) counts a prediction as right when it falls in the same category as the
truth (e.g. "jogging" for "running" are both locomotion). Plots use matplotlib's Figure/Agg directly so no
global backend is touched (safe in headless Flower workers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.metrics import f1_score


class HasCategory(Protocol):
    def category(self, label: str) -> str: ...


def _category_function(category_of: Callable[[str], str] | HasCategory) -> Callable[[str], str]:
    if hasattr(category_of, "category"):
        return category_of.category
    if callable(category_of):
        return category_of
    raise TypeError("category_of must be a callable label -> category or an object with .category(label)")


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
    category_of: Callable[[str], str] | HasCategory,
    new_labels: Sequence[str] = (),
    scores: np.ndarray | None = None,
) -> dict:
    """Metrics of predicted vs true labels (names, or indices into label_names).

    Returns accuracy, macro_f1 (over labels present in y_true), category_accuracy, per_class counts and
    scores, confusion (rows truth, columns prediction, label_names order). When `new_labels` are given:
    new_activity_accuracy over windows whose truth is new, and with `scores` ([N, len(label_names)]
    similarities) new_activity_top3 (truth in the 3 best of all labels) plus *_among_new variants that choose
    among the new labels only.
    """
    label_names = [str(label) for label in label_names]
    if len(set(label_names)) != len(label_names):
        raise ValueError("label_names must be unique")
    category = _category_function(category_of)
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
    category_of_label = {label: category(label) for label in label_names}
    result: dict = {
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
    result.update(_new_activity_metrics(truth_index, predicted_index, index, new_labels, scores))
    return result


def _per_class_scores(confusion: np.ndarray, label_names: list[str]) -> dict[str, dict]:
    """Per label its support, predicted and correct counts, precision, recall and F1 (0 where undefined)."""
    per_class = {}
    for i, label in enumerate(label_names):
        support, predicted_count, correct = (
            int(confusion[i].sum()),
            int(confusion[:, i].sum()),
            int(confusion[i, i]),
        )
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


def _new_activity_metrics(
    truth_index: np.ndarray,
    predicted_index: np.ndarray,
    index: dict[str, int],
    new_labels: Sequence[str],
    scores: np.ndarray | None,
) -> dict[str, int | float]:
    """The new_activity_* entries of classification_metrics (none when no new label is given)."""
    new_labels = [str(label) for label in new_labels]
    unknown_new = [label for label in new_labels if label not in index]
    if unknown_new:
        raise ValueError(f"new_labels not in label_names: {unknown_new}")
    result: dict[str, int | float] = {}
    is_new = np.isin(truth_index, [index[label] for label in new_labels])
    if new_labels:
        result["new_activity_windows"] = int(is_new.sum())
    if not is_new.any():
        return result
    result["new_activity_accuracy"] = float(np.mean(truth_index[is_new] == predicted_index[is_new]))
    if scores is None:
        return result
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape != (len(truth_index), len(index)):
        raise ValueError(f"scores must be [{len(truth_index)}, {len(index)}], got {list(scores.shape)}")
    new_truth = truth_index[is_new]
    top3 = np.argsort(-scores[is_new], axis=1, kind="stable")[:, :3]
    result["new_activity_top3"] = float(np.mean((top3 == new_truth[:, None]).any(axis=1)))
    new_columns = np.array([index[label] for label in new_labels], dtype=np.int64)
    new_scores = scores[is_new][:, new_columns]
    ranked = new_columns[np.argsort(-new_scores, axis=1, kind="stable")]
    result["new_activity_accuracy_among_new"] = float(np.mean(ranked[:, 0] == new_truth))
    result["new_activity_top3_among_new"] = float(np.mean((ranked[:, :3] == new_truth[:, None]).any(axis=1)))
    return result


def plot_confusion(
    confusion: np.ndarray | Sequence[Sequence[int]],
    labels: Sequence[str],
    path: str | Path,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Heat map of a confusion matrix (rows truth); colours are row-normalised, cells show the counts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    confusion = np.asarray(confusion, dtype=np.float64)
    labels = [str(label) for label in labels]
    if confusion.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion must be [{len(labels)}, {len(labels)}] for {len(labels)} labels")
    rows = confusion.sum(axis=1, keepdims=True)
    shown = (
        np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0) if normalize else confusion
    )
    size = max(4.0, 0.55 * len(labels) + 2.0)
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(
        image, ax=axes, fraction=0.046, pad=0.04, label="share of the row" if normalize else "count"
    )
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
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def plot_curves(
    curves: Mapping[str, Sequence[float | None]],
    path: str | Path,
    xlabel: str = "round",
    ylabel: str = "value",
    title: str | None = None,
    x: Sequence[float] | None = None,
    new_labels_round: int | None = None,
) -> Path:
    """Line plot of metrics over rounds (or epochs); None values are gaps. x defaults to 1..n.

    `new_labels_round` draws a vertical marker where new activities were added to the label bank.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    figure = Figure(figsize=(6.5, 4.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, values in curves.items():
        y = np.array([np.nan if value is None else float(value) for value in values], dtype=np.float64)
        xs = np.arange(1, len(y) + 1) if x is None else np.asarray(x, dtype=np.float64)
        if len(xs) != len(y):
            raise ValueError(f"curve {name!r} has {len(y)} values but x has {len(xs)}")
        if np.all(np.isnan(y)):
            continue
        axes.plot(xs, y, marker="o", markersize=3, label=name)
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
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
