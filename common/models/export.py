"""Deployment artifact: the sensor encoder (TorchScript and ONNX) plus the label bank (what a phone needs).

`out_dir/sensor_encoder.pt`   TorchScript, one input: the raw window float32 [B, T, C] (acc m/s^2 incl.
                              gravity, gyro rad/s), output [B, D] (not normalised); an analysis-token
                              encoder computes the window's signal analysis inside (models/window_features.py)
`out_dir/sensor_encoder.onnx` the same model for ONNX runtimes: input "window" [batch, T, C], output
                              "embedding" [batch, D], dynamic batch axis, opset ONNX_OPSET
`out_dir/sensor_encoder.int8.onnx`  the ONNX model with int8 weights in its matrix products (dynamic
                              quantisation; the float64 signal analysis is left as it is): under a third of
                              the bytes and about half the single-window latency, for devices
`out_dir/sensor_encoder.json` input/output description (the analysis columns by name) and the encoder config
`out_dir/label_bank.npz`      prototypes [C, D] L2-normalised + labels; `label_bank.json` the labels again

The TorchScript module is scripted (not traced) so the input shape check survives, then frozen: freezing
folds the weights into constants and drops training-only branches (about a third less single-window latency).
A single window is bound by reading the weights (3-4 M float32, more than a core's cache), not by arithmetic:
hence the int8 file. Its top-1 agreement with the float model on real windows: docs/results/speed/.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from common.models.sensor_encoder import STANDARD_GRAVITY, SensorEncoder, SensorEncoderConfig
from common.models.zero_shot import LabelBank

MODEL_FILE = "sensor_encoder.pt"
ONNX_FILE = "sensor_encoder.onnx"
ONNX_INT8_FILE = "sensor_encoder.int8.onnx"
ONNX_OPSET = 17  # LayerNormalization is a single ONNX operator from opset 17 on
RUNTIME_FILES = {"torchscript": MODEL_FILE, "onnxruntime": ONNX_FILE, "onnxruntime-int8": ONNX_INT8_FILE}
RUNTIMES = tuple(RUNTIME_FILES)
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


class RawWindowEncoder(nn.Module):
    """What a device runs: the raw window in, the embedding out (SensorEncoder.forward with analysis=None
    computes the analysis token's input inside), so the deployed forward has one input and needs no numpy."""

    def __init__(self, model: SensorEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        """x [B, window, input_channels] float32, acc m/s^2 incl. gravity, gyro rad/s -> [B, out_dim]."""
        return self.model(x)


def _deployed_copy(model: SensorEncoder) -> RawWindowEncoder:
    """A CPU, eval-mode copy of the model, raw window in (the caller's model is left as it is)."""
    return RawWindowEncoder(copy.deepcopy(model).cpu()).eval()


def example_windows(config: SensorEncoderConfig, batch: int = 1, seed: int = 0) -> Tensor:
    """Plausible raw windows [batch, window, input_channels]: noise around gravity on z (m/s^2, rad/s)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.window, config.input_channels, generator=generator) * 2.0
    x[:, :, 2] += STANDARD_GRAVITY
    return x


def export_onnx_model(model: SensorEncoder, path: str | Path) -> Path:
    """Write the model, raw window in, as ONNX (opset ONNX_OPSET, dynamic batch axis) to `path`.

    The TorchScript-based exporter (dynamo=False): it needs only the `onnx` package (the dynamo exporter
    also needs onnxscript), and the model is written for TorchScript already. It traces a CPU eval copy;
    the traced graph has no shape check, so a runtime checks the input against sensor_encoder.json.
    """
    path = Path(path)
    deployed = _deployed_copy(model)
    # nn.TransformerEncoder's inference fast path is one fused aten op that has no ONNX form: trace the
    # plain layers instead (the same numbers).
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # tracer notes about the shape check turned into constants, and the exporter's deprecation note
            warnings.simplefilter("ignore")
            torch.onnx.export(
                deployed,
                (example_windows(model.config, batch=2),),
                str(path),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["window"],
                output_names=["embedding"],
                dynamic_axes={"window": {0: "batch"}, "embedding": {0: "batch"}},
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return path


def quantize_onnx_model(onnx_path: str | Path, int8_path: str | Path) -> Path:
    """Write `onnx_path` with int8 weights in its MatMul and Gemm nodes to `int8_path` (ONNX Runtime's dynamic
    quantisation: activations are scaled per call from their own range, so no calibration windows are needed).

    Only float32 weights are quantised: the signal analysis' float64 products (DFT, covariances) stay exact.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser logs a warning for every float64 tensor it leaves alone (on the root logger): expected.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            Path(onnx_path),
            Path(int8_path),
            op_types_to_quantize=["MatMul", "Gemm"],
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.disable(previous)
    return Path(int8_path)


def export_sensor_model(model: SensorEncoder, bank: LabelBank, out_dir: str | Path) -> dict:
    """Write the deployment files into out_dir; returns their paths and sizes in MB."""
    if not isinstance(model, SensorEncoder):
        raise TypeError(f"model must be a SensorEncoder, got {type(model).__name__}")
    if len(bank) == 0:
        raise ValueError("the label bank is empty: a deployed model needs at least one label")
    if bank.dim != model.config.out_dim:
        raise ValueError(f"label bank dim {bank.dim} != sensor encoder out_dim {model.config.out_dim}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path, onnx_path, int8_path = out_dir / MODEL_FILE, out_dir / ONNX_FILE, out_dir / ONNX_INT8_FILE
    # A wearable runs the model on its own CPU: script a CPU copy, whatever device trained this one.
    with _quiet_torchscript():
        torch.jit.save(torch.jit.freeze(torch.jit.script(_deployed_copy(model))), str(model_path))
    quantize_onnx_model(export_onnx_model(model, onnx_path), int8_path)
    bank_path = bank.save(out_dir / BANK_FILE)
    (out_dir / MODEL_INFO_FILE).write_text(json.dumps(_model_info(model.config, bank), indent=2) + "\n")
    model_mb, bank_mb, onnx_mb = _megabytes(model_path), _megabytes(bank_path), _megabytes(onnx_path)
    return {
        "sensor_encoder": str(model_path),
        "sensor_encoder_onnx": str(onnx_path),
        "sensor_encoder_onnx_int8": str(int8_path),
        "label_bank": str(bank_path),
        "sensor_encoder_mb": model_mb,
        "sensor_encoder_onnx_mb": onnx_mb,
        "sensor_encoder_onnx_int8_mb": _megabytes(int8_path),
        "label_bank_mb": bank_mb,
        "total_mb": model_mb + bank_mb,  # one model file (TorchScript or ONNX, about the same size) + bank
        "num_labels": len(bank),
        "dim": bank.dim,
    }


def _model_info(config: SensorEncoderConfig, bank: LabelBank) -> dict:
    """The sensor_encoder.json description: one input, the raw window."""
    return {
        "input": {
            "name": "window",
            "shape": ["batch", config.window, config.input_channels],
            "dtype": "float32",
            "units": "acc x,y,z in m/s^2 including gravity, gyro x,y,z in rad/s",
            "sampling_rate_hz": 20.0,
        },
        "output": {
            "name": "embedding",
            "shape": ["batch", config.out_dim],
            "note": "L2-normalise, then dot with label_bank rows",
        },
        # Not an input: the model computes these columns of common/data/features.py from the window itself
        # (common/models/window_features.py); listed so a reader knows what the analysis token reads.
        "analysis": {
            "computed": "inside the model, from the input window",
            "features": config.analysis_features,
        }
        if config.analysis_token
        else None,
        "files": {
            "torchscript": MODEL_FILE,
            "onnx": ONNX_FILE,
            "onnx_int8": ONNX_INT8_FILE,
            "onnx_opset": ONNX_OPSET,
        },
        "config": config.to_dict(),
        "frozen": True,
        "torch": torch.__version__,
        "labels": bank.labels,
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


def onnx_session(path: str | Path, threads: int = 1):  # -> onnxruntime.InferenceSession
    """An ONNX Runtime CPU session for an .onnx file, or the export directory's float model, `threads`
    intra-op threads."""
    import onnxruntime

    path = Path(path)
    if path.is_dir():
        path = path / ONNX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run export_sensor_model first")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure_latency(
    path: str | Path,
    threads: int = 1,
    repeats: int = 200,
    warmup: int = 20,
    batch: int = 1,
    runtime: str = "torchscript",
) -> dict[str, float]:
    """Wall-clock milliseconds per forward of `batch` raw window(s) on CPU with `threads` intra-op threads.

    `path` is the export directory (or a file in it). `runtime` "torchscript" times sensor_encoder.pt,
    "onnxruntime" sensor_encoder.onnx, "onnxruntime-int8" sensor_encoder.int8.onnx; each way one call is the
    whole on-device computation, the signal analysis included. Returns median, p95, mean and min over
    `repeats` calls after `warmup` untimed ones. The caller's thread setting is restored afterwards.
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    if repeats < 1 or threads < 1 or batch < 1:
        raise ValueError(f"repeats, threads and batch must be >= 1, got {repeats}, {threads}, {batch}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    config = SensorEncoderConfig()
    info_path = directory / MODEL_INFO_FILE
    if info_path.is_file():
        config = SensorEncoderConfig.from_dict(json.loads(info_path.read_text())["config"])
    x = example_windows(config, batch=batch)
    model_path = directory / RUNTIME_FILES[runtime]
    if runtime != "torchscript":
        classify_once = functools.partial(onnx_session(model_path, threads).run, None, {"window": x.numpy()})
    else:
        model_path = path if path.suffix == ".pt" else model_path
        with _quiet_torchscript():
            classify_once = functools.partial(torch.jit.load(str(model_path), map_location="cpu"), x)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            timings = time_calls(classify_once, repeats, warmup)
    finally:
        torch.set_num_threads(previous_threads)
    return timings | {"threads": threads, "repeats": repeats, "batch": batch, "runtime": runtime}


def time_calls(call: Callable[[], object], repeats: int, warmup: int) -> dict[str, float]:
    """Median, p95, mean and min wall-clock milliseconds of `call()` over `repeats` calls after `warmup`."""
    for _ in range(warmup):
        call()
    timings = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call()
        timings[i] = (time.perf_counter() - start) * 1e3
    return {
        "median_ms": float(np.median(timings)),
        "p95_ms": float(np.percentile(timings, 95)),
        "mean_ms": float(timings.mean()),
        "min_ms": float(timings.min()),
    }
