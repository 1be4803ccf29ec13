"""Iterative re-generation of low-quality sensor interpretations (LanHAR section 3.3.3).

Idea: interpretations of windows of the same activity should say similar things, so their text embeddings
should form a compact cluster. Answers far from their cluster are likely wrong (hallucinated, or misled by an
unusual window), so they are asked again, and a new answer is kept only if it makes the cluster tighter.

One iteration, for every activity group:
  1. embed the group's current texts and run K-means (`n_clusters` per group, 1 by default);
  2. distance of every window to its assigned centre; the group's mean of these is its intra-cluster distance;
  3. outliers = the k farthest windows among those farther than that mean (windows already asked
     `max_attempts_per_window` times are skipped);
then all outliers are re-asked in one `interpreter.reinterpret` call (their previous answer is part of the
ask), and each new answer is accepted only if its embedding lies closer to the window's centre than the old
one did, which lowers the group's intra-cluster distance (the centres of this iteration held fixed).
The loop stops when the relative change of the mean intra-cluster distance over all windows stays below
`threshold` for `patience` consecutive iterations, when no outlier is left to ask, or at `max_iterations`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans

from common.language.interpreter import Interpreter
from common.language.prompts import SensorContext

EmbedFunction = Callable[[list[str]], np.ndarray]


@dataclass
class RegenerationConfig:
    """Settings of the re-generation loop; the defaults follow the paper where it gives a value."""

    n_clusters: int = 1  # K-means clusters per activity group
    outliers: float = 0.1  # k per group and iteration: an int >= 1 is a count, a float in (0, 1) a fraction
    threshold: float = 0.0005  # relative change of the mean intra-cluster distance counted as "stable"
    patience: int = 2  # consecutive stable iterations before stopping
    max_iterations: int = 5
    max_attempts_per_window: int = 2  # a window is re-asked at most this often over the whole run
    seed: int = 0  # K-means initialisation
    n_init: int = 4  # K-means restarts

    def __post_init__(self) -> None:
        if self.n_clusters < 1:
            raise ValueError(f"RegenerationConfig.n_clusters must be >= 1, got {self.n_clusters}")
        is_count = float(self.outliers).is_integer() and self.outliers >= 1
        if not (is_count or 0 < self.outliers < 1):
            raise ValueError(
                "RegenerationConfig.outliers must be a count >= 1 or a fraction in (0, 1), "
                f"got {self.outliers}"
            )
        if self.threshold < 0:
            raise ValueError(f"RegenerationConfig.threshold must be >= 0, got {self.threshold}")
        for name in ("patience", "max_iterations", "max_attempts_per_window", "n_init"):
            if getattr(self, name) < 1:
                raise ValueError(f"RegenerationConfig.{name} must be >= 1, got {getattr(self, name)}")

    def outliers_for(self, group_size: int) -> int:
        """k for a group of `group_size` windows."""
        if self.outliers >= 1:
            return int(self.outliers)
        return max(1, math.ceil(self.outliers * group_size))


@dataclass
class RegenerationReport:
    """What the loop did."""

    n_windows: int
    fraction_regenerated: float  # windows whose text was replaced by an accepted new answer / n_windows
    fraction_asked: float  # windows re-asked at least once / n_windows
    # mean intra-cluster distance over all windows; [0] = before the first iteration
    mean_distances: list[float]
    asked_per_iteration: list[int] = field(default_factory=list)
    accepted_per_iteration: list[int] = field(default_factory=list)
    attempts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # int [N] re-asks
    replaced: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # bool [N]
    stop_reason: str = ""  # "stable", "max_iterations" or "no_outliers"

    @property
    def iterations(self) -> int:
        return len(self.asked_per_iteration)

    def summary(self) -> dict[str, object]:
        """Plain-type view for logs and JSON."""
        return {
            "n_windows": self.n_windows,
            "fraction_regenerated": self.fraction_regenerated,
            "fraction_asked": self.fraction_asked,
            "iterations": self.iterations,
            "mean_distances": self.mean_distances,
            "asked_per_iteration": self.asked_per_iteration,
            "accepted_per_iteration": self.accepted_per_iteration,
            "stop_reason": self.stop_reason,
        }


class _EmbeddingCache:
    """Embeds each distinct text once; returns L2-normalised rows."""

    def __init__(self, embed: EmbedFunction) -> None:
        self._embed = embed
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            vectors = np.asarray(self._embed(missing), dtype=np.float64)
            if vectors.ndim != 2 or vectors.shape[0] != len(missing):
                raise ValueError(
                    f"embed returned shape {vectors.shape} for {len(missing)} texts; expected [n_texts, dim]"
                )
            if not np.isfinite(vectors).all():
                raise ValueError("embed returned NaN or inf values")
            # The distances below assume unit vectors; normalise again in case an embedder does not.
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._vectors[text] for text in texts])


def _cluster(embeddings: np.ndarray, config: RegenerationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Centres [k, D] and each row's assigned centre index [n]."""
    n_distinct = len(np.unique(embeddings.round(6), axis=0))
    n_clusters = min(config.n_clusters, n_distinct)
    if n_clusters == 1:  # K-means with one cluster is the mean; skip sklearn
        return embeddings.mean(axis=0, keepdims=True), np.zeros(len(embeddings), dtype=np.int64)
    kmeans = KMeans(n_clusters=n_clusters, n_init=config.n_init, random_state=config.seed).fit(embeddings)
    return kmeans.cluster_centers_, kmeans.labels_.astype(np.int64)


def _distances(embeddings: np.ndarray, centres: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings - centres[assignment], axis=1)


def _validate(texts: list[str], groups: np.ndarray, features: np.ndarray) -> None:
    if groups.ndim != 1 or len(groups) != len(texts):
        raise ValueError(f"groups must have shape [{len(texts)}] (one group per text), got {groups.shape}")
    if features.ndim != 2 or len(features) != len(texts):
        raise ValueError(
            f"features must have shape [{len(texts)}, F] (one row per text), got {features.shape}"
        )
    if not all(isinstance(text, str) for text in texts):
        raise ValueError("texts must all be strings")


def regenerate(
    texts: list[str],
    groups: np.ndarray,
    features: np.ndarray,
    context: SensorContext,
    interpreter: Interpreter,
    embed: EmbedFunction,
    config: RegenerationConfig | None = None,
) -> tuple[list[str], RegenerationReport]:
    """Re-ask the outlying interpretations of each group; return the improved texts and a report."""
    config = config or RegenerationConfig()
    groups = np.asarray(groups)
    features = np.asarray(features)
    _validate(texts, groups, features)
    texts = list(texts)
    n_windows = len(texts)
    attempts = np.zeros(n_windows, dtype=np.int64)
    replaced = np.zeros(n_windows, dtype=bool)
    cached_embed = _EmbeddingCache(embed)
    members = [np.flatnonzero(groups == group) for group in np.unique(groups)] if n_windows else []

    clustering, distance = _cluster_groups(texts, members, cached_embed, config)
    mean_distances = [float(distance.mean()) if n_windows else 0.0]
    asked_per_iteration: list[int] = []
    accepted_per_iteration: list[int] = []
    stable_iterations = 0
    stop_reason = "max_iterations"

    for _ in range(config.max_iterations):
        outlier_index, outlier_centre = _find_outliers(members, clustering, distance, attempts, config)
        if not outlier_index:
            stop_reason = "no_outliers"
            break
        chosen_index = np.asarray(outlier_index)
        answers = _reask(interpreter, features[chosen_index], [texts[i] for i in chosen_index], context)
        attempts[chosen_index] += 1
        new_distance = np.linalg.norm(cached_embed(list(answers)) - np.stack(outlier_centre), axis=1)
        accept = new_distance < distance[chosen_index]
        for i, answer in zip(chosen_index[accept], np.asarray(answers, dtype=object)[accept], strict=True):
            texts[i] = answer
        replaced[chosen_index[accept]] = True
        asked_per_iteration.append(len(chosen_index))
        accepted_per_iteration.append(int(accept.sum()))

        # stop when the mean intra-cluster distance has settled
        clustering, distance = _cluster_groups(texts, members, cached_embed, config)
        mean_distances.append(float(distance.mean()))
        previous_mean = mean_distances[-2]
        relative_change = abs(mean_distances[-1] - previous_mean) / max(previous_mean, 1e-12)
        stable_iterations = stable_iterations + 1 if relative_change < config.threshold else 0
        if stable_iterations >= config.patience:
            stop_reason = "stable"
            break

    report = RegenerationReport(
        n_windows=n_windows,
        fraction_regenerated=float(replaced.mean()) if n_windows else 0.0,
        fraction_asked=float((attempts > 0).mean()) if n_windows else 0.0,
        mean_distances=mean_distances,
        asked_per_iteration=asked_per_iteration,
        accepted_per_iteration=accepted_per_iteration,
        attempts=attempts,
        replaced=replaced,
        stop_reason=stop_reason,
    )
    record_kept = getattr(interpreter, "record_kept", None)  # LLM interpreters log which attempt was kept
    if record_kept is not None:
        record_kept(features, texts)
    return texts, report


def _cluster_groups(
    texts: list[str], members: list[np.ndarray], embed: _EmbeddingCache, config: RegenerationConfig
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per group (`members`: its window indices) its centres and members' assignments, and every window's
    distance to its centre."""
    clustering: list[tuple[np.ndarray, np.ndarray]] = []
    distance = np.zeros(len(texts))
    for index in members:
        embeddings = embed([texts[i] for i in index])
        centres, assignment = _cluster(embeddings, config)
        clustering.append((centres, assignment))
        distance[index] = _distances(embeddings, centres, assignment)
    return clustering, distance


def _find_outliers(
    members: list[np.ndarray],
    clustering: list[tuple[np.ndarray, np.ndarray]],
    distance: np.ndarray,
    attempts: np.ndarray,
    config: RegenerationConfig,
) -> tuple[list[int], list[np.ndarray]]:
    """Steps 1-3: the outliers of every group (window indices) and the centre each must get closer to."""
    outlier_index: list[int] = []
    outlier_centre: list[np.ndarray] = []
    for index, (centres, assignment) in zip(members, clustering, strict=True):
        group_distance = distance[index]
        far = group_distance > group_distance.mean()
        candidates = np.flatnonzero(far & (attempts[index] < config.max_attempts_per_window))
        farthest_first = candidates[np.argsort(-group_distance[candidates], kind="stable")]
        chosen = farthest_first[: config.outliers_for(len(index))]
        outlier_index.extend(index[chosen].tolist())
        outlier_centre.extend(centres[assignment[chosen]])
    return outlier_index, outlier_centre


def _reask(
    interpreter: Interpreter, features: np.ndarray, previous: list[str], context: SensorContext
) -> list[str]:
    """The interpreter's new answers for these windows, all in one call (their previous answers included)."""
    answers = interpreter.reinterpret(features, previous, context)
    if len(answers) != len(previous):
        raise ValueError(
            f"interpreter {interpreter.name!r} returned {len(answers)} answers for {len(previous)} windows"
        )
    return answers
