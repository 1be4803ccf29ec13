"""IMU window sets: the container every module passes around, loading, validation and splits.

A window set holds non-overlapping windows ``X`` float32 [N, T, 6]: acc x,y,z in m/s^2 INCLUDING gravity, then
gyro x,y,z in rad/s, at 20 Hz with T = 120 for everything the models see. On disk it is an ``.npz`` with keys
X, y, label_names, user, segment, device, position (the layout of ../shared/data, see save_windowset);
original public archives are read by common/archives.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # common.labels imports DataError from this module, so only for type hints here
    from common.labels import LabelVocabulary

MODEL_RATE_HZ = 20.0
WINDOW_LENGTH = 120
CHANNELS = 6
GRAVITY = 9.80665  # m/s^2, standard gravity
UNLABELED = -1
UNLABELED_NAME = "unlabeled"

# Keys an npz window file must hold; the others (info, has_gyro, sampling_rate, name, y4, ...) are optional.
REQUIRED_NPZ_KEYS = ("X", "y", "label_names", "user", "segment")


class DataError(ValueError):
    """Bad input data; the message always names the file/source and the field, shape or unit."""


@dataclass
class WindowSet:
    X: np.ndarray  # float32 [N, T, 6]
    y: np.ndarray  # int64 [N], index into label_names, -1 = unlabeled
    label_names: list[str]  # canonical names (common.labels)
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
            raise DataError(f"{source}: field 'X' must be a float numpy array, got {_describe(self.X)}")
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
                    f"{source}: field {field_name!r} must be an integer numpy array, got {_describe(values)}"
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
        from common.labels import canonical  # imported here: common.labels imports DataError from this module

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


def _describe(value: object) -> str:
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

    Uses scipy.signal.resample_poly (polyphase FIR; the signal is extended linearly at its ends so gravity
    does not leak in as a step) when scipy is installed; otherwise a centred moving mean (box low-pass)
    followed by linear interpolation onto the new time grid. Output length = round(len * to_rate / from_rate).
    """
    if from_rate <= 0 or to_rate <= 0:
        raise DataError(f"resample_signal: sampling rates must be > 0 Hz, got {from_rate} -> {to_rate}")
    x = np.asarray(x)
    if from_rate == to_rate:
        return x.copy()
    n_in = x.shape[axis]
    n_out = int(round(n_in * to_rate / from_rate))
    try:
        from scipy.signal import resample_poly
    except ImportError:  # numpy fallback: box filter over one output period, then linear interpolation
        return _resample_numpy(x, from_rate, to_rate, axis, n_out)
    ratio = Fraction(to_rate / from_rate).limit_denominator(1000)
    resampled = resample_poly(x, ratio.numerator, ratio.denominator, axis=axis, padtype="line")
    return _fit_length(resampled, n_out, axis)


def _resample_numpy(x: np.ndarray, from_rate: float, to_rate: float, axis: int, n_out: int) -> np.ndarray:
    moved = np.moveaxis(x.astype(np.float64), axis, 0)
    if to_rate < from_rate:
        # Centred moving mean over about one output period (odd width so it does not shift the signal).
        width = max(int(round(from_rate / to_rate)), 1) | 1
        half = width // 2
        padded = np.concatenate([np.repeat(moved[:1], half, 0), moved, np.repeat(moved[-1:], half, 0)])
        cumulative = np.concatenate([np.zeros_like(padded[:1]), np.cumsum(padded, axis=0)])
        moved = (cumulative[width:] - cumulative[:-width]) / width
    t_in = np.arange(len(moved)) / from_rate
    t_out = np.arange(n_out) / to_rate
    flat = moved.reshape(len(moved), -1)
    out = np.stack([np.interp(t_out, t_in, flat[:, i]) for i in range(flat.shape[1])], axis=1)
    out = out.reshape((n_out, *moved.shape[1:])).astype(x.dtype, copy=False)
    return np.moveaxis(out, 0, axis)


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


def load_dataset(name: str, data_dir: str | Path, vocabulary: LabelVocabulary | None = None) -> WindowSet:
    """Load ``<data_dir>/<name>.npz``, or the original public archive in the directory ``<data_dir>/<name>``.

    For archives the directory may also be named after the data set family ("dsads" for "dsads_torso" and
    "dsads_rightleg", "wisdm" for "wisdm_phone"). Label names are canonicalised with ``vocabulary``
    (a common.labels.LabelVocabulary; default the built-in one): unknown labels are errors.
    """
    data_dir = Path(data_dir)
    npz_path = data_dir / f"{name}.npz"
    if npz_path.is_file():
        return read_npz(npz_path, name=name, vocabulary=vocabulary)
    for directory in (data_dir / name, data_dir / name.split("_")[0]):
        if directory.is_dir():
            from common.archives import read_archive  # local: archives imports this module

            windows = read_archive(directory, name=name)
            return _canonicalise_labels(windows, str(directory), vocabulary)
    raise DataError(
        f"data set {name!r}: neither {npz_path} nor an archive directory {data_dir / name} exists "
        f"(data_dir={data_dir})"
    )


def read_npz(
    path: str | Path, name: str | None = None, vocabulary: LabelVocabulary | None = None
) -> WindowSet:
    """Read one npz window file (layout: see save_windowset); per-window position/device -> most common."""
    path = Path(path)
    name = name or path.stem
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read as an npz window file ({error})") from error
    with archive:
        missing = [key for key in REQUIRED_NPZ_KEYS if key not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing field(s) {missing}; an npz window file needs {list(REQUIRED_NPZ_KEYS)}"
            )
        X = archive["X"]
        validate_windows(X, str(path), "X")
        n_windows = X.shape[0]
        arrays = {}
        for key in ("y", "user", "segment"):
            values = archive[key]
            if values.dtype.kind not in "iu" or values.shape != (n_windows,):
                raise DataError(
                    f"{path}: field {key!r} must be integers of shape [{n_windows}], got {_describe(values)}"
                )
            arrays[key] = values.astype(np.int64)
        label_names = archive["label_names"]
        if label_names.dtype.kind not in "US" or label_names.ndim != 1:
            raise DataError(
                f"{path}: field 'label_names' must be a 1-D string array, got {_describe(label_names)}"
            )
        metadata = {key: _most_common(archive[key]) for key in ("position", "device") if key in archive.files}
        sampling_rate = float(archive["sampling_rate"]) if "sampling_rate" in archive.files else MODEL_RATE_HZ
        if "has_gyro" in archive.files:
            has_gyro = bool(archive["has_gyro"])
        else:  # older files: a missing gyroscope is stored as all-zero gyro channels
            has_gyro = bool(np.any(X[..., 3:] != 0))
        try:
            windows = WindowSet(
                X=X.astype(np.float32),
                y=arrays["y"],
                label_names=[str(label) for label in label_names],
                user=arrays["user"],
                segment=arrays["segment"],
                name=name,
                sampling_rate=sampling_rate,
                has_gyro=has_gyro,
                **metadata,
            )
        except DataError as error:
            raise DataError(f"{path}: {error}") from error
    return _canonicalise_labels(windows, str(path), vocabulary)


def _most_common(values: np.ndarray) -> str:
    if values.ndim == 0:
        return str(values)
    if values.size == 0:
        return "unknown"
    return str(Counter(values.tolist()).most_common(1)[0][0])


def _canonicalise_labels(windows: WindowSet, source: str, vocabulary: LabelVocabulary | None) -> WindowSet:
    """Rename labels to their canonical spelling; two spellings of one activity are merged into one class."""
    from common.labels import default_vocabulary

    vocabulary = vocabulary or default_vocabulary()
    canonical_names: list[str] = []
    old_to_new = np.full(len(windows.label_names) + 1, UNLABELED, dtype=np.int64)  # last slot: y == -1
    for old_index, label in enumerate(windows.label_names):
        try:
            canonical_name = vocabulary.canonical(label)
        except DataError as error:
            raise DataError(f"{source}: field 'label_names': {error}") from error
        if canonical_name not in canonical_names:
            canonical_names.append(canonical_name)
        old_to_new[old_index] = canonical_names.index(canonical_name)
    return replace(windows, y=old_to_new[windows.y], label_names=canonical_names)


def save_windowset(ws: WindowSet, path: str | Path) -> Path:
    """Write ``ws`` as an npz window file that read_npz/load_dataset read back unchanged."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    n_windows = len(ws)
    np.savez_compressed(
        path,
        X=ws.X.astype(np.float32),
        y=ws.y.astype(np.int64),
        label_names=np.array(ws.label_names, dtype=str),
        user=ws.user.astype(np.int64),
        segment=ws.segment.astype(np.int64),
        device=np.full(n_windows, ws.device),
        position=np.full(n_windows, ws.position),
        sampling_rate=np.float64(ws.sampling_rate),
        has_gyro=np.bool_(ws.has_gyro),
        name=np.str_(ws.name),
        info=np.str_(f"written by FedLanHAR save_windowset from data set {ws.name!r}"),
    )
    return path


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
    eval_groups = None
    if stratify:
        eval_groups = _stratified_eval_groups(ws, groups, unique_groups, eval_fraction, rng)
    if eval_groups is None or len(eval_groups) == 0:
        eval_groups = _covering_eval_groups(ws, groups, unique_groups, eval_fraction, rng)
    eval_mask = np.isin(groups, eval_groups)
    return ws.subset(~eval_mask), ws.subset(eval_mask)


def _group_majority_label(ws: WindowSet, groups: np.ndarray, unique_groups: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(unique_groups, groups)
    majority = np.empty(len(unique_groups), dtype=np.int64)
    for i in range(len(unique_groups)):
        majority[i] = Counter(ws.y[positions == i].tolist()).most_common(1)[0][0]
    return majority


def _stratified_eval_groups(
    ws: WindowSet,
    groups: np.ndarray,
    unique_groups: np.ndarray,
    eval_fraction: float,
    rng: np.random.Generator,
) -> np.ndarray:
    majority = _group_majority_label(ws, groups, unique_groups)
    chosen = []
    for label in np.unique(majority):
        members = unique_groups[majority == label]
        n_eval = min(int(round(eval_fraction * len(members))), len(members) - 1)
        if n_eval > 0:
            chosen.append(rng.permutation(members)[:n_eval])
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def _covering_eval_groups(
    ws: WindowSet,
    groups: np.ndarray,
    unique_groups: np.ndarray,
    eval_fraction: float,
    rng: np.random.Generator,
) -> np.ndarray:
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
