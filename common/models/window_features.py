"""The signal analysis of data/features.py (`analyze_windows`) as a torch module a device can run.

`WindowFeatures(names=...)` maps raw windows x [B, T, C] (acc x,y,z in m/s^2 including gravity, then gyro
x,y,z in rad/s when C = 6) to float32 [B, len(names)], the named columns of `analyze_windows` at the model's
rate, so that the deployed sensor encoder takes the raw window alone: training keeps the numpy analysis
(computed once per window and cached), the exported model computes the same numbers inside, and
tests/test_window_features.py checks that the two agree.

Why it looks the way it does:
- float64 throughout, as numpy computes: the discrete features (argmax frequencies, peak counts, the
  autocorrelation lag) then take the same values as numpy's on (nearly) every window;
- the module must be TorchScript-scriptable and ONNX-exportable (ONNX Runtime implements most float64
  operators but neither FFT nor eigh nor float64 Acos):
  * the spectra are a matmul with a precomputed real DFT matrix (Hann window folded in, zero padding to
    n_fft = 512 as features.py does, only the bins >= MIN_FREQUENCY kept);
  * the autocorrelation is a direct sum over the 46 searched lags (gathered with index_select) instead of
    numpy's FFT of the zero-padded signal; the same numbers up to rounding;
  * the gyro's main rotation axis (the top eigenvector of a 3x3 covariance) comes from repeated squaring of
    the covariance, which converges to the projector onto that eigenvector, then two power steps;
  * arccos runs in float32 and is refined to float64 accuracy by Newton steps that use float64 sin/cos;
  * the 90th percentile is a sort plus numpy's linear interpolation, with its constants computed here;
- every constant is a non-persistent buffer, so a model's state_dict (the federated payload) is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from common.data.features import (
    _EPS,
    _FFT_LENGTH,
    FEATURE_INDEX,
    FEATURE_NAMES,
    MAX_LAG_SECONDS,
    MIN_FREQUENCY,
    MIN_LAG_SECONDS,
    MIN_PEAK_HEIGHT,
    MIN_PEAK_SPACING,
    TILT_SMOOTHING,
)

TILT_SWING_PERCENTILE = 90.0  # as data/features.py _tilt_swing
# Squarings of the normalised gyro covariance: after k of them the second eigenvalue's share is
# (lambda2 / lambda1) ** (2 ** k); 2 ** 24 ~ 1.7e7 separates eigenvalues 1e-6 apart.
_SQUARINGS = 24
# Normalising after every 4th squaring is enough (the top eigenvalue of a Frobenius-normalised PSD 3x3 is
# >= 1/sqrt(3), so 4 squarings leave it >= 3^-8); fewer ops matter: the loop was 1/4 of single-window time.
_SQUARINGS_PER_NORMALISATION = 4
_POWER_STEPS = 2  # plain power steps with the covariance itself, to polish the rounding of the squarings
_TINY = 1e-300  # guards divisions by an exactly zero norm (a gyro that reads 0): the result is then 0


def _norm(vectors: Tensor) -> Tensor:
    """Euclidean norm over the last axis, summed in numpy's order (x^2 + y^2 + z^2)."""
    return torch.sqrt((vectors * vectors).sum(dim=-1))


def _std(values: Tensor) -> Tensor:
    """Population standard deviation over axis 1 (numpy's default ddof = 0)."""
    centred = values - values.mean(dim=1, keepdim=True)
    return torch.sqrt((centred * centred).mean(dim=1))


def _arccos_degrees(cosine: Tensor) -> Tensor:
    """arccos (deg) of float64 cosines in [-1, 1] to float64 accuracy.

    ONNX Runtime has no float64 Acos, so: a float32 arccos, then Newton steps on the angle that use the exact
    sine sqrt((1 - c)(1 + c)) (accurate near c = +-1, where arccos is steep) and float64 sin/cos. The float32
    start is at most ~3.5e-4 rad off (near c = 1); each step cubes the error.
    """
    sine = torch.sqrt((1.0 - cosine) * (1.0 + cosine))
    angle = torch.acos(cosine.float()).double()
    for _ in range(2):
        # sin(true - angle) = sin(true) cos(angle) - cos(true) sin(angle)
        angle = angle + (sine * torch.cos(angle) - cosine * torch.sin(angle))
    return angle * (180.0 / math.pi)  # as np.degrees


def _angle_degrees(a: Tensor, b: Tensor, eps: float) -> Tensor:
    """Angle (deg) between vectors a and b [..., 3], as data/features.py _angle_degrees (its eps too)."""
    cosine = (a * b).sum(dim=-1) / (_norm(a) * _norm(b) + eps)
    return _arccos_degrees(cosine.clamp(-1.0, 1.0))


def _dft_matrix(window: int, sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """[T, 2K] float64: Hann-windowed cos and -sin of the rfft bins >= MIN_FREQUENCY, and their Hz [K]."""
    n_fft = max(_FFT_LENGTH, window)
    frequencies = np.fft.rfftfreq(n_fft, d=1.0 / sampling_rate)
    bins = np.flatnonzero(frequencies >= MIN_FREQUENCY)
    phase = (np.arange(window)[:, None] * bins[None, :]) % n_fft  # exact integers: no large angles
    angle = 2.0 * np.pi * phase / n_fft
    hann = np.hanning(window)[:, None]
    return np.concatenate([hann * np.cos(angle), -hann * np.sin(angle)], axis=1), frequencies[bins]


def _percentile_constants(count: int, percentile: float) -> tuple[int, int, float]:
    """Indices below and above numpy's linear-interpolation position, and the fraction between them."""
    position = (count - 1) * (percentile / 100.0)  # numpy's virtual index for method="linear"
    below = int(math.floor(position))
    return below, min(below + 1, count - 1), float(position - below)


def check_window_shape(x: Tensor, window: int, channels: int, reader: str) -> None:
    """A clear error for raw windows that are not [B, window, channels] (scriptable: it runs on devices)."""
    if x.dim() != 3 or x.shape[1] != window or x.shape[2] != channels:
        raise ValueError(f"{reader} expects x of shape [B, {window}, {channels}], got {list(x.shape)}")


class WindowFeatures(nn.Module):
    """analyze_windows' named columns, in torch: x [B, window, input_channels] raw -> float32 [B, F]."""

    def __init__(
        self,
        window: int = 120,
        input_channels: int = 6,
        sampling_rate: float = 20.0,
        names: tuple[str, ...] = FEATURE_NAMES,
    ) -> None:
        super().__init__()
        unknown = [name for name in names if name not in FEATURE_INDEX]
        if unknown:
            raise ValueError(f"unknown feature names {unknown}; see data/features.py FEATURE_NAMES")
        if input_channels not in (3, 6):
            raise ValueError(f"input_channels must be 6 (acc + gyro) or 3 (acc only), got {input_channels}")
        # The same bound as data/features.py validate_feature_input (1 s at least).
        if window < 2 * int(math.ceil(MIN_PEAK_SPACING * sampling_rate)) + 2:
            raise ValueError(
                f"windows must hold at least 1 s of samples; T = {window} at {sampling_rate:g} Hz"
            )
        self.window = window
        self.input_channels = input_channels
        self.has_gyro = input_channels == 6
        self.rate = float(sampling_rate)
        self.names = list(names)
        # Plain attributes: TorchScript cannot read module-level globals.
        self.eps = _EPS
        self.tiny = _TINY
        self.normalisations = _SQUARINGS // _SQUARINGS_PER_NORMALISATION
        self.squarings_per_normalisation = _SQUARINGS_PER_NORMALISATION
        self.power_steps = _POWER_STEPS
        self.min_peak_height = MIN_PEAK_HEIGHT
        self.duration = window / self.rate

        dft, band_frequencies = _dft_matrix(window, self.rate)
        self.num_bins = len(band_frequencies)
        self._constant("dft", torch.from_numpy(dft))
        self._constant("band_frequencies", torch.from_numpy(band_frequencies))

        # Autocorrelation lags as data/features.py _autocorrelation_peak: lag 0, then lo..hi.
        self.lag_lo = max(1, int(round(MIN_LAG_SECONDS * self.rate)))
        self.lag_hi = min(window // 2, int(round(MAX_LAG_SECONDS * self.rate)))
        lags = np.array([0, *range(self.lag_lo, self.lag_hi + 1)])
        self.num_lags = len(lags)
        lag_index = lags[:, None] + np.arange(window)[None, :]  # [lags, T] into the zero-padded signal
        self._constant("lag_index", torch.from_numpy(lag_index.reshape(-1)))
        self._constant("overlap", torch.from_numpy((window - lags).astype(np.float64)))

        # Peak neighbourhoods as data/features.py _count_peaks, as indices into the -inf padded signal.
        self.half = max(1, int(round(MIN_PEAK_SPACING * self.rate)))
        smoothed = window - 2
        own = np.arange(smoothed)[:, None] + self.half
        offsets = np.arange(1, self.half + 1)[None, :]
        self._constant("before_index", torch.from_numpy((own - offsets).reshape(-1)))
        self._constant("after_index", torch.from_numpy((own + offsets).reshape(-1)))

        self.tilt_length = max(1, int(round(TILT_SMOOTHING * self.rate)))
        self.swing_lo, self.swing_hi, self.swing_fraction = _percentile_constants(
            window - self.tilt_length + 1, TILT_SWING_PERCENTILE
        )

    def _constant(self, name: str, value: Tensor) -> None:
        # Not persistent: rebuilt from the config, so state_dicts (the federated payload) do not change.
        self.register_buffer(name, value, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, window, input_channels] in m/s^2 and rad/s -> the named features, float32 [B, F]."""
        check_window_shape(x, self.window, self.input_channels, "WindowFeatures")
        # window_analysis reads float32 windows: round to float32 first, then compute in float64.
        x = x.float().double()
        acc = x[:, :, 0:3]
        columns: dict[str, Tensor] = {}
        magnitude = _norm(acc)
        dynamic_magnitude = self._acc_features(acc, magnitude, columns)
        vertical = self._gravity_features(acc, columns)
        signals = [dynamic_magnitude, vertical]
        if self.has_gyro:
            signals.append(self._gyro_features(x[:, :, 3:6], columns))
        frequencies, shares = self._dominant_frequency(torch.stack(signals, dim=1))
        columns["dominant_frequency"] = frequencies[:, 0]
        columns["dominant_frequency_share"] = shares[:, 0]
        columns["vertical_dominant_frequency"] = frequencies[:, 1]
        if self.has_gyro:
            columns["gyro_available"] = torch.ones_like(magnitude[:, 0])
            columns["gyro_dominant_frequency"] = frequencies[:, 2]
        else:  # a gyro-less device: its gyro features are 0, as analyze_windows(has_gyro=False) gives them
            zero = torch.zeros_like(magnitude[:, 0])
            for axis in ["x", "y", "z"]:
                columns["gyro_energy_" + axis] = zero
            for name in ["magnitude_mean", "magnitude_std", "dominant_frequency", "available"]:
                columns["gyro_" + name] = zero
        return torch.stack([columns[name] for name in self.names], dim=1).float()

    def _acc_features(self, acc: Tensor, magnitude: Tensor, columns: dict[str, Tensor]) -> Tensor:
        """|acc| statistics, per-axis statistics, rhythm and jerk; returns the dynamic |acc| [B, T]."""
        mean = magnitude.mean(dim=1)
        columns["acc_mag_mean"] = mean
        columns["acc_mag_std"] = _std(magnitude)
        columns["acc_mag_min"] = magnitude.amin(dim=1)
        columns["acc_mag_max"] = magnitude.amax(dim=1)
        columns["acc_mag_range"] = columns["acc_mag_max"] - columns["acc_mag_min"]
        axis_mean = acc.mean(dim=1)
        centred = acc - axis_mean.unsqueeze(1)
        axis_std = torch.sqrt((centred * centred).mean(dim=1))
        axis_min = acc.amin(dim=1)
        axis_max = acc.amax(dim=1)
        for index, axis in enumerate(["x", "y", "z"]):
            columns["acc_" + axis + "_mean"] = axis_mean[:, index]
            columns["acc_" + axis + "_std"] = axis_std[:, index]
            columns["acc_" + axis + "_min"] = axis_min[:, index]
            columns["acc_" + axis + "_max"] = axis_max[:, index]
        dynamic_magnitude = magnitude - mean.unsqueeze(1)
        columns["spectral_energy"] = (dynamic_magnitude * dynamic_magnitude).mean(dim=1)
        dynamic = acc - axis_mean.unsqueeze(1)
        columns["dynamic_energy"] = (dynamic * dynamic).sum(dim=2).mean(dim=1)
        peak, lag = self._autocorrelation_peak(dynamic_magnitude)
        columns["autocorrelation_peak"] = peak
        columns["period"] = lag
        columns["peak_count"] = self._count_peaks(dynamic_magnitude)
        columns["step_rate"] = columns["peak_count"] / self.duration
        jerk = _norm(acc[:, 1:] - acc[:, :-1]) * self.rate
        columns["jerk_mean"] = jerk.mean(dim=1)
        columns["jerk_max"] = jerk.amax(dim=1)
        return dynamic_magnitude

    def _gravity_features(self, acc: Tensor, columns: dict[str, Tensor]) -> Tensor:
        """Components along and across gravity, tilt and its stability; returns the vertical signal [B, T]."""
        gravity = acc.mean(dim=1)
        dynamic = acc - gravity.unsqueeze(1)
        gravity_magnitude = _norm(gravity)
        unit = gravity / (gravity_magnitude.unsqueeze(1) + self.eps)
        vertical = (dynamic * unit.unsqueeze(1)).sum(dim=2)
        horizontal = dynamic - vertical.unsqueeze(2) * unit.unsqueeze(1)
        horizontal_norm = _norm(horizontal)
        lowest = vertical.amin(dim=1)
        peak = vertical.amax(dim=1)
        step = (vertical[:, 1:] - vertical[:, :-1]).abs()
        vertical_std = _std(vertical)
        columns["vertical_std"] = vertical_std
        skewness, kurtosis = self._standardised_moments(vertical)
        columns["vertical_skewness"] = skewness
        columns["vertical_kurtosis"] = kurtosis
        columns["vertical_peak"] = peak
        columns["vertical_peak_to_peak"] = peak - lowest
        columns["vertical_jerk_max"] = step.amax(dim=1) * self.rate
        columns["vertical_peak_asymmetry"] = peak / torch.clamp_min(-lowest, 0.05)
        columns["vertical_sharpness"] = step.mean(dim=1) * self.rate / torch.clamp_min(vertical_std, 0.01)
        horizontal_energy = (horizontal_norm * horizontal_norm).mean(dim=1)
        columns["horizontal_rms"] = torch.sqrt(horizontal_energy)
        columns["horizontal_max"] = horizontal_norm.amax(dim=1)
        columns["vertical_horizontal_ratio"] = (vertical * vertical).mean(dim=1) / (horizontal_energy + 1e-6)
        columns["gravity_magnitude"] = gravity_magnitude
        tilt = _arccos_degrees(unit.clamp(-1.0, 1.0))
        for index, axis in enumerate(["x", "y", "z"]):
            columns["tilt_" + axis] = tilt[:, index]
        half = self.window // 2
        first, second = acc[:, :half].mean(dim=1), acc[:, half:].mean(dim=1)
        columns["orientation_change"] = _angle_degrees(first, second, self.eps)
        columns["tilt_swing"] = self._tilt_swing(acc, gravity)
        return vertical

    def _gyro_features(self, gyro: Tensor, columns: dict[str, Tensor]) -> Tensor:
        """Gyro energy and magnitude statistics; returns the angular velocity about the main axis [B, T]."""
        energy = (gyro * gyro).mean(dim=1)
        for index, axis in enumerate(["x", "y", "z"]):
            columns["gyro_energy_" + axis] = energy[:, index]
        magnitude = _norm(gyro)
        columns["gyro_magnitude_mean"] = magnitude.mean(dim=1)
        columns["gyro_magnitude_std"] = _std(magnitude)
        centred = gyro - gyro.mean(dim=1, keepdim=True)
        covariance = torch.matmul(centred.transpose(1, 2), centred)  # [B, 3, 3]
        axis = self._principal_axis(covariance)
        return (centred * axis.unsqueeze(1)).sum(dim=2)

    def _principal_axis(self, covariance: Tensor) -> Tensor:
        """Unit eigenvector [B, 3] of the largest eigenvalue of symmetric PSD matrices [B, 3, 3] (sign free:
        only the projection's spectrum is used). Replaces np.linalg.eigh, which neither exports nor scripts
        to ONNX: C^(2^k), normalised at each squaring, tends to lambda1^(2^k) v v^T, whose largest column
        is along v; power steps with C then remove the rounding the squarings accumulated."""
        matrix = covariance / torch.clamp_min(_frobenius(covariance), self.tiny)
        for _ in range(self.normalisations):
            for _ in range(self.squarings_per_normalisation):
                matrix = torch.matmul(matrix, matrix)
            matrix = matrix / torch.clamp_min(_frobenius(matrix), self.tiny)
        column_norms = _norm(matrix.transpose(1, 2))  # [B, 3]: the norm of each column
        best = torch.argmax(column_norms, dim=1)
        vector = torch.gather(matrix, 2, best.view(-1, 1, 1).expand(-1, 3, 1))  # [B, 3, 1]
        for _ in range(self.power_steps):
            vector = torch.matmul(covariance, vector)
            vector = vector / torch.clamp_min(_norm(vector.transpose(1, 2)).unsqueeze(1), self.tiny)
        return vector.squeeze(2)

    def _dominant_frequency(self, signals: Tensor) -> tuple[Tensor, Tensor]:
        """Strongest frequency (Hz) above MIN_FREQUENCY of each signal [B, S, T], and its energy share."""
        centred = signals - signals.mean(dim=2, keepdim=True)
        spectrum = torch.matmul(centred, self.dft)  # [B, S, 2K]: real parts, then imaginary parts
        real = spectrum[:, :, : self.num_bins]
        imaginary = spectrum[:, :, self.num_bins :]
        power = real * real + imaginary * imaginary
        peak = torch.argmax(power, dim=2)
        dominant = self.band_frequencies[peak]
        near_peak = (self.band_frequencies - dominant.unsqueeze(2)).abs() <= 0.25
        share = (power * near_peak.double()).sum(dim=2) / (power.sum(dim=2) + self.eps)
        flat = power.amax(dim=2) <= self.eps  # no signal at all: no frequency
        zero = torch.zeros_like(share)
        return torch.where(flat, zero, dominant), torch.where(flat, zero, share)

    def _autocorrelation_peak(self, signal: Tensor) -> tuple[Tensor, Tensor]:
        """Highest normalised autocorrelation of each row [B, T] for the searched lags, and that lag (s)."""
        centred = signal - signal.mean(dim=1, keepdim=True)
        padded = functional.pad(centred, [0, self.lag_hi])  # zeros beyond the end: a linear correlation
        shifted = torch.index_select(padded, 1, self.lag_index).reshape(-1, self.num_lags, self.window)
        autocov = (shifted * centred.unsqueeze(1)).sum(dim=2) / self.overlap  # unbiased, as numpy's
        autocorr = autocov[:, 1:] / (autocov[:, :1] + self.eps)
        best = torch.argmax(autocorr, dim=1)
        peak = torch.gather(autocorr, 1, best.unsqueeze(1)).squeeze(1)
        lag = (best.double() + self.lag_lo) / self.rate
        has_rhythm = peak > 0
        zero = torch.zeros_like(peak)
        return torch.where(has_rhythm, peak, zero), torch.where(has_rhythm, lag, zero)

    def _count_peaks(self, signal: Tensor) -> Tensor:
        """Prominent local maxima per row [B, T], as data/features.py _count_peaks."""
        smoothed = (signal[:, :-2] + signal[:, 1:-1] + signal[:, 2:]) / 3.0
        smoothed = smoothed - smoothed.mean(dim=1, keepdim=True)
        count = smoothed.shape[1]
        padded = functional.pad(smoothed, [self.half, self.half], value=-math.inf)
        before = torch.index_select(padded, 1, self.before_index).reshape(-1, count, self.half).amax(dim=2)
        after = torch.index_select(padded, 1, self.after_index).reshape(-1, count, self.half).amax(dim=2)
        height = torch.clamp_min(0.5 * _std(smoothed), self.min_peak_height).unsqueeze(1)
        is_peak = (smoothed > before) & (smoothed >= after) & (smoothed > height)
        return is_peak.double().sum(dim=1)

    def _standardised_moments(self, signal: Tensor) -> tuple[Tensor, Tensor]:
        """Skewness and excess kurtosis of each row [B, T] (0 for rows flatter than ~1 mm/s^2 rms)."""
        centred = signal - signal.mean(dim=1, keepdim=True)
        variance = (centred * centred).mean(dim=1)
        flat = variance < 1e-6
        std = torch.sqrt(torch.where(flat, torch.ones_like(variance), variance))
        z = centred / std.unsqueeze(1)
        zero = torch.zeros_like(variance)
        skewness = torch.where(flat, zero, (z * z * z).mean(dim=1))
        kurtosis = torch.where(flat, zero, (z * z * z * z).mean(dim=1) - 3.0)
        return skewness, kurtosis

    def _tilt_swing(self, acc: Tensor, gravity: Tensor) -> Tensor:
        """90th percentile angle (deg) between the TILT_SMOOTHING-smoothed acc and the mean gravity."""
        cumulative = torch.cumsum(functional.pad(acc, [0, 0, 1, 0]), dim=1)
        smoothed = (cumulative[:, self.tilt_length :] - cumulative[:, : -self.tilt_length]) / self.tilt_length
        angles = torch.sort(_angle_degrees(smoothed, gravity.unsqueeze(1), self.eps), dim=1).values
        below = angles[:, self.swing_lo]
        difference = angles[:, self.swing_hi] - below
        if self.swing_fraction >= 0.5:  # numpy's _lerp, which interpolates from the nearer end
            return angles[:, self.swing_hi] - difference * (1.0 - self.swing_fraction)
        return below + difference * self.swing_fraction


def _frobenius(matrices: Tensor) -> Tensor:
    """Frobenius norms of [B, 3, 3] matrices as [B, 1, 1]."""
    return torch.sqrt((matrices * matrices).sum(dim=(1, 2), keepdim=True))
