"""classification_metrics against hand-computed values; plots are written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.base.metrics import classification_metrics, plot_confusion, plot_curves

LABELS = ["walking", "running", "sitting", "lying"]
CATEGORY = {"walking": "locomotion", "running": "locomotion", "sitting": "static", "lying": "static"}


def test_accuracy_macro_f1_category_accuracy_and_confusion() -> None:
    truth = ["walking", "walking", "running", "sitting", "sitting", "sitting"]
    predicted = ["walking", "running", "running", "sitting", "lying", "walking"]
    result = classification_metrics(truth, predicted, LABELS, CATEGORY.__getitem__)
    assert result["n"] == 6
    assert result["accuracy"] == pytest.approx(3 / 6)
    # Per present class F1: walking P=1/2 R=1/2 -> 1/2; running P=1/2 R=1 -> 2/3; sitting P=1 R=1/3 -> 1/2.
    assert result["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    # Same category: w/w, w/r, r/r, s/s, s/l are right; s/w is not.
    assert result["category_accuracy"] == pytest.approx(5 / 6)
    assert result["labels_present"] == ["walking", "running", "sitting"]
    assert result["confusion"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]]
    assert result["per_class"]["sitting"] == {
        "support": 3,
        "predicted": 1,
        "correct": 1,
        "precision": 1.0,
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(0.5),
    }


def test_indices_into_label_names_are_accepted() -> None:
    by_name = classification_metrics(["walking", "lying"], ["running", "lying"], LABELS, CATEGORY.__getitem__)
    by_index = classification_metrics(np.array([0, 3]), np.array([1, 3]), LABELS, CATEGORY.__getitem__)
    assert by_name["accuracy"] == by_index["accuracy"] == 0.5
    assert by_name["confusion"] == by_index["confusion"]
    assert by_name["category_accuracy"] == 1.0


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="not in label_names: \\['jumping'\\]"):
        classification_metrics(["jumping"], ["walking"], LABELS, CATEGORY.__getitem__)
    with pytest.raises(ValueError, match="2 entries but y_pred has 1"):
        classification_metrics(["walking", "lying"], ["walking"], LABELS, CATEGORY.__getitem__)
    with pytest.raises(ValueError, match="indices outside"):
        classification_metrics(np.array([4]), np.array([0]), LABELS, CATEGORY.__getitem__)


def test_plots_are_written(tmp_path: Path) -> None:
    confusion = np.array([[3, 1, 0, 0], [0, 2, 0, 0], [1, 0, 4, 0], [0, 0, 0, 0]])
    path = plot_confusion(confusion, LABELS, tmp_path / "plots" / "confusion.png")
    assert path.is_file() and path.stat().st_size > 1000
    curves = {"accuracy": [0.2, 0.5, None, 0.7], "new_activity_accuracy": [None, None, None, None]}
    path = plot_curves(curves, tmp_path / "curves.png", new_labels_round=3)
    assert path.is_file() and path.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"must be \[3, 3\]"):
        plot_confusion(confusion, LABELS[:3], tmp_path / "bad.png")
