"""What a device does in FedLanHAR, free of Flower: summarise, train locally, recognise, score.

The ClientApp (client/client_app.py) only moves records in and out of these functions. In the default mode the
only thing derived from the device's windows that leaves it is the signal analysis (`common.features`) of its
unlabeled training windows, the model update, and evaluation counts (a confusion matrix over label names).
"""

from __future__ import annotations

import numpy as np

from common.data import WindowSet
from common.features import analyze_windows
from common.sensor_encoder import SensorEncoder, encode_windows
from common.train import SensorTrainConfig, train_sensor_epochs
from common.zero_shot import LabelBank


def window_summaries(train: WindowSet) -> np.ndarray:
    """[N, F] analysis features of the unlabeled training windows: what is sent for interpretation."""
    return analyze_windows(train.X, sampling_rate=train.sampling_rate, has_gyro=train.has_gyro)


def train_locally(
    model: SensorEncoder,
    train: WindowSet,
    targets: np.ndarray,
    config: SensorTrainConfig,
    proximal_mu: float = 0.0,
) -> dict[str, float]:
    """Stage 2 on the device: align sensor embeddings with the server-sent text-space targets Z."""
    if len(targets) != len(train):
        raise ValueError(f"targets: {len(targets)} rows for {len(train)} training windows (stale targets?)")
    return train_sensor_epochs(model, train.X, targets, config, proximal_mu=proximal_mu)


def evaluate_locally(
    model: SensorEncoder, held_out: WindowSet, bank: LabelBank, new_labels: list[str]
) -> dict[str, object]:
    """Recognise held-out windows against the label bank; return counts the server can add up exactly.

    Only windows whose true activity is in the bank are scored (the others cannot be named yet). Returns the
    confusion matrix over `bank.labels` (rows truth, columns prediction), and for windows of `new_labels`
    how many were right when choosing among the new labels only, and how many within the top 3.
    """
    truth = np.array(held_out.labels())
    scored = np.isin(truth, bank.labels)
    embeddings = encode_windows(model, held_out.X[scored])
    truth_index = np.array([bank.labels.index(t) for t in truth[scored]], dtype=np.int64)
    scores = bank.scores(embeddings)  # [n, C] cosine similarities
    predicted = scores.argmax(axis=1)
    n_labels = len(bank.labels)
    confusion = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(confusion, (truth_index, predicted), 1)

    new_columns = np.array(
        [bank.labels.index(label) for label in new_labels if label in bank.labels], dtype=np.int64
    )
    is_new = np.isin(truth_index, new_columns)
    new_correct = new_top3 = 0
    if is_new.any() and len(new_columns):
        new_scores = scores[is_new][:, new_columns]
        truth_new = truth_index[is_new]
        new_correct = int((new_columns[new_scores.argmax(axis=1)] == truth_new).sum())
        top3 = new_columns[np.argsort(-new_scores, axis=1)[:, :3]]
        new_top3 = int((top3 == truth_new[:, None]).any(axis=1).sum())
    return {
        "confusion": confusion,
        "num-scored": int(scored.sum()),
        "num-unscored": int((~scored).sum()),
        "new-windows": int(is_new.sum()),
        "new-correct-among-new": new_correct,
        "new-top3-among-new": new_top3,
    }
