"""`fedlanhar bench`: the core's speed and size figures, printed and written to `<out>/bench.json`.

Measured on real windows from the data directory, one torch thread unless said. Targets (issue "LanHAR core"):
>= 1000 rules interpretations/s, exported sensor encoder <= 25 MB, <= 2 ms per window on one CPU thread.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from common.data import load_dataset
from common.export import export_sensor_model, measure_latency
from common.interpreters import make_interpreter
from common.labels import COMMON_ACTIVITIES, load_vocabulary
from common.lanhar import describe_labels, interpret_windows
from common.runtime import set_seed
from common.sensor_encoder import SensorEncoder, SensorEncoderConfig
from common.text_encoder import TextEncoder
from common.train import SensorTrainConfig, TextTrainConfig, train_sensor_encoder, train_text_encoder
from common.zero_shot import build_label_bank

TARGETS = {"interpretations_per_s": 1000.0, "export_mb": 25.0, "latency_ms": 2.0}


def run_core_benchmark(data_dir: Path, out_dir: Path, dataset: str = "uci", text_steps: int = 4) -> dict:
    set_seed(0)
    torch.set_num_threads(1)
    windows = load_dataset(dataset, data_dir).select_activities(COMMON_ACTIVITIES)
    interpreter = make_interpreter("rules")

    interpret_windows(windows.subset(np.arange(64)), interpreter, COMMON_ACTIVITIES)  # warm-up
    start = time.perf_counter()
    interpretations = interpret_windows(windows, interpreter, COMMON_ACTIVITIES)
    interpret_seconds = time.perf_counter() - start

    encoder = TextEncoder("minilm")
    descriptions = describe_labels(interpreter, COMMON_ACTIVITIES, 4)
    text_config = TextTrainConfig(max_steps=text_steps, batch_size=32, seed=0)
    start = time.perf_counter()
    text_history = train_text_encoder(
        encoder,
        interpretations.texts,
        windows.labels(),
        descriptions,
        load_vocabulary().category,
        text_config,
        progress=False,
    )
    text_step_seconds = (time.perf_counter() - start) / text_steps

    n_sensor = min(len(windows), 1024)
    targets = encoder.encode(interpretations.texts[:n_sensor])
    sensor_encoder = SensorEncoder(SensorEncoderConfig(out_dim=encoder.dim))
    start = time.perf_counter()
    train_sensor_encoder(
        sensor_encoder, windows.X[:n_sensor], targets, SensorTrainConfig(epochs=1, seed=0), progress=False
    )
    sensor_seconds = time.perf_counter() - start

    bank = build_label_bank(encoder, descriptions)
    export = export_sensor_model(sensor_encoder, bank, out_dir / "export")
    latency = measure_latency(out_dir / "export" / "sensor_encoder.pt", threads=1)

    results = {
        "dataset": dataset,
        "windows": len(windows),
        "rules_interpretations_per_s": len(windows) / interpret_seconds,
        "text_encoder_step_seconds": text_step_seconds,
        "text_encoder_batch_size": text_config.batch_size,
        "text_encoder_max_length": text_config.max_length,
        "text_encoder_token_lengths": text_history.get("token_lengths"),
        "sensor_encoder_train_windows_per_s": n_sensor / sensor_seconds,
        "sensor_encoder_parameters": sum(p.numel() for p in sensor_encoder.parameters()),
        "export": export,
        "latency": latency,
        "targets": TARGETS,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": 1,
            "processor": platform.processor() or platform.machine(),
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    return results
