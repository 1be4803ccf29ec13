"""Deployment artifact: a TorchScript sensor encoder plus the label bank (what a phone needs, nothing else).

`out_dir/sensor_encoder.pt`   TorchScript, input float32 [B, T, 6] raw units, output [B, D] (not normalised);
                              an analysis-token encoder takes its signal analysis [B, F] as a second input
`out_dir/sensor_encoder.json` input/output description (the analysis columns by name) and the encoder config
`out_dir/label_bank.npz`      prototypes [C, D] L2-normalised + labels; `label_bank.json` the labels again

The module is scripted (not traced) so the input shape check survives, then frozen: freezing folds the
weights into constants and drops training-only branches, which cuts single-window latency by about a third.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from common.models.sensor_encoder import STANDARD_GRAVITY, SensorEncoder, SensorEncoderConfig, window_analysis
from common.models.zero_shot import LabelBank

MODEL_FILE = "sensor_encoder.pt"
MODEL_INFO_FILE = "sensor_encoder.json"
BANK_FILE = "label_bank.npz"


def _megabytes(path: Path) -> float:
    return path.stat().st_size / 1e6


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence TorchScript's deprecation notes: torch 2.x prefers torch.export, but LibTorch / PyTorch
    Mobile runtimes load TorchScript. The "non-constant submodule" note comes from nn.TransformerEncoder."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*non-constant submodule.*")
        yield


def script_sensor_model(model: SensorEncoder, freeze: bool = True) -> torch.jit.ScriptModule:
    """A CPU, eval-mode TorchScript copy of the model (the caller's model is left as it was)."""
    model = copy.deepcopy(model).cpu().eval()
    with _quiet_torchscript():
        scripted = torch.jit.script(model)
        return torch.jit.freeze(scripted) if freeze else scripted


def export_sensor_model(
    model: SensorEncoder, bank: LabelBank, out_dir: str | Path, freeze: bool = True
) -> dict:
    """Write the deployment files into out_dir; returns their paths and sizes in MB."""
    if not isinstance(model, SensorEncoder):
        raise TypeError(f"model must be a SensorEncoder, got {type(model).__name__}")
    if len(bank) == 0:
        raise ValueError("the label bank is empty: a deployed model needs at least one label")
    if bank.dim != model.config.out_dim:
        raise ValueError(f"label bank dim {bank.dim} != sensor encoder out_dim {model.config.out_dim}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    # A wearable runs the model on its own CPU: script a CPU copy, whatever device trained this one.
    cpu_model = copy.deepcopy(model).cpu()
    with _quiet_torchscript():
        torch.jit.save(script_sensor_model(cpu_model, freeze=freeze), str(model_path))
    bank_path = bank.save(out_dir / BANK_FILE)
    config = model.config
    info = {
        "input": {
            "shape": ["batch", config.window, config.input_channels],
            "dtype": "float32",
            "units": "acc x,y,z in m/s^2 including gravity, gyro x,y,z in rad/s",
            "sampling_rate_hz": 20.0,
            # With trunk_equivalent the device first rescales its window by its own body position
            # (common/data/placement.py: trunk_equivalent(X, position)); the analysis is computed after that.
            "trunk_equivalent": config.trunk_equivalent,
        },
        "output": {"shape": ["batch", config.out_dim], "note": "L2-normalise, then dot with label_bank rows"},
        # The device computes these with common/data/features.py (window_analysis) from the same window.
        "analysis_input": {
            "shape": ["batch", len(config.analysis_features)],
            "features": config.analysis_features,
        }
        if config.analysis_token
        else None,
        "config": config.to_dict(),
        "frozen": freeze,
        "torch": torch.__version__,
        "labels": bank.labels,
    }
    (out_dir / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    model_mb, bank_mb = _megabytes(model_path), _megabytes(bank_path)
    return {
        "sensor_encoder": str(model_path),
        "label_bank": str(bank_path),
        "sensor_encoder_mb": model_mb,
        "label_bank_mb": bank_mb,
        "total_mb": model_mb + bank_mb,
        "num_labels": len(bank),
        "dim": bank.dim,
    }


def load_exported(out_dir: str | Path) -> tuple[torch.jit.ScriptModule, LabelBank]:
    """The TorchScript module and the label bank written by `export_sensor_model`."""
    out_dir = Path(out_dir)
    model_path = out_dir / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: run export_sensor_model first")
    with _quiet_torchscript():
        module = torch.jit.load(str(model_path), map_location="cpu")
    return module, LabelBank.load(out_dir / BANK_FILE)


def measure_latency(
    path: str | Path, threads: int = 1, repeats: int = 200, warmup: int = 20, batch: int = 1
) -> dict[str, float]:
    """Wall-clock milliseconds per forward of `batch` window(s) on CPU with `threads` intra-op threads.

    `path` is the .pt file or the export directory. Returns median, p95, mean and min over `repeats` calls
    after `warmup` untimed ones. The caller's thread setting is restored afterwards.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if repeats < 1 or threads < 1 or batch < 1:
        raise ValueError(f"repeats, threads and batch must be >= 1, got {repeats}, {threads}, {batch}")
    with _quiet_torchscript():
        module = torch.jit.load(str(path), map_location="cpu")
    config = SensorEncoderConfig()
    info_path = path.with_name(MODEL_INFO_FILE)
    if info_path.is_file():
        config = SensorEncoderConfig.from_dict(json.loads(info_path.read_text())["config"])
    x = torch.randn(batch, config.window, config.input_channels) * 2.0
    x[:, :, 2] += STANDARD_GRAVITY  # a plausible window: the signal analysis checks the accelerometer's unit

    def classify_once() -> None:
        if config.analysis_token:  # the device computes the window's signal analysis first: timed too
            module(x, torch.from_numpy(window_analysis(x.numpy(), config)))
        else:
            module(x)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                classify_once()
            timings = np.empty(repeats)
            for i in range(repeats):
                start = time.perf_counter()
                classify_once()
                timings[i] = (time.perf_counter() - start) * 1e3
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "median_ms": float(np.median(timings)),
        "p95_ms": float(np.percentile(timings, 95)),
        "mean_ms": float(timings.mean()),
        "min_ms": float(timings.min()),
        "threads": threads,
        "repeats": repeats,
        "batch": batch,
    }
