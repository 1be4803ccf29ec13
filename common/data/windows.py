"""IMU window sets: the container every module passes around, loading, validation and splits.

A window set holds non-overlapping windows ``X`` float32 [N, T, 6]: acc x,y,z in m/s^2 INCLUDING gravity, then
gyro x,y,z in rad/s, at 20 Hz with T = 120 for everything the models see. On disk it is an ``.npz`` with keys
X, y, label_names, user, segment, device, position (the layout of ../shared/data, see save_windowset);
original public archives are read by common/data/archives.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from common.data.errors import DataError
from common.data.labels import canonical

MODEL_RATE_HZ = 20.0
WINDOW_LENGTH = 120
CHANNELS = 6
GRAVITY = 9.80665  # m/s^2, standard gravity
UNLABELED = -1
UNLABELED_NAME = "unlabeled"

# Keys an npz window file must hold; the others (info, has_gyro, sampling_rate, name, y4, ...) are optional.
REQUIRED_NPZ_KEYS = ("X", "y", "label_names", "user", "segment")


@dataclass
class WindowSet:
    X: np.ndarray  # float32 [N, T, 6]
    y: np.ndarray  # int64 [N], index into label_names, -1 = unlabeled
    label_names: list[str]  # canonical names (common.data.labels)
    user: np.ndarray  # int64 [N]
    segment: np.ndarray  # int64 [N], windows with one id are consecutive pieces of one recording
    name: str  # data set name, e.g. "uci"
    sampling_rate: float = MODEL_RATE_HZ
    position: str = "unknown"  # body placement: waist, chest, thigh, wrist, trouser pocket ...
    device: str = "unknown"
    has_gyro: bool = True

    def __post_init__(self) -> None:
        source = f"WindowSet {self.name!r}"
        if not isinstance(self.X, np.ndarray) or self.X.dtype.kind != "f":
            raise DataError(f"{source}: field 'X' must be a float numpy array, got {describe(self.X)}")
        if self.X.ndim != 3 or self.X.shape[2] != CHANNELS:
            raise DataError(
                f"{source}: field 'X' must have shape [N, T, {CHANNELS}], got {list(self.X.shape)}"
            )
        self.X = self.X.astype(np.float32, copy=False)
        n_windows = self.X.shape[0]
        for field_name in ("y", "user", "segment"):
            values = getattr(self, field_name)
            if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu":
                raise DataError(
                    f"{source}: field {field_name!r} must be an integer numpy array, got {describe(values)}"
                )
            if values.shape != (n_windows,):
                raise DataError(
                    f"{source}: field {field_name!r} has shape {list(values.shape)}, expected [{n_windows}] "
                    f"(one per window of X)"
                )
            setattr(self, field_name, values.astype(np.int64, copy=False))
        if isinstance(self.label_names, np.ndarray | tuple):
            self.label_names = [str(label) for label in self.label_names]
        if not isinstance(self.label_names, list) or not all(isinstance(n, str) for n in self.label_names):
            raise DataError(f"{source}: field 'label_names' must be a list of strings")
        if len(set(self.label_names)) != len(self.label_names):
            duplicates = sorted(n for n, c in Counter(self.label_names).items() if c > 1)
            raise DataError(f"{source}: field 'label_names' has duplicates {duplicates}")
        if n_windows and (self.y.min() < UNLABELED or self.y.max() >= len(self.label_names)):
            raise DataError(
                f"{source}: field 'y' holds values in [{self.y.min()}, {self.y.max()}], expected -1 "
                f"(unlabeled) or 0..{len(self.label_names) - 1} (index into label_names)"
            )
        if not self.sampling_rate > 0:
            raise DataError(f"{source}: field 'sampling_rate' must be > 0 Hz, got {self.sampling_rate}")

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def subset(self, index: np.ndarray) -> WindowSet:
        """Windows picked by an integer index array or a boolean mask; label_names unchanged."""
        index = np.asarray(index)
        if index.dtype == bool and index.shape != (len(self),):
            raise DataError(
                f"WindowSet {self.name!r}: boolean subset mask has shape {list(index.shape)}, "
                f"expected [{len(self)}]"
            )
        return replace(
            self, X=self.X[index], y=self.y[index], user=self.user[index], segment=self.segment[index]
        )

    def select_activities(self, names: Sequence[str]) -> WindowSet:
        """Keep only the windows of ``names``; the result's label_names are those names in the given order.

        Names are canonicalised first (so "walking_upstairs" selects "upstairs"); a name this set lacks is
        an error listing the ones it has.
        """
        wanted = [canonical(name, allow_unknown=True) for name in names]
        if len(set(wanted)) != len(wanted):
            raise DataError(f"WindowSet {self.name!r}: select_activities got duplicate names {list(names)}")
        missing = [name for name in wanted if name not in self.label_names]
        if missing:
            raise DataError(
                f"WindowSet {self.name!r}: field 'label_names' has no {missing}; "
                f"available: {self.label_names}"
            )
        old_to_new = np.full(len(self.label_names) + 1, UNLABELED, dtype=np.int64)  # last slot: y == -1
        for new_index, name in enumerate(wanted):
            old_to_new[self.label_names.index(name)] = new_index
        new_y = old_to_new[self.y]
        keep = new_y >= 0
        selected = self.subset(keep)
        return replace(selected, y=new_y[keep], label_names=wanted)

    def labels(self) -> list[str]:
        """Label name of every window ("unlabeled" for y == -1)."""
        return [self.label_names[i] if i >= 0 else UNLABELED_NAME for i in self.y]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y[self.y >= 0], minlength=len(self.label_names))
        return {name: int(count) for name, count in zip(self.label_names, counts, strict=True)}


def describe(value: object) -> str:
    """How a bad value looks in an error message: an array by dtype and shape, anything else by type."""
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {list(value.shape)}"
    return type(value).__name__


def validate_windows(
    X: np.ndarray, source: str, field: str = "X", expected_length: int | None = WINDOW_LENGTH
) -> None:
    """Raise DataError unless ``X`` is finite [N, T, 6] windows, acc m/s^2 incl. gravity, gyro rad/s.

    ``expected_length`` is the required T (None: any). Unit checks use medians over all samples, which are
    robust to a few wild windows: a body-worn accelerometer that includes gravity reads about 9.8 m/s^2.
    """
    where = f"{source}: field {field!r}"
    if not isinstance(X, np.ndarray):
        raise DataError(f"{where} must be a numpy array, got {type(X).__name__}")
    if X.ndim != 3:
        raise DataError(f"{where} must have rank 3 [N, T, {CHANNELS}], got shape {list(X.shape)}")
    if X.shape[2] != CHANNELS:
        raise DataError(
            f"{where} must have {CHANNELS} channels (acc x,y,z m/s^2, gyro x,y,z rad/s) in the last "
            f"dimension, got shape {list(X.shape)}"
        )
    if expected_length is not None and X.shape[1] != expected_length:
        raise DataError(
            f"{where} has windows of {X.shape[1]} samples (shape {list(X.shape)}), expected {expected_length}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{where} is empty (shape {list(X.shape)})")
    if X.dtype.kind != "f":
        raise DataError(f"{where} must be floating point, got dtype {X.dtype}")
    finite = np.isfinite(X)
    if not finite.all():
        bad = np.argwhere(~finite)
        n_nan, n_inf = int(np.isnan(X).sum()), int(np.isinf(X).sum())
        windows = np.unique(bad[:, 0])
        first_window, first_sample, first_channel = (int(v) for v in bad[0])
        raise DataError(
            f"{where} has {n_nan} NaN and {n_inf} inf values in {len(windows)} window(s) "
            f"(first windows {windows[:5].tolist()}; first at window {first_window}, sample {first_sample}, "
            f"channel {first_channel})"
        )
    acc_median = float(np.median(np.linalg.norm(X[..., :3], axis=-1)))
    if 0.5 <= acc_median <= 2.0:
        raise DataError(
            f"{where}: median |acc| is {acc_median:.3f}, near 1 instead of near 9.8: acc looks like g, "
            f"multiply by {GRAVITY} to get m/s^2"
        )
    if acc_median < 3.0:
        raise DataError(
            f"{where}: median |acc| is {acc_median:.3f} m/s^2, expected about 9.8: acc must include gravity "
            f"and be in m/s^2"
        )
    if acc_median > 50.0:
        raise DataError(
            f"{where}: median |acc| is {acc_median:.1f}, far above 9.8 m/s^2: acc looks like milli-g or "
            f"cm/s^2, convert it to m/s^2"
        )
    gyro_median = float(np.median(np.linalg.norm(X[..., 3:], axis=-1)))
    if gyro_median > 15.0:
        raise DataError(
            f"{where}: median |gyro| is {gyro_median:.1f}, implausible in rad/s: gyro looks like deg/s, "
            f"multiply by pi/180"
        )


def resample_signal(x: np.ndarray, from_rate: float, to_rate: float, axis: int = 0) -> np.ndarray:
    """Resample ``x`` along ``axis`` from ``from_rate`` to ``to_rate`` Hz with an anti-alias filter.

    scipy.signal.resample_poly: a polyphase FIR filter; the signal is extended linearly at its ends so
    gravity does not leak in as a step. Output length = round(len * to_rate / from_rate).
    """
    if from_rate <= 0 or to_rate <= 0:
        raise DataError(f"resample_signal: sampling rates must be > 0 Hz, got {from_rate} -> {to_rate}")
    x = np.asarray(x)
    if from_rate == to_rate:
        return x.copy()
    n_out = int(round(x.shape[axis] * to_rate / from_rate))
    ratio = Fraction(to_rate / from_rate).limit_denominator(1000)
    resampled = resample_poly(x, ratio.numerator, ratio.denominator, axis=axis, padtype="line")
    return _fit_length(resampled, n_out, axis)


def _fit_length(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Trim, or pad by repeating the last sample, so that x has n samples along axis."""
    current = x.shape[axis]
    if current >= n:
        return np.take(x, np.arange(n), axis=axis)
    last = np.take(x, [current - 1], axis=axis)
    return np.concatenate([x, np.repeat(last, n - current, axis=axis)], axis=axis)


def cut_windows(signal: np.ndarray, window: int = WINDOW_LENGTH) -> np.ndarray:
    """Non-overlapping windows [n, window, C] from a [T, C] stream; the incomplete tail is dropped."""
    n_windows = signal.shape[0] // window
    return signal[: n_windows * window].reshape(n_windows, window, *signal.shape[1:])


def split_by_user(ws: WindowSet, eval_fraction: float, seed: int) -> tuple[WindowSet, WindowSet]:
    """(train, eval) with disjoint users; eval holds about ``eval_fraction`` of the users.

    Among a number of seeded random draws the first whose train side holds every class is taken (if no draw
    does, the one covering most classes), so the split is deterministic for a seed.
    """
    return _split_groups(ws, ws.user, "user", eval_fraction, seed, stratify=False)


def split_by_segment(ws: WindowSet, eval_fraction: float, seed: int) -> tuple[WindowSet, WindowSet]:
    """(train, eval) with disjoint segments (recordings); eval holds about ``eval_fraction`` of them.

    Segments are drawn per class (a segment's class = its most common label) so both sides keep the class
    mix, and a class with a single segment stays on the train side.
    """
    return _split_groups(ws, ws.segment, "segment", eval_fraction, seed, stratify=True)


_SPLIT_ATTEMPTS = 200


def _split_groups(
    ws: WindowSet, groups: np.ndarray, field: str, eval_fraction: float, seed: int, stratify: bool
) -> tuple[WindowSet, WindowSet]:
    source = f"WindowSet {ws.name!r}"
    if not 0.0 < eval_fraction < 1.0:
        raise DataError(f"{source}: eval_fraction must be in (0, 1), got {eval_fraction}")
    unique_groups = np.unique(groups)
    if len(unique_groups) < 2:
        raise DataError(
            f"{source}: cannot split by {field}: field {field!r} has {len(unique_groups)} distinct value(s)"
        )
    rng = np.random.default_rng(seed)
    eval_groups = _stratified_eval_groups(ws, groups, eval_fraction, rng) if stratify else []
    if len(eval_groups) == 0:
        eval_groups = _covering_eval_groups(ws, groups, eval_fraction, rng)
    eval_mask = np.isin(groups, eval_groups)
    return ws.subset(~eval_mask), ws.subset(eval_mask)


def _group_majority_label(ws: WindowSet, groups: np.ndarray, unique_groups: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(unique_groups, groups)
    majority = np.empty(len(unique_groups), dtype=np.int64)
    for i in range(len(unique_groups)):
        majority[i] = Counter(ws.y[positions == i].tolist()).most_common(1)[0][0]
    return majority


def _stratified_eval_groups(
    ws: WindowSet, groups: np.ndarray, eval_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    unique_groups = np.unique(groups)
    majority = _group_majority_label(ws, groups, unique_groups)
    chosen = []
    for label in np.unique(majority):
        members = unique_groups[majority == label]
        n_eval = min(int(round(eval_fraction * len(members))), len(members) - 1)
        if n_eval > 0:
            chosen.append(rng.permutation(members)[:n_eval])
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def _covering_eval_groups(
    ws: WindowSet, groups: np.ndarray, eval_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    unique_groups = np.unique(groups)
    n_eval = min(max(int(round(eval_fraction * len(unique_groups))), 1), len(unique_groups) - 1)
    all_classes = set(np.unique(ws.y[ws.y >= 0]).tolist())
    best, best_covered = None, -1
    for _ in range(_SPLIT_ATTEMPTS):
        candidate = rng.permutation(unique_groups)[:n_eval]
        train_labels = ws.y[~np.isin(groups, candidate)]
        covered = len(all_classes & set(np.unique(train_labels).tolist()))
        if covered > best_covered:
            best, best_covered = candidate, covered
        if covered == len(all_classes):
            break
    return np.sort(best)
