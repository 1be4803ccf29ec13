"""Device types: how a kind of wearable distorts the body's true motion, and applying that to windows.

A device type (configs/devices/<name>.toml) describes the hardware and how it is worn: its own sampling
rate, body placement, a fixed mounting rotation, per-window orientation jitter, accelerometer gain and
biases, white noise, and whether a gyroscope exists. Federated simulations give each client one device type,
so clients differ the way real phones, watches and straps do.

Units: sampling_rate Hz; rotation_deg and rotation_jitter_deg degrees; gain dimensionless (1.0 = exact);
acc_bias and acc_noise_std m/s^2; gyro_bias and gyro_noise_std rad/s.

A device type may instead bring its own recordings: `data = "recordings.npz"` (relative to the TOML file).
Its clients then hold windows cut from that file (common/data/device_data.py) and the simulation fields
(rotation, gain, bias, noise, windows) are not used.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from common.base.paths import CONFIGS_DIR
from common.data.errors import DataError
from common.data.toml_files import read_toml
from common.data.windows import WindowSet, resample_signal

DEVICES_DIR = CONFIGS_DIR / "devices"


@dataclass(frozen=True)
class DeviceType:
    name: str
    sampling_rate: float  # Hz at which the device records
    placement: str  # body position word used in prompts and by the synthetic generator (waist, thigh, ...)
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # fixed mounting rotation, Euler x, y, z (deg)
    rotation_jitter_deg: float = 0.0  # std of an extra random rotation per window and axis (deg)
    gain: float = 1.0  # accelerometer scale factor
    acc_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)  # m/s^2
    gyro_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)  # rad/s
    acc_noise_std: float = 0.0  # m/s^2, white noise per sample at the device rate
    gyro_noise_std: float = 0.0  # rad/s, white noise per sample at the device rate
    has_gyro: bool = True
    windows: int = 300  # how many windows a simulated client of this type holds
    description: str = ""
    data: str = ""  # npz file of the device's own recordings (absolute once loaded); "" = simulated

    def __post_init__(self) -> None:
        validate_device_type(self, source=f"device type {self.name!r}")


def validate_device_type(device: DeviceType, source: str) -> None:
    """Raise DataError naming ``source`` and the field if a value is of the wrong type or implausible."""

    def fail(field_name: str, problem: str) -> None:
        raise DataError(f"{source}: field {field_name!r} {problem}")

    if not isinstance(device.name, str) or not device.name:
        fail("name", "must be a non-empty string")
    if not isinstance(device.placement, str) or not device.placement:
        fail("placement", "must be a non-empty body position word such as 'waist' or 'thigh'")
    for field_name, low, high in (
        ("sampling_rate", 1.0, 2000.0),
        ("rotation_jitter_deg", 0.0, 180.0),
        ("gain", 0.5, 2.0),
        ("acc_noise_std", 0.0, 10.0),
        ("gyro_noise_std", 0.0, 5.0),
    ):
        value = getattr(device, field_name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            fail(field_name, f"must be a number in [{low}, {high}], got {value!r}")
    for field_name, limit in (("rotation_deg", 360.0), ("acc_bias", 20.0), ("gyro_bias", 5.0)):
        value = getattr(device, field_name)
        if (
            not isinstance(value, tuple | list)
            or len(value) != 3
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= limit for v in value
            )
        ):
            fail(field_name, f"must be 3 numbers (x, y, z) each within +-{limit}, got {value!r}")
    if not isinstance(device.has_gyro, bool):
        fail("has_gyro", f"must be true or false, got {device.has_gyro!r}")
    if isinstance(device.windows, bool) or not isinstance(device.windows, int) or device.windows < 1:
        fail("windows", f"must be a positive integer, got {device.windows!r}")
    if not isinstance(device.description, str):
        fail("description", "must be a string")
    if not isinstance(device.data, str):
        fail("data", f"must be the path of an npz file of recordings, got {device.data!r}")


def list_device_types() -> list[str]:
    """Names of the device types shipped in configs/devices."""
    return sorted(path.stem for path in DEVICES_DIR.glob("*.toml"))


def device_type_path(name_or_path: str | Path) -> Path:
    """The file a device type is read from: configs/devices/<name>.toml for a name, else the path itself."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        return candidate
    return DEVICES_DIR / f"{name_or_path}.toml"


def load_device_type(name_or_path: str | Path) -> DeviceType:
    """A device type by name (configs/devices/<name>.toml) or from a TOML file path.

    A `data` path is made absolute (relative to the TOML file) and must name an existing file; its content
    is checked by common.data.device_data.device_recordings.
    """
    path = device_type_path(name_or_path)
    if not path.is_file():
        raise DataError(
            f"device type {str(name_or_path)!r}: no file {path}; shipped device types: {list_device_types()}"
        )
    document = read_toml(path, "device type file")
    known = {f.name for f in fields(DeviceType)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise DataError(f"{path}: unknown field(s) {unknown}; allowed: {sorted(known)}")
    document.setdefault("name", path.stem)
    for required in ("sampling_rate", "placement"):
        if required not in document:
            raise DataError(f"{path}: field {required!r} is missing")
    for vector_field in ("rotation_deg", "acc_bias", "gyro_bias"):
        if isinstance(document.get(vector_field), list):
            document[vector_field] = tuple(document[vector_field])
    for float_field in ("sampling_rate", "rotation_jitter_deg", "gain", "acc_noise_std", "gyro_noise_std"):
        value = document.get(float_field)
        if isinstance(value, int) and not isinstance(value, bool):
            document[float_field] = float(value)
    if isinstance(document.get("data"), str) and document["data"]:
        recordings = (path.parent / document["data"]).resolve()  # an absolute path stays as it is
        if not recordings.is_file():
            raise DataError(
                f"{path}: field 'data': no file {recordings} (a relative path is relative to {path})"
            )
        document["data"] = str(recordings)
    try:
        device = DeviceType(**document)
    except DataError as error:
        raise DataError(f"{path}: {error}") from error
    return device


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] for Euler angles [..., 3] (deg): about x, then y, then z (fixed axes).

    A reading v becomes R @ v, i.e. R = Rz @ Ry @ Rx.
    """
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    matrix = np.empty((*angles.shape[:-1], 3, 3))
    matrix[..., 0, 0] = cz * cy
    matrix[..., 0, 1] = cz * sy * sx - sz * cx
    matrix[..., 0, 2] = cz * sy * cx + sz * sx
    matrix[..., 1, 0] = sz * cy
    matrix[..., 1, 1] = sz * sy * sx + cz * cx
    matrix[..., 1, 2] = sz * sy * cx - cz * sx
    matrix[..., 2, 0] = -sy
    matrix[..., 2, 1] = cy * sx
    matrix[..., 2, 2] = cy * cx
    return matrix


def apply_device(ws: WindowSet, device: DeviceType, seed: int) -> WindowSet:
    """``ws`` as seen through ``device``: rate, mounting rotation, gain/bias, noise, missing gyroscope.

    The windows (true motion at ws.sampling_rate, normally 20 Hz) are first brought to the device rate, the
    device's errors are added there, and the result is brought back to ws.sampling_rate the way the data
    pipeline would: a faster device's noise is partly averaged away by the anti-alias filter, a slower one
    without an anti-alias filter aliases fast motion and loses detail. Deterministic for ``seed``.
    """
    rng = np.random.default_rng(seed)
    n_windows, n_samples, _ = ws.X.shape
    model_rate = ws.sampling_rate
    X = ws.X.astype(np.float64)

    if device.sampling_rate > model_rate:
        X = resample_signal(X, model_rate, device.sampling_rate, axis=1)
    elif device.sampling_rate < model_rate:
        X = _point_sample(X, model_rate, device.sampling_rate)  # cheap sensors sample without a filter

    jitter = rng.normal(0.0, device.rotation_jitter_deg, size=(n_windows, 3))
    rotation = rotation_matrix(np.asarray(device.rotation_deg) + jitter)  # [N, 3, 3]
    acc = np.einsum("nij,ntj->nti", rotation, X[..., :3]) * device.gain + np.asarray(device.acc_bias)
    acc += rng.normal(0.0, device.acc_noise_std, size=acc.shape)
    if device.has_gyro and ws.has_gyro:
        gyro = np.einsum("nij,ntj->nti", rotation, X[..., 3:]) + np.asarray(device.gyro_bias)
        gyro += rng.normal(0.0, device.gyro_noise_std, size=gyro.shape)
    else:
        gyro = np.zeros_like(acc)
    X = np.concatenate([acc, gyro], axis=-1)

    if device.sampling_rate > model_rate:
        X = resample_signal(X, device.sampling_rate, model_rate, axis=1)
    elif device.sampling_rate < model_rate:
        X = _linear_upsample(X, device.sampling_rate, model_rate, n_samples)
    if not (device.has_gyro and ws.has_gyro):
        X[..., 3:] = 0.0  # resampling must not leave rounding noise in a channel that does not exist
    return replace(
        ws,
        X=X[:, :n_samples].astype(np.float32),
        position=device.placement,
        device=device.name,
        has_gyro=device.has_gyro and ws.has_gyro,
    )


def _point_sample(X: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """Instantaneous samples at ``to_rate`` (linear interpolation between the finer samples), no filter."""
    t_in = np.arange(X.shape[1]) / from_rate
    t_out = np.arange(int(np.ceil(X.shape[1] * to_rate / from_rate))) / to_rate
    return _interpolate_time(X, t_in, t_out)


def _linear_upsample(X: np.ndarray, from_rate: float, to_rate: float, n_out: int) -> np.ndarray:
    t_in = np.arange(X.shape[1]) / from_rate
    t_out = np.arange(n_out) / to_rate
    return _interpolate_time(X, t_in, t_out)


def _interpolate_time(X: np.ndarray, t_in: np.ndarray, t_out: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 1 of [N, T, C], vectorised (the grids are shared by all windows)."""
    position = np.clip(np.searchsorted(t_in, t_out, side="right") - 1, 0, len(t_in) - 1)
    following = np.minimum(position + 1, len(t_in) - 1)
    span = np.where(following > position, t_in[following] - t_in[position], 1.0)
    weight = np.clip((t_out - t_in[position]) / span, 0.0, 1.0)[None, :, None]
    return X[:, position] * (1.0 - weight) + X[:, following] * weight
