"""The probe behind the new-activity score's single-sensor ceiling (issue #38): what one sensor tells apart.

A supervised probe, used only for reporting: nothing in the method trains on it, stops on it or chooses by it.
Per pair, on the target data set and restricted to the pair's new labels (the labels the new-activity score
chooses among, settings.new_activities), a classifier is trained on the windows of the target users who
are NOT held out, with their labels, and scored on the held-out users' windows: the same windows as the
new-activity score. The held-out users come from the run's own split (simulations/central.py load_pair, with
the pair's config, seed and budget), never from a second one. Its recall per label is that label's ceiling;
its accuracy over the pair's new-activity windows is the ceiling of the pair's new-activity accuracy.

What the probe sees is what one sensor at the target's placement records: the window's signal analysis (every
column of common/data/features.py analyze_windows, the device-frame ones included) and the body segment's
inclination from its wearer's walking posture (common/data/posture.py, found without labels as
common/method/lanhar.py to_walking_frame finds it; NaN for a wearer without a walking reference).

It is an estimate, and a lower bound of what such a sensor can tell apart: a better classifier or more
training users could separate more. It reads target labels, which the method never may, so it says how far
the score is from what the sensor allows, not what the method should reach.

The classifier is sklearn's HistGradientBoostingClassifier: posture and rhythm separate labels by thresholds
(an inclination band, a cadence band) that a linear model on these features would have to approximate, it
needs no scaling, and it takes a missing inclination as it is. A fixed random_state and no early stopping
make it deterministic; it draws from its own generator, never from numpy's or torch's global state, so
computing it leaves every run of the method unchanged.

The matrix (cross_dataset.py) and the new-activity protocol compute it before their runs and set it beside
their new-activity tables; the `ceiling` protocol (ceiling.py) computes it alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.base.metrics import classification_metrics
from common.data.features import analyze_windows
from common.data.label_spaces import rename_labels
from common.data.loading import load_dataset
from common.data.posture import gravity_directions, walking_references
from common.data.windows import WindowSet
from common.language.rules import rhythmic_movement
from simulations.central import load_pair
from simulations.experiments.report import mean
from simulations.experiments.settings import Experiment, Pair, new_activities, pair_config

PROBE_SEED = 0  # the probe's own random_state: the same probe for every seed of the method
PROBE_ITERATIONS = 100  # boosting rounds; 200 moved no pair's ceiling by more than 0.002 at seed 0
PROBE = (
    f"HistGradientBoostingClassifier(max_iter={PROBE_ITERATIONS}, early_stopping=False, "
    f"random_state={PROBE_SEED}), one thread"
)


def segment_inclination(features: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Each window's angle (deg) between its gravity direction and its wearer's walking posture, [N].

    The tilt from +z that analyze_windows reads after to_walking_frame turns the wearer's walking reference
    onto +z (a rotation keeps angles); NaN for wearers with too few rhythmic windows to have a reference.
    """
    directions = gravity_directions(features)
    references = walking_references(directions, users, rhythmic_movement(features))
    cosines = np.clip(np.sum(directions * references, axis=1), -1.0, 1.0)
    return np.degrees(np.arccos(cosines))


def probe_features(ws: WindowSet) -> np.ndarray:
    """What one sensor records per window, without labels: analyze_windows, then the inclination. [N, F+1]

    Pass every window of a data set: each wearer's walking reference comes from all of the wearer's windows.
    """
    features = analyze_windows(ws.X, sampling_rate=ws.sampling_rate, has_gyro=ws.has_gyro)
    return np.column_stack([features, segment_inclination(features, ws.user)])


def probe_recall(
    features: np.ndarray, y: np.ndarray, train: np.ndarray, scored: np.ndarray, labels: list[str]
) -> dict[str, Any]:
    """Train the probe on the rows `train`, score it on the rows `scored`: accuracy, recall per label and the
    confusion (rows true, columns predicted, in `labels` order). `y` indexes `labels`.

    One thread: the same sums in the same order on any machine, and no fight for the cores with a run.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    classifier = HistGradientBoostingClassifier(
        max_iter=PROBE_ITERATIONS, early_stopping=False, random_state=PROBE_SEED
    )
    with threadpool_limits(limits=1):
        classifier.fit(features[train], y[train])
        predicted = classifier.predict(features[scored])
    scores = classification_metrics(y[scored], predicted, labels, category_of=str)  # categories unused
    recall = {label: s["recall"] if s["support"] else None for label, s in scores["per_class"].items()}
    return {"accuracy": scores["accuracy"], "recall": recall, "confusion": scores["confusion"]}


def pair_ceiling(
    pair: Pair,
    experiment: Experiment,
    central: dict[str, Any],
    seed: int,
    target: tuple[WindowSet, np.ndarray],
    probes: dict[tuple, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The probe on one pair: `target` is the target data set's windows and their `probe_features`.

    `probes` remembers each probe by what it depends on (target, label merge, new labels, held-out users), so
    pairs that share all of it (the same target from two sources) train it once.
    """
    config = pair_config(pair, experiment, central, seed)
    held_out = np.unique(load_pair(config, experiment.data_dir)["target_eval"].user)
    windows, features = target
    windows = rename_labels(windows, config.merge_labels)
    labels = new_activities(pair, experiment.data_dir)
    label_index = np.array([labels.index(n) if n in labels else -1 for n in windows.label_names] + [-1])
    y = label_index[windows.y]  # the new labels' indices; -1: a known label or an unlabeled window
    scored = (y >= 0) & np.isin(windows.user, held_out)
    train = (y >= 0) & ~np.isin(windows.user, held_out)
    key = (pair.target, tuple(sorted(config.merge_labels.items())), tuple(labels), tuple(held_out.tolist()))
    probes = {} if probes is None else probes
    if key not in probes:
        probes[key] = probe_recall(features, y, train, scored, labels)
    return {
        "target": pair.target,
        "labels": labels,
        "windows": int(scored.sum()),
        "training_windows": int(train.sum()),
        "held_out_users": held_out.tolist(),
        "training_users": np.unique(windows.user[train]).tolist(),
        **probes[key],
    }


def pair_ceilings(
    pairs: list[Pair], experiment: Experiment, central: dict[str, Any], seed: int
) -> dict[str, Any]:
    """The probe on every pair with new labels (the target's features computed once per target), and the
    mean of their accuracies. A pair whose target has no label outside the pair's label space has none."""
    targets: dict[str, tuple[WindowSet, np.ndarray]] = {}
    probes: dict[tuple, dict[str, Any]] = {}
    by_pair = {}
    for pair in pairs:
        if not new_activities(pair, experiment.data_dir):
            continue
        if pair.target not in targets:
            windows = load_dataset(pair.target, experiment.data_dir)
            targets[pair.target] = (windows, probe_features(windows))
        by_pair[pair.label] = pair_ceiling(pair, experiment, central, seed, targets[pair.target], probes)
    return {
        "probe": PROBE,
        "pairs": by_pair,
        "mean_accuracy": mean([c["accuracy"] for c in by_pair.values()]),
    }
