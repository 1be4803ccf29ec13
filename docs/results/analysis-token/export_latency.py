"""Single-window latency of the exported sensor encoder, raw window in, the signal analysis computed inside
(issue #34), with TorchScript and with ONNX Runtime, for the default width and for a narrower one.

    OMP_NUM_THREADS=1 python docs/results/analysis-token/export_latency.py   # from the repository root

Prints one line per (model, runtime): file size (MB), median and p95 ms over 500 calls after 50 warm-up
calls, 1 intra-op thread (`common.models.export.measure_latency`); then the analysis alone, frozen
TorchScript `WindowFeatures` against the numpy `window_analysis` it replaces on the device.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root, whatever the cwd

from common.data.features import INVARIANT_FEATURES  # noqa: E402
from common.models.export import (  # noqa: E402
    example_windows,
    export_sensor_model,
    measure_latency,
    time_calls,
)
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, window_analysis  # noqa: E402
from common.models.window_features import WindowFeatures  # noqa: E402
from common.models.zero_shot import LabelBank  # noqa: E402

REPEATS, WARMUP = 500, 50
CONFIGS = {
    "default (d_model 384)": SensorEncoderConfig(),
    "d_model 192, ff 384, 4 heads": SensorEncoderConfig(d_model=192, ff_dim=384, num_heads=4),
    "d_model 128, ff 256, 2 heads": SensorEncoderConfig(d_model=128, ff_dim=256),  # docs/results/speed
}


def main() -> None:
    torch.manual_seed(0)
    bank = LabelBank(["a", "b", "c"], np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32))
    for name, config in CONFIGS.items():
        out = tempfile.mkdtemp()
        sizes = export_sensor_model(SensorEncoder(config), bank, out)
        files = (("torchscript", "sensor_encoder_mb"), ("onnxruntime", "sensor_encoder_onnx_mb"))
        for runtime, size in files:
            timing = measure_latency(out, threads=1, repeats=REPEATS, warmup=WARMUP, runtime=runtime)
            print(
                f"{name:30s} {runtime:12s} {sizes[size]:6.2f} MB  median {timing['median_ms']:.2f} ms"
                f"  p95 {timing['p95_ms']:.2f} ms",
                flush=True,
            )
    torch.set_num_threads(1)
    features = torch.jit.freeze(torch.jit.script(WindowFeatures(names=INVARIANT_FEATURES).eval()))
    x = example_windows(SensorEncoderConfig())
    for name, call in (
        ("analysis alone, TorchScript", lambda: features(x)),
        ("analysis alone, numpy", lambda: window_analysis(x.numpy(), SensorEncoderConfig())),
    ):
        timing = time_calls(call, REPEATS, WARMUP)
        print(f"{name:43s}          median {timing['median_ms']:.2f} ms  p95 {timing['p95_ms']:.2f} ms")


if __name__ == "__main__":
    main()
