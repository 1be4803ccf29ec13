"""Sensor encoder f: raw IMU windows -> the text encoder's language space (LanHAR section 3.5.1).

Pipeline: normalise the window into input channels (see `input_frame` below) -> cut the window into
non-overlapping patches of `patch_size` samples -> Linear + LayerNorm -> sinusoidal positions -> Transformer
encoder -> mean over patches -> Linear to `out_dim`.

Patches instead of one token per sample: 6 tokens of 1 s instead of 120 sample tokens cut the compute 20-fold.
For a single window on one CPU thread the time is then dominated by reading the weights (a [6, 384] input
makes every matmul a thin one), so the defaults also keep the parameter count down with a narrow feed-forward
(ff_dim = d_model). Measured (frozen TorchScript, 1 thread, a shared 2-core EPYC under load ~3): patch 20 /
ff 384: 11.5 MB, median 1.45 ms, p95 2.0 ms; patch 20 / ff 768: 15.1 MB, 1.96 ms; patch 10 / ff 768:
15.0 MB, 2.6 ms. A quick stage-2 probe (UCI -> held-out users and -> DSADS torso, 5 classes) did not
separate patch 20 / ff 384, patch 20 / ff 768 and patch 10 / ff 384 (accuracy 0.95-0.96 and 0.37-0.43).

Pre-norm layers (norm_first=True, plus a final LayerNorm) rather than the paper's post-norm: pre-norm trains
stably from scratch at a high learning rate without a warm-up schedule, and federated clients restart a fresh
optimizer for a few local epochs every round, so there is no room for a long warm-up.

Input frame. A device's axes are arbitrary: the same walk reads differently on a waist phone, a chest strap
and a phone upside down in a pocket, and the rules interpreter deliberately describes a window by quantities
that do not depend on those axes (magnitudes, components along and across gravity). With
`input_frame="device"` the encoder sees acc x,y,z (g), gyro x,y,z (rad/s) and the two magnitudes, and has to
learn that invariance from a few source devices; across data sets it does not. With `input_frame="gravity"`
(the default) it sees the window in the frame the interpreter reasons in: gravity is estimated as the window
mean of the accelerometer (as in data/features.py), and per sample the encoder gets the dynamic acceleration
along gravity (vertical, signed) and across it (horizontal, magnitude), |acc|, the angular velocity about the
vertical (signed) and about the horizontal plane (magnitude), and |gyro|. Any fixed rotation of the device
leaves these six channels unchanged (tests/test_sensor_encoder.py checks it).

Analysis token (`analysis_token`, on by default). The text targets are written from the signal analysis of
data/features.py (step rate, periodicity, vertical impacts, gravity stability...); six 1-s patch tokens must
rediscover those window-level quantities from a few source devices, and across data sets they underfit them
(issue #11: the sensor encoder trails the text path on its own training windows). With the token on, the
model reads that analysis, `analysis` [B, F] (`window_analysis`, numpy, passed in by training, which caches
it per window; or, when forward gets None, computed from x by `WindowFeatures`, the same numbers in torch,
which is what the exported model does: one raw window in, see models/export.py), squashes it with
sign(f) log(1 + |f|) (the features span 1e-3 to 1e3 in their units), maps it with a 2-layer MLP to one more
token and appends it to the patch tokens. The features it reads follow the input frame: the rotation-invariant
ones (`INVARIANT_FEATURES`) in the gravity frame, so the model stays invariant to how the device is worn, and
all of them in the device frame. Measured on the 12-pair matrix:
docs/results/ablation-analysis-token/README.md (the `no_analysis_token` ablation row). Cost on a device:
0.16 M parameters (frozen TorchScript 12.1 MB instead of 11.5 MB) and the analysis of the window; one window
end to end with the numpy analysis (`export.measure_latency`, 1 thread, the 2-core machine under load ~3) took
6.0 ms median against 3.4 ms without the token. The analysis now runs inside the exported model (issue
#34); its latency: docs/results/speed/README.md, "Analysis inside the model".

The module is TorchScript-scriptable (`torch.jit.script(model)`); shape checks survive scripting.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from common.base.device import autocast, module_device
from common.data.features import FEATURE_INDEX, FEATURE_NAMES, INVARIANT_FEATURES, analyze_windows
from common.data.windows import MODEL_RATE_HZ
from common.models.window_features import WindowFeatures, check_window_shape

STANDARD_GRAVITY = 9.80665  # m/s^2 per g
INPUT_FRAMES = ("gravity", "device")
# Switches removed after the two-seed rule turned them down (docs/method.md, "Removed switches"), with the
# value the code still implements: checkpoints written while they existed load when they hold that value.
REMOVED_FIELDS = {"trunk_equivalent": False, "acc_level": True}


@dataclass
class SensorEncoderConfig:
    input_channels: int = 6  # acc x,y,z (m/s^2, incl. gravity) + gyro x,y,z (rad/s); 3 = accelerometer only
    window: int = 120  # samples per window at 20 Hz (6 s)
    patch_size: int = 20  # samples per token: 1 s, 6 tokens per window (latency, see module docstring)
    # = MiniLM hidden size; the paper uses 768 = bert-base. 128 (ff 256, 0.48 M weights) gained accuracy at
    # seed 0 and fell just short of its rule on new activities (docs/results/speed): not the default yet.
    d_model: int = 384
    num_layers: int = 3  # paper: 3
    num_heads: int = 2  # paper: 2
    ff_dim: int = 384  # 1 x d_model, not the usual 4x: one window's latency is bound by reading the weights
    dropout: float = 0.1
    out_dim: int = 384  # must equal the text encoder's dim (the targets Z live there)
    add_magnitude_channels: bool = True  # "device" frame: add |acc| and |gyro| (orientation invariant)
    # "gravity": rotation-invariant channels relative to the window's gravity (module docstring); "device":
    # the raw axes. Chosen a priori (physics of the signal, see docstring), confirmed by the ablation.
    input_frame: str = "gravity"
    # One more token carrying the window's signal analysis (module docstring); it needs `analysis` inputs.
    analysis_token: bool = True
    # The windows arrive turned into their wearer's walking frame (common/data/posture.py): the analysis token
    # also reads tilt_z, there the body segment's inclination from its walking posture, which no
    # rotation-invariant quantity carries (sitting, standing and lying read alike without it).
    walking_frame: bool = False

    def __post_init__(self) -> None:
        if self.input_channels not in (3, 6):
            raise ValueError(
                f"input_channels must be 6 (acc + gyro) or 3 (acc only), got {self.input_channels}"
            )
        for name in ("window", "patch_size", "d_model", "num_layers", "num_heads", "ff_dim", "out_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"SensorEncoderConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.window % self.patch_size != 0:
            raise ValueError(f"window ({self.window}) must be a multiple of patch_size ({self.patch_size})")
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.input_frame not in INPUT_FRAMES:
            raise ValueError(f"input_frame must be one of {INPUT_FRAMES}, got {self.input_frame!r}")
        if self.walking_frame and (self.input_frame != "gravity" or not self.analysis_token):
            raise ValueError(
                "walking_frame adds the inclination to the analysis token of the gravity frame: it needs "
                "input_frame='gravity' and analysis_token=True"
            )

    @property
    def num_patches(self) -> int:
        return self.window // self.patch_size

    @property
    def feature_channels(self) -> int:
        """Channels after normalisation: 3 per sensor (gravity frame); raw + magnitudes (device frame)."""
        if self.input_frame == "gravity":
            return self.input_channels
        magnitudes = self.input_channels // 3 if self.add_magnitude_channels else 0
        return self.input_channels + magnitudes

    @property
    def analysis_features(self) -> tuple[str, ...]:
        """The data/features.py columns the analysis token reads (none when it is off)."""
        if not self.analysis_token:
            return ()
        if self.input_frame == "device":
            return FEATURE_NAMES
        return (*INVARIANT_FEATURES, "tilt_z") if self.walking_frame else INVARIANT_FEATURES

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SensorEncoderConfig:
        for name, kept in REMOVED_FIELDS.items():
            if values.get(name, kept) != kept:
                raise ValueError(
                    f"this checkpoint was trained with {name}={values[name]!r}, a switch since removed "
                    f"(only {name}={kept!r} is implemented)"
                )
        values = {name: value for name, value in values.items() if name not in REMOVED_FIELDS}
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SensorEncoderConfig fields: {unknown}")
        # Checkpoints written before input_frame / analysis_token existed: device axes, no analysis token.
        return cls(**{"input_frame": "device", "analysis_token": False, **values})


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """The fixed sin/cos table of Vaswani et al., [length, dim]."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


def window_analysis(X: np.ndarray, config: SensorEncoderConfig) -> np.ndarray:
    """The analysis input of an analysis-token encoder: float32 [N, len(config.analysis_features)].

    X [N, window, input_channels] in raw units at the model's 20 Hz; the gyro features are those of a
    gyro-less device when the encoder reads the accelerometer only.
    """
    check_windows(X, config)
    X = np.asarray(X, dtype=np.float32)
    if config.input_channels == 3:
        X = np.concatenate([X, np.zeros_like(X)], axis=2)
    features = analyze_windows(X, sampling_rate=MODEL_RATE_HZ, has_gyro=config.input_channels == 6)
    columns = [FEATURE_INDEX[name] for name in config.analysis_features]
    analysis = features[:, columns]
    if config.walking_frame:
        # Experiment (docs/results/walking-frame/inclination-bins): the token reads the inclination only as
        # the rules interpreter's three levels (rules.INCLINATION_BINS: upright < 30 <= tilted < 60 deg <=
        # horizontal), each as its lower edge, not the raw angle, whose meaning depends on the segment.
        tilt = config.analysis_features.index("tilt_z")
        analysis[:, tilt] = np.digitize(analysis[:, tilt], (30.0, 60.0)) * 30.0
    return np.ascontiguousarray(analysis, dtype=np.float32)


def _along_and_across(vectors: Tensor, unit: Tensor) -> tuple[Tensor, Tensor]:
    """Signed component of `vectors` [B, T, 3] along `unit` [B, 1, 3] and the norm of the rest ([B, T, 1])."""
    along = (vectors * unit).sum(dim=-1, keepdim=True)
    across = torch.linalg.vector_norm(vectors - along * unit, dim=-1, keepdim=True)
    return along, across


def gravity_frame_channels(acc: Tensor, gyro: Tensor | None) -> Tensor:
    """Rotation-invariant channels of windows: acc [B, T, 3] in g, gyro [B, T, 3] in rad/s or None.

    Gravity = the window mean of acc. Returns [B, T, 3] (acc only) or [B, T, 6]: dynamic acc along gravity,
    its norm across gravity, |acc|, then gyro about the vertical, its norm across it, |gyro|.
    """
    gravity = acc.mean(dim=1, keepdim=True)
    gravity_norm = torch.linalg.vector_norm(gravity, dim=-1, keepdim=True)
    vertical = gravity / gravity_norm.clamp_min(1e-6)
    acc_along, acc_across = _along_and_across(acc - gravity, vertical)
    magnitude = torch.linalg.vector_norm(acc, dim=-1, keepdim=True)
    parts = [acc_along, acc_across, magnitude]
    if gyro is not None:
        gyro_along, gyro_across = _along_and_across(gyro, vertical)
        parts.extend([gyro_along, gyro_across, torch.linalg.vector_norm(gyro, dim=-1, keepdim=True)])
    return torch.cat(parts, dim=-1)


class SensorEncoder(nn.Module):
    def __init__(self, config: SensorEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else SensorEncoderConfig()
        config = self.config
        # Plain attributes so TorchScript sees constants rather than a dataclass.
        self.input_channels = config.input_channels
        self.window = config.window
        self.patch_size = config.patch_size
        self.num_patches = config.num_patches
        self.add_magnitude_channels = config.add_magnitude_channels
        self.gravity_frame = config.input_frame == "gravity"
        self.gravity = STANDARD_GRAVITY

        self.patch_projection = nn.Linear(config.patch_size * config.feature_channels, config.d_model)
        self.patch_norm = nn.LayerNorm(config.d_model)
        # Not persistent: it is recomputed from the config, so state_dicts (the federated payload) omit it.
        self.register_buffer(
            "positions",
            sinusoidal_positions(config.num_patches, config.d_model).unsqueeze(0),
            persistent=False,
        )
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.num_heads,
            dim_feedforward=config.ff_dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.num_layers, norm=nn.LayerNorm(config.d_model), enable_nested_tensor=False
        )
        self.output_projection = nn.Linear(config.d_model, config.out_dim)
        self._init_weights()
        # Built last, so the other weights draw the same random numbers with the token on or off.
        self.analysis_size = len(config.analysis_features)
        self.analysis_projection: nn.Module | None = None
        # The torch twin of window_analysis, used when forward gets no analysis (the deployed model: raw
        # window in). No parameters, only non-persistent buffers: state_dicts and random draws unchanged.
        self.window_features: WindowFeatures | None = None
        if config.analysis_token:
            self.window_features = WindowFeatures(
                config.window, config.input_channels, MODEL_RATE_HZ, config.analysis_features
            )
            self.analysis_projection = nn.Sequential(
                nn.Linear(self.analysis_size, config.d_model),
                nn.GELU(),
                nn.Linear(config.d_model, config.d_model),
                nn.LayerNorm(config.d_model),
            )

    def _init_weights(self) -> None:
        # nn.TransformerEncoder deep-copies one layer, so all layers would start identical; draw each layer's
        # matrices independently (Xavier, as nn.Transformer does).
        for name, parameter in self.encoder.named_parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
            elif name.endswith("bias"):
                nn.init.zeros_(parameter)

    def normalize(self, x: Tensor) -> Tensor:
        """Raw units -> model input channels [B, T, feature_channels] (acc in g, gyro in rad/s)."""
        acc = x[:, :, 0:3] / self.gravity
        if self.gravity_frame:
            return gravity_frame_channels(acc, x[:, :, 3:6] if self.input_channels == 6 else None)
        parts = [acc]
        if self.input_channels == 6:
            parts.append(x[:, :, 3:6])
        if self.add_magnitude_channels:
            parts.append(torch.linalg.vector_norm(acc, dim=-1, keepdim=True))
            if self.input_channels == 6:
                parts.append(torch.linalg.vector_norm(x[:, :, 3:6], dim=-1, keepdim=True))
        return torch.cat(parts, dim=-1)

    def forward(self, x: Tensor, analysis: Tensor | None = None) -> Tensor:
        """x [B, window, input_channels] in raw units (m/s^2, rad/s) -> embeddings [B, out_dim] (not
        normalised). With the analysis token, `analysis` [B, F] is the window's signal analysis: training
        passes the cached numpy one (`window_analysis`); None computes it here (WindowFeatures, same
        values)."""
        tokens = self.encoder(self.dropout(self.input_tokens(x, analysis)))
        return self.output_projection(tokens.mean(dim=1))

    def input_tokens(self, x: Tensor, analysis: Tensor | None = None) -> Tensor:
        """The transformer's input [B, tokens, d_model]: the window's patches (and its analysis token)."""
        check_window_shape(x, self.window, self.input_channels, "SensorEncoder")
        batch = x.shape[0]
        features = self.normalize(x.float())
        patches = features.reshape(batch, self.num_patches, -1)
        tokens = self.patch_norm(self.patch_projection(patches)) + self.positions
        projection = self.analysis_projection
        if projection is not None:
            if analysis is None:
                window_features = self.window_features
                assert window_features is not None  # built together with analysis_projection
                analysis = window_features(x)
            if analysis.dim() != 2 or analysis.shape[0] != batch:
                raise ValueError(
                    "this SensorEncoder has an analysis token: pass analysis [B, "
                    + str(self.analysis_size)
                    + "] from window_analysis(x) as its second input, or None to compute it in the model"
                )
            if analysis.shape[1] != self.analysis_size:
                columns = str(analysis.shape[1])
                raise ValueError("analysis must have " + str(self.analysis_size) + " columns, got " + columns)
            analysis = analysis.float()
            squashed = torch.sign(analysis) * torch.log1p(analysis.abs())
            tokens = torch.cat([tokens, projection(squashed).unsqueeze(1)], dim=1)
        return tokens

    def frozen_bottom_layers(self) -> int:
        """How many transformer layers from the bottom get no gradient, with everything below them (see
        `train_only`): their output for a window stays fixed while the layers above train. 0 when any input
        weight trains."""
        inputs = [p for name, p in self.named_parameters() if not name.startswith(("encoder.", "output_"))]
        if any(parameter.requires_grad for parameter in inputs):
            return 0
        frozen = 0
        for layer in self.encoder.layers:
            if any(parameter.requires_grad for parameter in layer.parameters()):
                break
            frozen += 1
        return frozen

    def bottom_states(self, x: Tensor, analysis: Tensor | None, layers: int) -> Tensor:
        """The token states [B, tokens, d_model] after the bottom `layers` transformer layers; with
        `top_embeddings` they compute `forward` (equal in eval mode, where dropout is off)."""
        tokens = self.dropout(self.input_tokens(x, analysis))
        for layer in self.encoder.layers[:layers]:
            tokens = layer(tokens)
        return tokens

    def top_embeddings(self, states: Tensor, layers_below: int) -> Tensor:
        """Embeddings [B, out_dim] from the token states after the bottom `layers_below` layers."""
        for layer in self.encoder.layers[layers_below:]:
            states = layer(states)
        return self.output_projection(self.encoder.norm(states).mean(dim=1))

    def top_layer_names(self, layers: int) -> list[str]:
        """State-dict names of the top `layers` transformer layers and of what lies above them (final norm,
        output projection); all names for layers = 0. A federated client trains and exchanges only these
        (run config client-train-layers): the lower layers and input embeddings stay as pre-trained."""
        names = list(self.state_dict())
        if layers == 0:
            return names
        if not 0 < layers <= self.config.num_layers:
            raise ValueError(f"top layers: {layers} asked, the encoder has {self.config.num_layers}")
        total = self.config.num_layers
        top = tuple(f"encoder.layers.{i}." for i in range(total - layers, total))
        return [name for name in names if name.startswith((*top, "encoder.norm.", "output_projection."))]

    def train_only(self, names: list[str]) -> None:
        """Freeze every parameter not in `names` (no gradient: the optimiser leaves it as it is)."""
        chosen = set(names)
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name in chosen)

    def save(self, path: str | Path) -> None:
        """A plain checkpoint (config + weights) for resuming training; models/export.py is for deployment."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"config": self.config.to_dict(), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | Path) -> SensorEncoder:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(checkpoint, dict) or "config" not in checkpoint or "state_dict" not in checkpoint:
            raise ValueError(f"{path} is not a SensorEncoder checkpoint (needs 'config' and 'state_dict')")
        model = cls(SensorEncoderConfig.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
        return model


def check_windows(X: np.ndarray | Tensor, config: SensorEncoderConfig, field: str = "X") -> None:
    """Clear errors for windows the encoder cannot take: rank, window length, channels, NaN/inf."""
    shape = tuple(X.shape)
    expected = f"[N, {config.window}, {config.input_channels}]"
    if len(shape) != 3 or shape[1] != config.window or shape[2] != config.input_channels:
        raise ValueError(f"{field} must have shape {expected} (acc m/s^2 + gyro rad/s), got {list(shape)}")
    values = X if isinstance(X, Tensor) else torch.from_numpy(np.asarray(X))
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{field} contains NaN or inf values")


@torch.no_grad()
def encode_windows(model: nn.Module, X: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """L2-normalised float32 embeddings [N, out_dim] of windows X [N, T, C], in eval mode."""
    analysis_token = isinstance(model, SensorEncoder) and model.config.analysis_token
    if isinstance(model, SensorEncoder):
        check_windows(X, model.config)
    was_training = model.training
    model.eval()
    device = module_device(model)
    outputs = []
    try:
        for start in range(0, len(X), batch_size):
            windows = np.asarray(X[start : start + batch_size], dtype=np.float32)
            chunk = torch.as_tensor(windows).to(device)
            with autocast(device):
                if analysis_token:
                    analysis = torch.from_numpy(window_analysis(windows, model.config)).to(device)
                    embeddings = model(chunk, analysis)
                else:
                    embeddings = model(chunk)
            outputs.append(nn.functional.normalize(embeddings.float(), dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    if not outputs:
        out_dim = model.config.out_dim if isinstance(model, SensorEncoder) else 0
        return np.zeros((0, out_dim), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32, copy=False)
