"""Zero-shot classification by cosine similarity to label prototypes (LanHAR section 3.6).

A `LabelBank` holds one L2-normalised prototype per activity: the mean of the text embeddings of that label's
descriptions, renormalised. A window is assigned to the label whose prototype is most similar to its sensor
embedding. Adding a new activity means adding a row; nothing is retrained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class TextEmbedder(Protocol):
    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


def l2_normalize(matrix: np.ndarray, field: str = "embeddings") -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{field} contains an all-zero row; it has no direction to compare")
    return (matrix / norms).astype(np.float32)


def _labels_json_path(npz_path: Path) -> Path:
    return npz_path.with_suffix(".json")


@dataclass
class LabelBank:
    labels: list[str]
    embeddings: np.ndarray  # float32 [C, D], rows L2-normalised (normalised again here, whatever is passed)

    def __post_init__(self) -> None:
        self.labels = [str(label) for label in self.labels]
        embeddings = np.asarray(self.embeddings)
        if embeddings.ndim != 2:
            raise ValueError(f"LabelBank.embeddings must be [C, D], got shape {list(embeddings.shape)}")
        if embeddings.shape[0] != len(self.labels):
            raise ValueError(
                f"LabelBank has {len(self.labels)} labels but embeddings has {embeddings.shape[0]} rows"
            )
        duplicates = sorted({label for label in self.labels if self.labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"LabelBank labels must be unique; repeated: {duplicates}")
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("LabelBank.embeddings contains NaN or inf")
        embeddings = embeddings.astype(np.float32, copy=False)
        norms = np.linalg.norm(embeddings, axis=1)
        # Renormalise only when needed, so that save/load and subset round trips stay bit-identical.
        if len(embeddings) and np.max(np.abs(norms - 1.0)) > 1e-6:
            embeddings = l2_normalize(embeddings, "LabelBank.embeddings")
        self.embeddings = embeddings

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(f"label {label!r} is not in the bank; known: {self.labels}") from None

    def scores(self, E: np.ndarray) -> np.ndarray:
        """Cosine similarities [N, C] between sensor embeddings E [N, D] (any norm) and the prototypes."""
        E = np.asarray(E, dtype=np.float32)
        if E.ndim != 2 or E.shape[1] != self.dim:
            raise ValueError(f"E must be [N, {self.dim}] to match the label bank, got {list(E.shape)}")
        if len(self.labels) == 0:
            raise ValueError("the label bank is empty")
        if len(E) == 0:
            return np.zeros((0, len(self)), np.float32)
        return l2_normalize(E, "E") @ self.embeddings.T

    def classify(self, E: np.ndarray) -> np.ndarray:
        """Index (int64 [N]) of the most similar label for each row of E."""
        return np.argmax(self.scores(E), axis=1).astype(np.int64)

    def predict(self, E: np.ndarray) -> list[str]:
        """Label names of `classify`."""
        return [self.labels[i] for i in self.classify(E)]

    def top_k(self, E: np.ndarray, k: int) -> np.ndarray:
        """Indices [N, k] of the k most similar labels, best first."""
        k = min(int(k), len(self))
        return np.argsort(-self.scores(E), axis=1, kind="stable")[:, :k].astype(np.int64)

    def with_labels(self, labels: Sequence[str], embeddings: np.ndarray) -> LabelBank:
        """A new bank where these labels are replaced (same position) or appended (in the given order)."""
        labels = [str(label) for label in labels]
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(labels):
            raise ValueError(
                f"need one embedding row per label: {len(labels)} labels, shape {embeddings.shape}"
            )
        if len(self) and embeddings.shape[1] != self.dim:
            raise ValueError(f"new embeddings have dim {embeddings.shape[1]}, the bank has {self.dim}")
        merged_labels = list(self.labels)
        merged = list(self.embeddings)
        for label, row in zip(labels, l2_normalize(embeddings, "embeddings"), strict=True):
            if label in merged_labels:
                merged[merged_labels.index(label)] = row
            else:
                merged_labels.append(label)
                merged.append(row)
        return LabelBank(merged_labels, np.stack(merged).astype(np.float32))

    def subset(self, labels: Sequence[str]) -> LabelBank:
        """A new bank with exactly these labels, in this order."""
        missing = [label for label in labels if label not in self.labels]
        if missing:
            raise KeyError(f"labels not in the bank: {missing}; known: {self.labels}")
        rows = [self.labels.index(label) for label in labels]
        return LabelBank(list(labels), self.embeddings[rows].copy())

    def save(self, path: str | Path) -> Path:
        """Write `<path>.npz` (embeddings, labels) and `<path>.json` (labels, dim) for non-numpy readers."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path, embeddings=self.embeddings.astype(np.float32), labels=np.asarray(self.labels, dtype=str)
        )
        meta = {"labels": self.labels, "dim": self.dim if len(self) else 0, "normalized": True}
        _labels_json_path(path).write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabelBank:
        path = Path(path)
        if not path.is_file() and path.with_name(path.name + ".npz").is_file():
            path = path.with_name(path.name + ".npz")
        with np.load(path, allow_pickle=False) as data:
            for key in ("embeddings", "labels"):
                if key not in data:
                    raise ValueError(f"{path} is not a label bank: missing field {key!r}")
            return cls([str(label) for label in data["labels"]], data["embeddings"].astype(np.float32))


def build_label_bank(encoder: TextEmbedder, descriptions: Mapping[str, Sequence[str]]) -> LabelBank:
    """One prototype per label: mean of its descriptions' normalised embeddings, renormalised."""
    if not descriptions:
        raise ValueError("descriptions is empty: need at least one label with descriptions")
    labels, texts, owners = [], [], []
    for label, label_texts in descriptions.items():
        if isinstance(label_texts, str):
            raise TypeError(f"descriptions[{label!r}] must be a list of strings, not a single string")
        if len(label_texts) == 0:
            raise ValueError(f"descriptions[{label!r}] is empty: every label needs at least one description")
        labels.append(str(label))
        texts.extend(label_texts)
        owners.extend([len(labels) - 1] * len(label_texts))
    embeddings = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    owners = np.asarray(owners)
    prototypes = np.stack([embeddings[owners == i].mean(axis=0) for i in range(len(labels))])
    return LabelBank(labels, prototypes)
