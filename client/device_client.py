"""What a device does in FedLanHAR, free of Flower: summarise, train locally, recognise, score.

The ClientApp (client/client_app.py) only moves records in and out of these functions. In the default mode the
only thing derived from the device's windows that leaves it is the signal analysis (data/features.py) of its
windows (training windows for the targets, evaluation windows for the text path, never with a label), the
model update, and evaluation counts (confusion matrices over label names, for the sensor encoder and the text
path, and how often the two agree).
"""

from __future__ import annotations

import numpy as np

from common.data.features import analyze_windows
from common.data.label_spaces import client_label_space
from common.data.windows import WindowSet
from common.method.train import SensorTrainConfig, train_sensor_epochs
from common.models.sensor_encoder import SensorEncoder, encode_windows, sensor_input
from common.models.zero_shot import LabelBank


def window_summaries(windows: WindowSet) -> np.ndarray:
    """[N, F] analysis features of windows (never their labels): what is sent for interpretation.

    For the training windows the server answers with the targets Z; for the evaluation windows with their
    text-space embeddings, from which the device scores the text path (see `evaluate_locally`).
    """
    return analyze_windows(windows.X, sampling_rate=windows.sampling_rate, has_gyro=windows.has_gyro)


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
    windows = sensor_input(train.X, train.position, model.config)  # as recorded, or trunk-equivalent
    return train_sensor_epochs(model, windows, targets, config, proximal_mu=proximal_mu)


def evaluate_locally(
    model: SensorEncoder,
    held_out: WindowSet,
    bank: LabelBank,
    new_labels: list[str],
    text_targets: np.ndarray | None = None,
    scoring_labels: list[str] | None = None,
) -> dict[str, object]:
    """Recognise held-out windows against the label bank; return counts the server can add up exactly.

    The device chooses only among the bank's labels its own data has, after the merge its label set calls
    for (common/data/label_spaces.py: a set with one mixed "stairs" class scores upstairs and downstairs
    predictions as "stairs"). Only windows whose true activity can be named are scored. Returns the confusion
    matrix over `scoring_labels` (the server's index space: the bank's labels plus merged names; default the
    bank's labels), rows truth, columns prediction, and for windows of `new_labels` how many were right when
    choosing among the new labels only, and how many within the top 3. The `initial-confusion` counts the
    windows of the other (initial) scoring labels, choosing among those only: the score the central run
    reports for the same activities, before and after a push.

    With `text_targets` (the server's text-space embedding of each held-out window's interpretation, one row
    per window): also the text path's confusion matrix (nearest label to the interpretation's embedding) and
    how many scored windows the sensor encoder and the text path label alike. Only counts leave the device.
    """
    columns, names = client_label_space(bank.labels, held_out.label_names)
    labels = list(scoring_labels) if scoring_labels is not None else list(bank.labels)
    labels += [name for name in dict.fromkeys(names) if name not in labels]  # merged names, e.g. "stairs"
    columns_array = np.array(columns, dtype=np.int64)
    # Index into `labels` of what each candidate bank column is scored as.
    scored_as = np.array([labels.index(name) for name in names], dtype=np.int64)
    truth = np.array(held_out.labels())
    scored = np.isin(truth, names)
    truth_index = np.array([labels.index(t) for t in truth[scored]], dtype=np.int64)
    n_labels = len(labels)
    confusion = np.zeros((n_labels, n_labels), dtype=np.int64)
    scores = np.zeros((int(scored.sum()), len(columns)), dtype=np.float32)
    if len(columns) and scored.any():
        embeddings = encode_windows(model, held_out.X[scored], position=held_out.position)
        scores = bank.scores(embeddings)[:, columns_array]
        np.add.at(confusion, (truth_index, scored_as[scores.argmax(axis=1)]), 1)
    predicted = scored_as[scores.argmax(axis=1)] if len(scores) else np.zeros(0, dtype=np.int64)
    text_path: dict[str, object] = {}
    if text_targets is not None:
        if len(text_targets) != len(held_out):
            raise ValueError(
                f"eval targets: {len(text_targets)} rows for {len(held_out)} evaluation windows (stale?)"
            )
        text_confusion = np.zeros((n_labels, n_labels), dtype=np.int64)
        text_predicted = np.zeros(0, dtype=np.int64)
        if len(scores):
            text_scores = bank.scores(text_targets[scored])[:, columns_array]
            text_predicted = scored_as[text_scores.argmax(axis=1)]
            np.add.at(text_confusion, (truth_index, text_predicted), 1)
        text_path = {
            "text-confusion": text_confusion,
            "agreement": int((text_predicted == predicted).sum()),
        }

    # Candidates (positions in `columns`) that are new labels; a truth is new when its label is.
    new_positions = np.array(
        [i for i, c in enumerate(columns) if bank.labels[c] in new_labels], dtype=np.int64
    )
    is_new = np.isin(truth[scored], new_labels)
    new_correct = new_top3 = 0
    if is_new.any() and len(new_positions):
        new_scores = scores[is_new][:, new_positions]
        truth_new = truth_index[is_new]
        candidates = scored_as[new_positions]
        new_correct = int((candidates[new_scores.argmax(axis=1)] == truth_new).sum())
        top3 = candidates[np.argsort(-new_scores, axis=1)[:, :3]]
        new_top3 = int((top3 == truth_new[:, None]).any(axis=1).sum())
    initial_labels = [label for label in labels if label not in new_labels]
    initial_positions = np.array(
        [i for i, c in enumerate(columns) if bank.labels[c] not in new_labels], dtype=np.int64
    )
    initial_confusion = np.zeros((len(initial_labels), len(initial_labels)), dtype=np.int64)
    is_initial = ~is_new
    if is_initial.any() and len(initial_positions):
        position = {labels.index(label): i for i, label in enumerate(initial_labels)}
        rows = np.array([position[int(t)] for t in truth_index[is_initial]], dtype=np.int64)
        chosen = scored_as[initial_positions][scores[is_initial][:, initial_positions].argmax(axis=1)]
        np.add.at(initial_confusion, (rows, np.array([position[int(c)] for c in chosen], dtype=np.int64)), 1)
    return {
        "confusion": confusion,
        "initial-confusion": initial_confusion,
        "num-scored": int(scored.sum()),
        "num-unscored": int((~scored).sum()),
        "new-windows": int(is_new.sum()),
        "new-correct-among-new": new_correct,
        "new-top3-among-new": new_top3,
        **text_path,
    }
