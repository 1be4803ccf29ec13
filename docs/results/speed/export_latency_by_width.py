"""One-window latency of the exported default and 128-wide sensor encoders (random weights; raw window in,
analysis inside), TorchScript and ONNX Runtime, 1 thread:

    python docs/results/speed/export_latency_by_width.py
"""

import tempfile
from pathlib import Path

import numpy as np
import torch

from common.models.export import export_sensor_model, measure_latency
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig
from common.models.zero_shot import LabelBank

torch.manual_seed(0)
for widths in ({}, {"d_model": 128, "ff_dim": 256}):
    model = SensorEncoder(SensorEncoderConfig(**widths)).eval()
    prototypes = np.random.default_rng(0).normal(size=(4, model.config.out_dim)).astype(np.float32)
    bank = LabelBank(["a", "b", "c", "d"], prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True))
    out = Path(tempfile.mkdtemp())
    export = export_sensor_model(model, bank, out)
    weights = sum(p.numel() for p in model.parameters())
    for runtime in ("torchscript", "onnxruntime"):
        latency = measure_latency(out, threads=1, repeats=500, warmup=50, runtime=runtime)
        print(
            widths or "default",
            weights,
            f"{export['sensor_encoder_mb']:.1f} MB",
            runtime,
            f"median {latency['median_ms']:.2f} ms, p95 {latency['p95_ms']:.2f} ms",
        )
