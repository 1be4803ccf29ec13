"""Deployment export: TorchScript round trip, label bank, sizes, latency measurement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.data.features import INVARIANT_FEATURES
from common.models.export import export_sensor_model, load_exported, measure_latency
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, encode_windows, window_analysis
from common.models.zero_shot import LabelBank

torch.set_num_threads(1)

SMALL = SensorEncoderConfig(
    d_model=32, num_heads=2, num_layers=2, ff_dim=64, out_dim=16, analysis_token=False
)


def small_bank(dim: int = 16) -> LabelBank:
    rng = np.random.default_rng(0)
    return LabelBank(["walking", "sitting", "upstairs"], rng.normal(size=(3, dim)).astype(np.float32))


def test_exported_model_reloads_with_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SensorEncoder(SMALL)
    bank = small_bank()
    result = export_sensor_model(model, bank, tmp_path / "deploy")
    assert model.training  # the caller's model is not switched to eval
    assert set(result) >= {"sensor_encoder", "label_bank", "sensor_encoder_mb", "label_bank_mb", "total_mb"}
    assert result["total_mb"] == pytest.approx(result["sensor_encoder_mb"] + result["label_bank_mb"])
    assert 0 < result["sensor_encoder_mb"] < 1
    module, loaded_bank = load_exported(tmp_path / "deploy")
    X = torch.randn(5, 120, 6) * 3
    with torch.no_grad():
        torch.testing.assert_close(module(X), model.eval()(X))
    assert loaded_bank.labels == bank.labels
    np.testing.assert_array_equal(loaded_bank.embeddings, bank.embeddings)
    with torch.no_grad():
        on_device = loaded_bank.classify(module(X).numpy())
    np.testing.assert_array_equal(on_device, bank.classify(encode_windows(model, X.numpy())))
    info = json.loads((tmp_path / "deploy" / "sensor_encoder.json").read_text())
    assert info["input"]["shape"] == ["batch", 120, 6] and info["config"] == SMALL.to_dict()
    with pytest.raises(torch.jit.Error, match="expects x of shape"):
        module(torch.zeros(1, 120, 3))


def test_analysis_token_model_exports_with_its_analysis_input(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = SensorEncoderConfig(**{**SMALL.to_dict(), "analysis_token": True})
    model = SensorEncoder(config)
    bank = small_bank()
    export_sensor_model(model, bank, tmp_path)
    module, _ = load_exported(tmp_path)
    X = torch.randn(5, 120, 6) * 3
    X[:, :, 2] += 9.81
    analysis = torch.from_numpy(window_analysis(X.numpy(), config))
    with torch.no_grad():
        on_device = bank.classify(module(X, analysis).numpy())
    np.testing.assert_array_equal(on_device, bank.classify(encode_windows(model, X.numpy())))
    info = json.loads((tmp_path / "sensor_encoder.json").read_text())
    assert info["analysis_input"] == {"shape": ["batch", 34], "features": list(INVARIANT_FEATURES)}
    timings = measure_latency(tmp_path, threads=1, repeats=5, warmup=1)  # analysis + forward
    assert 0 < timings["min_ms"] <= timings["median_ms"]


def test_default_model_fits_the_size_budget(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SensorEncoder(SensorEncoderConfig())
    bank = small_bank(dim=384)
    result = export_sensor_model(model, bank, tmp_path)
    assert result["total_mb"] <= 25.0
    parameters = sum(p.numel() for p in model.parameters())
    assert result["sensor_encoder_mb"] >= 4 * parameters / 1e6 * 0.95  # every layer stored, nothing lost


def test_measure_latency_reports_timings(tmp_path: Path) -> None:
    export_sensor_model(SensorEncoder(SMALL), small_bank(), tmp_path)
    timings = measure_latency(tmp_path, threads=1, repeats=20, warmup=2)
    assert timings["threads"] == 1 and timings["repeats"] == 20
    assert 0 < timings["min_ms"] <= timings["median_ms"] <= timings["p95_ms"]
    assert torch.get_num_threads() == 1  # restored


def test_export_rejects_mismatched_bank(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label bank dim 384 != sensor encoder out_dim 16"):
        export_sensor_model(SensorEncoder(SMALL), small_bank(dim=384), tmp_path)
    with pytest.raises(FileNotFoundError, match="run export_sensor_model first"):
        load_exported(tmp_path / "nothing")
