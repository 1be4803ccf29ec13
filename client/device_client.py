"""What a device does in FedLanHAR, free of Flower: summarise, train locally, recognise, score.

The ClientApp (client/client_app.py) only moves records in and out of these functions. In the default mode the
only thing derived from the device's windows that leaves it is the signal analysis (data/features.py) of its
windows (training windows for the targets, evaluation windows for the text path, never with a label), the
model update, and evaluation counts (confusion matrices over label names, for the sensor encoder and the text
path, and how often the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.data.features import analyze_windows
from common.data.label_spaces import client_label_space
from common.data.windows import WindowSet
from common.method.train import SensorTrainConfig, train_sensor_epochs
from common.models.sensor_encoder import SensorEncoder, encode_windows
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
    return train_sensor_epochs(model, train.X, targets, config, proximal_mu=proximal_mu)


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
    space = _scoring_space(bank, held_out, scoring_labels)
    n_labels = len(space.labels)
    confusion = np.zeros((n_labels, n_labels), dtype=np.int64)
    scores = np.zeros((int(space.scored.sum()), len(space.columns)), dtype=np.float32)
    if len(space.columns) and space.scored.any():
        embeddings = encode_windows(model, held_out.X[space.scored])
        scores = bank.scores(embeddings)[:, space.columns]
        np.add.at(confusion, (space.truth_index, space.scored_as[scores.argmax(axis=1)]), 1)
    predicted = space.scored_as[scores.argmax(axis=1)] if len(scores) else np.zeros(0, dtype=np.int64)
    text_path: dict[str, object] = {}
    if text_targets is not None:
        if len(text_targets) != len(held_out):
            raise ValueError(
                f"eval targets: {len(text_targets)} rows for {len(held_out)} evaluation windows (stale?)"
            )
        text_path = _text_path_counts(bank, space, text_targets[space.scored], predicted)
    is_new = np.isin(space.truth, new_labels)  # a truth is new when its label is
    new_correct, new_top3 = _new_label_hits(bank, space, scores, new_labels, is_new)
    return {
        "confusion": confusion,
        "initial-confusion": _initial_confusion(bank, space, scores, new_labels, is_new),
        "num-scored": int(space.scored.sum()),
        "num-unscored": int((~space.scored).sum()),
        "new-windows": int(is_new.sum()),
        "new-correct-among-new": new_correct,
        "new-top3-among-new": new_top3,
        **text_path,
    }


@dataclass
class _ScoringSpace:
    """What a device scores its held-out windows among, and as what (see `evaluate_locally`)."""

    labels: list[str]  # the scoring labels: the server's index space, then merged names (e.g. "stairs")
    columns: np.ndarray  # the bank's columns (label indices) the device chooses among
    scored_as: np.ndarray  # index into `labels` of what each candidate column is scored as
    scored: np.ndarray  # bool per held-out window: its true activity can be named
    truth: np.ndarray  # the true label name of each scored window
    truth_index: np.ndarray  # its index into `labels`


def _scoring_space(bank: LabelBank, held_out: WindowSet, scoring_labels: list[str] | None) -> _ScoringSpace:
    columns, names = client_label_space(bank.labels, held_out.label_names)
    labels = list(scoring_labels) if scoring_labels is not None else list(bank.labels)
    labels += [name for name in dict.fromkeys(names) if name not in labels]  # merged names, e.g. "stairs"
    truth = np.array(held_out.labels())
    scored = np.isin(truth, names)
    return _ScoringSpace(
        labels=labels,
        columns=np.array(columns, dtype=np.int64),
        scored_as=np.array([labels.index(name) for name in names], dtype=np.int64),
        scored=scored,
        truth=truth[scored],
        truth_index=np.array([labels.index(t) for t in truth[scored]], dtype=np.int64),
    )


def _text_path_counts(
    bank: LabelBank, space: _ScoringSpace, text_targets: np.ndarray, predicted: np.ndarray
) -> dict[str, object]:
    """The text path's confusion on the scored windows (`text_targets`: their rows) and how many of them
    it labels as the sensor encoder did (`predicted`)."""
    n_labels = len(space.labels)
    text_confusion = np.zeros((n_labels, n_labels), dtype=np.int64)
    text_predicted = np.zeros(0, dtype=np.int64)
    if len(predicted):
        text_scores = bank.scores(text_targets)[:, space.columns]
        text_predicted = space.scored_as[text_scores.argmax(axis=1)]
        np.add.at(text_confusion, (space.truth_index, text_predicted), 1)
    return {"text-confusion": text_confusion, "agreement": int((text_predicted == predicted).sum())}


def _new_label_hits(
    bank: LabelBank, space: _ScoringSpace, scores: np.ndarray, new_labels: list[str], is_new: np.ndarray
) -> tuple[int, int]:
    """How many windows of new labels (`is_new`) were right, and within the top 3, among the new labels."""
    new_positions = np.array(  # candidates (positions in space.columns) that are new labels
        [i for i, c in enumerate(space.columns) if bank.labels[c] in new_labels], dtype=np.int64
    )
    if not (is_new.any() and len(new_positions)):
        return 0, 0
    new_scores = scores[is_new][:, new_positions]
    truth_new = space.truth_index[is_new]
    candidates = space.scored_as[new_positions]
    new_correct = int((candidates[new_scores.argmax(axis=1)] == truth_new).sum())
    top3 = candidates[np.argsort(-new_scores, axis=1)[:, :3]]
    return new_correct, int((top3 == truth_new[:, None]).any(axis=1).sum())


def _initial_confusion(
    bank: LabelBank, space: _ScoringSpace, scores: np.ndarray, new_labels: list[str], is_new: np.ndarray
) -> np.ndarray:
    """Confusion over the initial (not new) scoring labels of their windows, choosing among those only."""
    initial_labels = [label for label in space.labels if label not in new_labels]
    initial_positions = np.array(
        [i for i, c in enumerate(space.columns) if bank.labels[c] not in new_labels], dtype=np.int64
    )
    initial_confusion = np.zeros((len(initial_labels), len(initial_labels)), dtype=np.int64)
    is_initial = ~is_new
    if is_initial.any() and len(initial_positions):
        position = {space.labels.index(label): i for i, label in enumerate(initial_labels)}
        rows = np.array([position[int(t)] for t in space.truth_index[is_initial]], dtype=np.int64)
        chosen = space.scored_as[initial_positions][scores[is_initial][:, initial_positions].argmax(axis=1)]
        np.add.at(initial_confusion, (rows, np.array([position[int(c)] for c in chosen], dtype=np.int64)), 1)
    return initial_confusion
