"""LabelBank: normalised prototypes, classification, adding/replacing labels, subsets, saving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.models.zero_shot import LabelBank, build_label_bank


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture()
def bank() -> LabelBank:
    return LabelBank(["walking", "sitting", "upstairs"], np.eye(3, dtype=np.float32) * 5.0)


class FixedEmbedder:
    """encode() looks texts up in a table: lets build_label_bank be checked with exact numbers."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.table[text] for text in texts])


def test_embeddings_are_normalised_on_construction(bank: LabelBank) -> None:
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, atol=1e-6)
    assert bank.embeddings.dtype == np.float32 and bank.dim == 3 and len(bank) == 3


def test_scores_and_classify_use_cosine_similarity(bank: LabelBank) -> None:
    E = np.stack([unit(0.1, 2.0, 0.0), 10 * unit(0.0, 0.2, 1.0), unit(1.0, 0.5, 0.0)])
    scores = bank.scores(E)
    assert scores.shape == (3, 3)
    np.testing.assert_allclose(scores[1], unit(0.0, 0.2, 1.0), atol=1e-6)  # magnitude of E does not matter
    assert bank.classify(E).tolist() == [1, 2, 0]
    assert bank.predict(E) == ["sitting", "upstairs", "walking"]
    assert bank.top_k(E[:1], 2).tolist() == [[1, 0]]


def test_input_errors_name_the_problem(bank: LabelBank) -> None:
    with pytest.raises(ValueError, match=r"E must be \[N, 3\]"):
        bank.scores(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="2 labels but embeddings has 3 rows"):
        LabelBank(["a", "b"], np.eye(3))
    with pytest.raises(ValueError, match="unique"):
        LabelBank(["a", "a"], np.eye(2))
    with pytest.raises(ValueError, match="all-zero row"):
        LabelBank(["a", "b"], np.zeros((2, 3)))
    with pytest.raises(KeyError, match="jumping"):
        bank.index("jumping")


def test_with_labels_replaces_in_place_and_appends_new_ones(bank: LabelBank) -> None:
    updated = bank.with_labels(["sitting", "jumping"], np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    assert updated.labels == ["walking", "sitting", "upstairs", "jumping"]
    np.testing.assert_allclose(updated.embeddings[1], unit(1.0, 1.0, 0.0), atol=1e-6)
    np.testing.assert_allclose(updated.embeddings[3], unit(0.0, 1.0, 1.0), atol=1e-6)
    assert bank.labels == ["walking", "sitting", "upstairs"]  # the original bank is unchanged
    with pytest.raises(ValueError, match="dim 2"):
        bank.with_labels(["x"], np.ones((1, 2)))


def test_subset_keeps_the_requested_order(bank: LabelBank) -> None:
    subset = bank.subset(["upstairs", "walking"])
    assert subset.labels == ["upstairs", "walking"]
    np.testing.assert_allclose(subset.embeddings, np.eye(3)[[2, 0]], atol=1e-6)
    with pytest.raises(KeyError, match="cycling"):
        bank.subset(["cycling"])


def test_save_and_load_round_trip(bank: LabelBank, tmp_path: Path) -> None:
    path = bank.save(tmp_path / "bank" / "label_bank.npz")
    assert path.is_file()
    meta = json.loads((tmp_path / "bank" / "label_bank.json").read_text())
    assert meta["labels"] == bank.labels and meta["dim"] == 3
    loaded = LabelBank.load(path)
    assert loaded.labels == bank.labels
    np.testing.assert_array_equal(loaded.embeddings, bank.embeddings)
    assert LabelBank.load(tmp_path / "bank" / "label_bank").labels == bank.labels  # suffix optional
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="missing field 'embeddings'"):
        LabelBank.load(tmp_path / "other.npz")


def test_build_label_bank_averages_normalised_descriptions() -> None:
    table = {
        "walk one": unit(1.0, 0.0, 0.0),
        "walk two": unit(0.0, 1.0, 0.0),
        "sit": unit(0.0, 0.0, 1.0),
    }
    embedder = FixedEmbedder(table)
    bank = build_label_bank(embedder, {"walking": ["walk one", "walk two"], "sitting": ["sit"]})
    assert bank.labels == ["walking", "sitting"]
    np.testing.assert_allclose(bank.embeddings[0], unit(1.0, 1.0, 0.0), atol=1e-6)
    np.testing.assert_allclose(bank.embeddings[1], unit(0.0, 0.0, 1.0), atol=1e-6)
    assert len(embedder.calls) == 1  # one encode call for all descriptions
    with pytest.raises(ValueError, match="descriptions\\['sitting'\\] is empty"):
        build_label_bank(embedder, {"walking": ["walk one"], "sitting": []})
    with pytest.raises(TypeError, match="not a single string"):
        build_label_bank(embedder, {"walking": "walk one"})
