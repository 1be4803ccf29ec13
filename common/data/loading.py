"""Reading and writing window sets: npz window files and original public archives, by data set name.

The npz layout is documented in docs/data.md; `save_windowset` writes it and `read_npz` reads it back.
Label names are canonicalised with the label vocabulary (common/data/labels.py) on the way in.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import numpy as np

from common.data.errors import DataError
from common.data.label_spaces import rename_labels
from common.data.labels import LabelVocabulary, canonical, default_vocabulary
from common.data.sources import read_archive
from common.data.windows import (
    MODEL_RATE_HZ,
    REQUIRED_NPZ_KEYS,
    WINDOW_LENGTH,
    WindowSet,
    describe,
    validate_windows,
)


def load_dataset(name: str, data_dir: str | Path, vocabulary: LabelVocabulary | None = None) -> WindowSet:
    """Load ``<data_dir>/<name>.npz``, or the original public archive in the directory ``<data_dir>/<name>``.

    For archives the directory may also be named after the data set family ("dsads" for "dsads_torso" and
    "dsads_rightleg", "wisdm" for "wisdm_phone"). Label names are canonicalised with ``vocabulary``
    (a common.data.labels.LabelVocabulary; default the built-in one): unknown labels are errors.
    """
    data_dir = Path(data_dir)
    npz_path = data_dir / f"{name}.npz"
    if npz_path.is_file():
        return read_npz(npz_path, name=name, vocabulary=vocabulary)
    for directory in (data_dir / name, data_dir / name.split("_")[0]):
        if directory.is_dir():
            windows = read_archive(directory, name=name)
            return _canonicalise_labels(windows, str(directory), vocabulary)
    raise DataError(
        f"data set {name!r}: neither {npz_path} nor an archive directory {data_dir / name} exists "
        f"(data_dir={data_dir})"
    )


def dataset_labels(name: str, data_dir: str | Path) -> tuple[str, ...]:
    """The canonical label names of data set `name` in `data_dir`, as load_dataset reads them (once per
    process and directory: an npz file's label_names only, not its windows)."""
    return _dataset_labels(name, str(Path(data_dir).resolve()))


@functools.cache
def _dataset_labels(name: str, data_dir: str) -> tuple[str, ...]:
    path = Path(data_dir) / f"{name}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = archive["label_names"] if "label_names" in archive.files else None
        except (OSError, ValueError):
            names = None
        if names is not None and names.dtype.kind in "US" and names.ndim == 1:
            return tuple(dict.fromkeys(canonical(str(label)) for label in names))
    return tuple(load_dataset(name, data_dir).label_names)  # archives, and the errors of a broken file


def read_npz(
    path: str | Path,
    name: str | None = None,
    vocabulary: LabelVocabulary | None = None,
    window_length: int | None = WINDOW_LENGTH,
) -> WindowSet:
    """Read one npz window file (layout: see save_windowset); per-window position/device -> most common.

    ``window_length`` is the number of samples a window must hold (None: any, as a device's own recordings
    at its own rate, which common/data/device_data.py brings to the model's layout).
    """
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
        validate_windows(X, str(path), "X", expected_length=window_length)
        n_windows = X.shape[0]
        arrays = {}
        for key in ("y", "user", "segment"):
            values = archive[key]
            if values.dtype.kind not in "iu" or values.shape != (n_windows,):
                raise DataError(
                    f"{path}: field {key!r} must be integers of shape [{n_windows}], got {describe(values)}"
                )
            arrays[key] = values.astype(np.int64)
        label_names = archive["label_names"]
        if label_names.dtype.kind not in "US" or label_names.ndim != 1:
            raise DataError(
                f"{path}: field 'label_names' must be a 1-D string array, got {describe(label_names)}"
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
    vocabulary = vocabulary or default_vocabulary()
    canonical_names = {}
    for label in windows.label_names:
        try:
            canonical_names[label] = vocabulary.canonical(label)
        except DataError as error:
            raise DataError(f"{source}: field 'label_names': {error}") from error
    return rename_labels(windows, canonical_names)


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
