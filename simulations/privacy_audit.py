"""What an honest-but-curious server can learn from what it receives (issue #36, point 3): the attacks.

Small, pure functions; `simulations/experiments/privacy_audit.py` runs them on a real federation.

- Activity inference per window: a classifier trained on the server's own labeled source (its analysis
  features, which the server computes itself from its raw source windows), applied to a client's uploaded
  analysis features. Scored by accuracy and macro-F1 against a uniform random guess.
- Activity mix per client: the histogram of the activities inferred from a client's uploads against the true
  histogram of its windows, by total variation distance, against the distance of a uniform guess.
- Membership inference against a sensor encoder: a window scores the cosine similarity of its embedding to a
  reference (its pseudo-target, or the nearest label embedding); members (windows a training client held)
  should score higher than non-members. Scored by the ROC AUC (0.5: the score tells nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from common.data.windows import WindowSet


def train_activity_classifier(features: np.ndarray, labels: Sequence[str], seed: int = 0) -> Pipeline:
    """The server's per-window attack model: standardised analysis features -> logistic regression.

    Trained only on windows whose labels the server holds (its source), never on a client's windows.
    """
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    return classifier.fit(np.asarray(features, dtype=np.float64), np.asarray(labels))


def infer_activities(classifier: Pipeline, features: np.ndarray) -> list[str]:
    """The activity the attack names for each uploaded feature row."""
    if len(features) == 0:
        return []
    return [str(label) for label in classifier.predict(np.asarray(features, dtype=np.float64))]


def inference_scores(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy and macro-F1 (over `labels`) of per-window guesses; n = the windows scored."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels for {len(predicted)} guesses")
    if len(truth) == 0:
        return {"accuracy": None, "macro_f1": None, "n": 0}
    truth_array, predicted_array = np.asarray(truth), np.asarray(predicted)
    macro_f1 = f1_score(truth_array, predicted_array, labels=list(labels), average="macro", zero_division=0)
    return {
        "accuracy": float(np.mean(truth_array == predicted_array)),
        "macro_f1": float(macro_f1),
        "n": len(truth),
    }


def chance_scores(truth: Sequence[str], labels: Sequence[str], seed: int = 0) -> dict:
    """The scores of a uniform random guess among `labels` on the same windows: what knowing nothing gets."""
    rng = np.random.default_rng(seed)
    guesses = [labels[i] for i in rng.integers(0, len(labels), size=len(truth))]
    return inference_scores(truth, guesses, labels)


def activity_histogram(activities: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """The share of each of `labels` among `activities` (all zeros when there is none)."""
    counts = np.array([sum(1 for a in activities if a == label) for label in labels], dtype=np.float64)
    return counts / counts.sum() if counts.sum() else counts


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance of two histograms over the same labels: 0 equal, 1 disjoint."""
    return float(0.5 * np.abs(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum())


def mix_errors(
    true_activities: Sequence[Sequence[str]],
    inferred_activities: Sequence[Sequence[str]],
    labels: Sequence[str],
) -> dict:
    """Per client (one list of activities each): the distance of the inferred activity histogram from the
    true one, and of a uniform histogram from the true one; means over the clients and the per-client lists.
    A client's inferred activities may be per window or, in local interpretation, one per distinct text."""
    if len(true_activities) != len(inferred_activities):
        raise ValueError(f"{len(true_activities)} true mixes for {len(inferred_activities)} inferred ones")
    uniform = np.full(len(labels), 1.0 / len(labels))
    inferred, guessed = [], []
    for truth, guess in zip(true_activities, inferred_activities, strict=True):
        true_histogram = activity_histogram(truth, labels)
        inferred.append(total_variation(true_histogram, activity_histogram(guess, labels)))
        guessed.append(total_variation(true_histogram, uniform))
    return {
        "tvd": float(np.mean(inferred)) if inferred else None,
        "tvd_uniform": float(np.mean(guessed)) if guessed else None,
        "clients": len(inferred),
        "tvd_per_client": inferred,
    }


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def target_similarity(embeddings: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of each window's embedding to its own (pseudo-)target."""
    if embeddings.shape != targets.shape:
        raise ValueError(f"embeddings {list(embeddings.shape)} and targets {list(targets.shape)} differ")
    return np.sum(_unit_rows(embeddings) * _unit_rows(targets), axis=1)


def nearest_label_similarity(embeddings: np.ndarray, label_embeddings: np.ndarray) -> np.ndarray:
    """Each window's cosine similarity to the label embedding nearest to it."""
    return (_unit_rows(embeddings) @ _unit_rows(label_embeddings).T).max(axis=1)


def membership_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC of "higher score = member": 1 separates them perfectly, 0.5 is a coin."""
    if len(member_scores) == 0 or len(nonmember_scores) == 0:
        raise ValueError("membership: needs at least one member and one non-member score")
    truth = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    return float(roc_auc_score(truth, np.r_[member_scores, nonmember_scores]))


def window_truth(X: np.ndarray, reference: WindowSet) -> list[str]:
    """The true activity of each window of X, looked up by content in the labeled `reference` it was taken
    from (a client's training windows are unlabeled; the audit, not the server, knows their labels)."""
    names = reference.labels()
    by_content = {window.tobytes(): names[i] for i, window in enumerate(reference.X)}
    missing = sum(1 for window in X if window.tobytes() not in by_content)
    if missing:
        raise ValueError(f"window truth: {missing} of {len(X)} windows are not in '{reference.name}'")
    return [by_content[window.tobytes()] for window in X]
