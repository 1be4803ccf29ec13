"""Signal analysis of IMU windows: the numbers behind every sensor interpretation.

`analyze_windows` turns windows `X` [N, T, 6] (acc x,y,z in m/s^2 including gravity, gyro x,y,z in rad/s) into
a fixed feature vector per window, fully vectorised over windows. In the default federated mode these
features are the only thing a client uploads, and they fill part (ii) of the sensor prompt.

Orientation matters: the same movement reads very differently on a device worn at the waist, the chest, the
thigh or in a pocket, and the device axes are arbitrary. Most features are therefore invariant to rotating the
device: magnitudes, and components relative to gravity. Gravity is estimated as the window mean of the
accelerometer; the dynamic acceleration (acc minus that mean) is split into its projection on gravity
("vertical") and the remainder ("horizontal"). The per-axis and tilt features are NOT invariant; they are kept
for the prompt, where a language model may use them together with the body position.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# name -> unit; the order is the column order of analyze_windows. "1" = dimensionless.
FEATURE_UNITS: dict[str, str] = {
    # |acc| statistics (acc magnitude including gravity): acc_mag_mean, ..., acc_mag_range (max - min)
    **{f"acc_mag_{statistic}": "m/s^2" for statistic in ("mean", "std", "min", "max", "range")},
    # per-axis statistics in device coordinates (NOT orientation invariant): acc_x_mean, acc_y_mean, ...
    **{f"acc_{axis}_{statistic}": "m/s^2" for statistic in ("mean", "std", "min", "max") for axis in "xyz"},
    # spectrum of the dynamic acc magnitude (|acc| minus its mean)
    "dominant_frequency": "Hz",  # strongest frequency between 0.3 Hz and Nyquist
    "dominant_frequency_share": "1",  # fraction of the spectral energy within 0.25 Hz of that peak
    "spectral_energy": "(m/s^2)^2",  # mean power of the dynamic magnitude (its variance)
    "dynamic_energy": "(m/s^2)^2",  # mean squared norm of the dynamic acc vector (all directions)
    # time-series analysis of the dynamic acc magnitude
    "autocorrelation_peak": "1",  # highest normalised autocorrelation for lags 0.3-2.5 s
    "period": "s",  # lag of that peak (0 when there is no periodicity)
    "peak_count": "1",  # prominent peaks of the smoothed dynamic magnitude in the window
    "step_rate": "steps/s",  # peak_count / window duration
    "jerk_mean": "m/s^3",  # mean norm of the time derivative of the acc vector
    "jerk_max": "m/s^3",
    # gravity-aligned components of the dynamic acceleration
    "vertical_std": "m/s^2",
    "vertical_skewness": "1",  # > 0: short upward spikes, < 0: short downward dips
    "vertical_kurtosis": "1",  # excess kurtosis; large = sharp, impulsive impacts
    "vertical_peak_to_peak": "m/s^2",
    "vertical_peak": "m/s^2",  # highest upward acceleration above the mean (landing impacts show here)
    "vertical_jerk_max": "m/s^3",
    "vertical_dominant_frequency": "Hz",
    "vertical_peak_asymmetry": "1",  # highest upward peak / deepest dip; > 1: upward spikes (landings)
    "vertical_sharpness": "1/s",  # mean |d vertical/dt| / vertical std: how fast the vertical signal changes
    "horizontal_rms": "m/s^2",  # rms norm of the part perpendicular to gravity
    "horizontal_max": "m/s^2",
    "vertical_horizontal_ratio": "1",  # vertical energy / horizontal energy
    # orientation of gravity in device coordinates (NOT orientation invariant) and its stability
    "gravity_magnitude": "m/s^2",  # norm of the window mean of acc
    **{f"tilt_{axis}": "deg" for axis in "xyz"},  # angle between gravity and the device axis
    "orientation_change": "deg",  # angle between mean acc of the first and of the second half window
    "tilt_swing": "deg",  # 90th percentile angle of the 0.5 s smoothed acc from the mean gravity direction
    # gyroscope (all 0 when the device has none)
    **{f"gyro_energy_{axis}": "(rad/s)^2" for axis in "xyz"},  # mean square angular velocity per axis
    "gyro_magnitude_mean": "rad/s",
    "gyro_magnitude_std": "rad/s",
    "gyro_dominant_frequency": "Hz",  # of the angular velocity about its main rotation axis
    "gyro_available": "1",  # 1 = measured, 0 = no gyroscope (the gyro features above are 0)
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_UNITS)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}

# Features that do not change when the device is rotated (acc and gyro rotated together): all but the
# per-axis ones (acc_x_mean, tilt_x, gyro_energy_x, ...).
INVARIANT_FEATURES: tuple[str, ...] = tuple(
    name for name in FEATURE_NAMES if not {"x", "y", "z"} & set(name.split("_"))
)

MIN_FREQUENCY = 0.3  # Hz; slower drifts are posture changes, not rhythm
MIN_LAG_SECONDS = 0.3  # s; autocorrelation search range (up to 3.3 cycles/s) ...
MAX_LAG_SECONDS = 2.5  # s; ... down to 0.4 cycles/s
MIN_PEAK_SPACING = 0.25  # s; two steps closer than this are one step (max 4 steps/s)
MIN_PEAK_HEIGHT = 0.6  # m/s^2 above the window mean; smaller bumps are not steps
TILT_SMOOTHING = 0.5  # s; moving average that keeps the slow tilt of the device and drops the impacts
_FFT_LENGTH = 512  # zero padding for a finer frequency grid than 1/T
_EPS = 1e-9


def validate_feature_input(X: np.ndarray, sampling_rate: float) -> np.ndarray:
    """Check windows `X` [N, T, 6] (m/s^2, rad/s) and return them as float64; raise ValueError otherwise."""
    X = np.asarray(X)
    if X.ndim != 3 or X.shape[2] != 6:
        raise ValueError(
            f"X must have shape [N, T, 6] (acc x,y,z m/s^2 incl. gravity, gyro x,y,z rad/s), got {X.shape}"
        )
    if X.shape[0] == 0:
        raise ValueError("X holds no windows (N = 0)")
    if not np.isfinite(sampling_rate) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive number in Hz, got {sampling_rate}")
    if X.shape[1] < 2 * int(np.ceil(MIN_PEAK_SPACING * sampling_rate)) + 2:
        raise ValueError(
            f"windows must hold at least 1 s of samples; T = {X.shape[1]} at {sampling_rate:g} Hz"
        )
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"X must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float64, copy=False)
    bad = ~np.isfinite(X)
    if bad.any():
        window = int(np.argwhere(bad)[0][0])
        raise ValueError(f"X contains NaN or inf values ({int(bad.sum())} entries, first in window {window})")
    median_magnitude = float(np.median(np.linalg.norm(X[..., :3], axis=-1)))
    if median_magnitude < 3.0:
        raise ValueError(
            f"the median accelerometer magnitude is {median_magnitude:.2f}, expected about 9.8 m/s^2 with "
            "gravity included; is X in units of g? Multiply the acc channels by 9.80665."
        )
    return X


def _dominant_frequency(signal: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Strongest frequency (Hz) of each row of `signal` [N, T] above MIN_FREQUENCY, and its energy share."""
    centred = signal - signal.mean(axis=1, keepdims=True)
    n_fft = max(_FFT_LENGTH, centred.shape[1])
    power = np.abs(np.fft.rfft(centred * np.hanning(centred.shape[1]), n=n_fft, axis=1)) ** 2
    frequencies = np.fft.rfftfreq(n_fft, d=1.0 / sampling_rate)
    band = frequencies >= MIN_FREQUENCY
    band_power = power[:, band]
    band_frequencies = frequencies[band]
    peak = band_power.argmax(axis=1)
    dominant = band_frequencies[peak]
    near_peak = np.abs(band_frequencies[None, :] - dominant[:, None]) <= 0.25
    share = (band_power * near_peak).sum(axis=1) / (band_power.sum(axis=1) + _EPS)
    flat = band_power.max(axis=1) <= _EPS  # no signal at all: no frequency
    return np.where(flat, 0.0, dominant), np.where(flat, 0.0, share)


def _autocorrelation_peak(signal: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Highest normalised autocorrelation per row for lags in [MIN_LAG, MAX_LAG] s, and that lag (s)."""
    n_samples = signal.shape[1]
    centred = signal - signal.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=2 * n_samples, axis=1)
    autocov = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :n_samples]
    # unbiased estimate (divide by the overlap length), normalised by the lag-0 value
    autocov = autocov / (n_samples - np.arange(n_samples))[None, :]
    autocorr = autocov / (autocov[:, :1] + _EPS)
    lo = max(1, int(round(MIN_LAG_SECONDS * sampling_rate)))
    hi = min(n_samples // 2, int(round(MAX_LAG_SECONDS * sampling_rate)))
    search = autocorr[:, lo : hi + 1]
    best = search.argmax(axis=1)
    peak = search[np.arange(len(search)), best]
    lag = (best + lo) / sampling_rate
    has_rhythm = peak > 0
    return np.where(has_rhythm, peak, 0.0), np.where(has_rhythm, lag, 0.0)


def _count_peaks(signal: np.ndarray, sampling_rate: float) -> np.ndarray:
    """Prominent local maxima per row: the maximum of a +-MIN_PEAK_SPACING neighbourhood, above a height."""
    smoothed = (signal[:, :-2] + signal[:, 1:-1] + signal[:, 2:]) / 3.0  # 3-sample moving average
    smoothed = smoothed - smoothed.mean(axis=1, keepdims=True)
    half = max(1, int(round(MIN_PEAK_SPACING * sampling_rate)))
    n_samples = smoothed.shape[1]
    padded = np.pad(smoothed, ((0, 0), (half, half)), constant_values=-np.inf)
    block_max = sliding_window_view(padded, half, axis=1).max(axis=2)  # max of padded[j : j + half]
    before = block_max[:, :n_samples]  # the `half` samples before each sample
    after = block_max[:, half + 1 : half + 1 + n_samples]  # the `half` samples after it
    height = np.maximum(MIN_PEAK_HEIGHT, 0.5 * smoothed.std(axis=1, keepdims=True))
    # strictly above what comes before, at least what comes after: a flat top of equal samples is one peak
    is_peak = (smoothed > before) & (smoothed >= after) & (smoothed > height)
    return is_peak.sum(axis=1).astype(np.float64)


def _standardised_moments(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skewness and excess kurtosis of each row (0 for flat rows)."""
    centred = signal - signal.mean(axis=1, keepdims=True)
    variance = (centred**2).mean(axis=1)
    flat = variance < 1e-6  # below ~1 mm/s^2 rms the shape of the signal is sensor noise
    std = np.sqrt(np.where(flat, 1.0, variance))
    z = centred / std[:, None]
    skewness = np.where(flat, 0.0, (z**3).mean(axis=1))
    kurtosis = np.where(flat, 0.0, (z**4).mean(axis=1) - 3.0)
    return skewness, kurtosis


def _main_axis_projection(vectors: np.ndarray) -> np.ndarray:
    """Project each window's vectors [N, T, 3] onto their principal axis (largest variance): [N, T]."""
    centred = vectors - vectors.mean(axis=1, keepdims=True)
    covariance = np.einsum("nti,ntj->nij", centred, centred)
    _, eigenvectors = np.linalg.eigh(covariance)
    return np.einsum("nti,ni->nt", centred, eigenvectors[:, :, -1])


def _tilt_swing(acc: np.ndarray, gravity: np.ndarray, sampling_rate: float) -> np.ndarray:
    """How far the device tilts during the window (deg): the 90th percentile angle between the acc vector,
    smoothed over TILT_SMOOTHING seconds so that impacts do not count, and the window's mean gravity."""
    length = max(1, int(round(TILT_SMOOTHING * sampling_rate)))
    cumulative = np.cumsum(np.pad(acc, ((0, 0), (1, 0), (0, 0))), axis=1)
    smoothed = (cumulative[:, length:] - cumulative[:, :-length]) / length
    angles = _angle_degrees(smoothed, gravity[:, None, :])
    return np.percentile(angles, 90, axis=1)


def _angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cosine = (a * b).sum(axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + _EPS)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def analyze_windows(X: np.ndarray, sampling_rate: float = 20.0, has_gyro: bool = True) -> np.ndarray:
    """Features of each window of `X` [N, T, 6]: float32 [N, len(FEATURE_NAMES)] in FEATURE_NAMES order."""
    X = validate_feature_input(X, sampling_rate)
    acc = X[..., :3]
    magnitude = np.linalg.norm(acc, axis=-1)
    columns = _acc_statistics(acc, magnitude)
    dynamic_magnitude = magnitude - columns["acc_mag_mean"][:, None]
    columns.update(_rhythm_features(acc, dynamic_magnitude, sampling_rate))
    gravity = acc.mean(axis=1)  # [N, 3] m/s^2
    columns.update(_gravity_aligned_features(acc, gravity, sampling_rate))
    columns.update(_orientation_features(acc, gravity, sampling_rate))
    columns.update(_gyro_features(X[..., 3:], has_gyro, sampling_rate))
    return np.stack([columns[name] for name in FEATURE_NAMES], axis=1).astype(np.float32)


def _acc_statistics(acc: np.ndarray, magnitude: np.ndarray) -> dict[str, np.ndarray]:
    """acc_mag_* of the |acc| `magnitude` [N, T] and acc_{x,y,z}_* of `acc` [N, T, 3] in device axes."""
    columns: dict[str, np.ndarray] = {}
    for statistic, function in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
        columns[f"acc_mag_{statistic}"] = function(magnitude, axis=1)
        per_axis = function(acc, axis=1)
        for axis_index, axis in enumerate("xyz"):
            columns[f"acc_{axis}_{statistic}"] = per_axis[:, axis_index]
    columns["acc_mag_range"] = columns["acc_mag_max"] - columns["acc_mag_min"]
    return columns


def _rhythm_features(
    acc: np.ndarray, dynamic_magnitude: np.ndarray, sampling_rate: float
) -> dict[str, np.ndarray]:
    """Spectrum, periodicity, steps and jerk: from the dynamic |acc| [N, T] (|acc| minus its window mean),
    and the jerk from `acc` [N, T, 3]."""
    columns: dict[str, np.ndarray] = {}
    columns["dominant_frequency"], columns["dominant_frequency_share"] = _dominant_frequency(
        dynamic_magnitude, sampling_rate
    )
    columns["spectral_energy"] = (dynamic_magnitude**2).mean(axis=1)
    columns["autocorrelation_peak"], columns["period"] = _autocorrelation_peak(
        dynamic_magnitude, sampling_rate
    )
    columns["peak_count"] = _count_peaks(dynamic_magnitude, sampling_rate)
    duration = acc.shape[1] / sampling_rate
    columns["step_rate"] = columns["peak_count"] / duration
    jerk = np.linalg.norm(np.diff(acc, axis=1), axis=-1) * sampling_rate
    columns["jerk_mean"] = jerk.mean(axis=1)
    columns["jerk_max"] = jerk.max(axis=1)
    return columns


def _gravity_unit(gravity: np.ndarray) -> np.ndarray:
    """The direction of each window's `gravity` [N, 3] (zero stays near zero)."""
    return gravity / (np.linalg.norm(gravity, axis=1)[:, None] + _EPS)


def _gravity_aligned_features(
    acc: np.ndarray, gravity: np.ndarray, sampling_rate: float
) -> dict[str, np.ndarray]:
    """dynamic_energy and the vertical_* and horizontal_* features: the dynamic acceleration (acc minus the
    window's `gravity`) split into its projection on gravity and the remainder."""
    columns: dict[str, np.ndarray] = {}
    dynamic = acc - gravity[:, None, :]
    columns["dynamic_energy"] = (dynamic**2).sum(axis=2).mean(axis=1)
    gravity_unit = _gravity_unit(gravity)
    vertical = np.einsum("nti,ni->nt", dynamic, gravity_unit)
    horizontal = dynamic - vertical[:, :, None] * gravity_unit[:, None, :]
    horizontal_norm = np.linalg.norm(horizontal, axis=-1)
    columns["vertical_std"] = vertical.std(axis=1)
    columns["vertical_skewness"], columns["vertical_kurtosis"] = _standardised_moments(vertical)
    columns["vertical_peak"] = vertical.max(axis=1)
    columns["vertical_peak_to_peak"] = columns["vertical_peak"] - vertical.min(axis=1)
    columns["vertical_jerk_max"] = np.abs(np.diff(vertical, axis=1)).max(axis=1) * sampling_rate
    columns["vertical_dominant_frequency"], _ = _dominant_frequency(vertical, sampling_rate)
    columns["vertical_peak_asymmetry"] = columns["vertical_peak"] / np.maximum(-vertical.min(axis=1), 0.05)
    vertical_std = np.maximum(columns["vertical_std"], 0.01)  # m/s^2; below that the ratio is noise
    columns["vertical_sharpness"] = (
        np.abs(np.diff(vertical, axis=1)).mean(axis=1) * sampling_rate / vertical_std
    )
    horizontal_energy = (horizontal_norm**2).mean(axis=1)
    columns["horizontal_rms"] = np.sqrt(horizontal_energy)
    columns["horizontal_max"] = horizontal_norm.max(axis=1)
    columns["vertical_horizontal_ratio"] = (vertical**2).mean(axis=1) / (horizontal_energy + 1e-6)
    return columns


def _orientation_features(
    acc: np.ndarray, gravity: np.ndarray, sampling_rate: float
) -> dict[str, np.ndarray]:
    """gravity_magnitude, tilt_{x,y,z} of the window's `gravity` [N, 3], and how much the device turns."""
    columns: dict[str, np.ndarray] = {"gravity_magnitude": np.linalg.norm(gravity, axis=1)}
    gravity_unit = _gravity_unit(gravity)
    for axis_index, axis in enumerate("xyz"):
        columns[f"tilt_{axis}"] = np.degrees(np.arccos(np.clip(gravity_unit[:, axis_index], -1.0, 1.0)))
    half = acc.shape[1] // 2
    columns["orientation_change"] = _angle_degrees(acc[:, :half].mean(axis=1), acc[:, half:].mean(axis=1))
    columns["tilt_swing"] = _tilt_swing(acc, gravity, sampling_rate)
    return columns


def _gyro_features(gyro: np.ndarray, has_gyro: bool, sampling_rate: float) -> dict[str, np.ndarray]:
    """The gyro_* features of `gyro` [N, T, 3] (rad/s); all 0 and gyro_available 0 without a gyroscope."""
    n_windows = len(gyro)
    if not has_gyro:
        return {name: np.zeros(n_windows) for name in FEATURE_NAMES if name.startswith("gyro_")}
    columns: dict[str, np.ndarray] = {}
    gyro_energy = (gyro**2).mean(axis=1)
    for axis_index, axis in enumerate("xyz"):
        columns[f"gyro_energy_{axis}"] = gyro_energy[:, axis_index]
    gyro_magnitude = np.linalg.norm(gyro, axis=-1)
    columns["gyro_magnitude_mean"] = gyro_magnitude.mean(axis=1)
    columns["gyro_magnitude_std"] = gyro_magnitude.std(axis=1)
    columns["gyro_dominant_frequency"], _ = _dominant_frequency(_main_axis_projection(gyro), sampling_rate)
    columns["gyro_available"] = np.ones(n_windows)
    return columns


def feature_dict(row: np.ndarray) -> dict[str, float]:
    """One feature row (as returned by analyze_windows) as name -> value."""
    row = np.asarray(row)
    if row.shape != (len(FEATURE_NAMES),):
        raise ValueError(
            f"a feature row must have shape ({len(FEATURE_NAMES)},) (FEATURE_NAMES), got {row.shape}"
        )
    return {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}
