"""Deployment export: TorchScript and ONNX round trips (raw window in, analysis inside), label bank, sizes,
latency measurement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from common.data.devices import rotation_matrix
from common.models.export import (
    ONNX_INT8_FILE,
    ONNX_OPSET,
    export_sensor_model,
    load_exported,
    measure_latency,
    onnx_session,
)
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, encode_windows, window_analysis
from common.models.zero_shot import LabelBank
from simulations.cli import main as fedlanhar

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


def real_windows(data_dir: Path, per_set: int = 150) -> np.ndarray:
    """Windows spread over uci (waist phone) and dsads_rightleg (thigh), float32 [2 * per_set, 120, 6]."""
    parts = []
    for name in ("uci", "dsads_rightleg"):
        X = np.load(data_dir / f"{name}.npz")["X"]
        parts.append(X[:: len(X) // per_set][:per_set])
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def training_time_embeddings(model: SensorEncoder, X: np.ndarray) -> np.ndarray:
    """What training computes: model.eval() fed the window and its numpy analysis (window_analysis)."""
    with torch.no_grad():
        return model.eval()(torch.from_numpy(X), torch.from_numpy(window_analysis(X, model.config))).numpy()


@pytest.mark.parametrize(
    "changes",
    [{}, {"walking_frame": True}, {"input_channels": 3}],
    ids=["default", "walking-frame", "acc-only"],
)
def test_analysis_token_model_exports_with_the_raw_window_as_its_only_input(
    tmp_path: Path, data_dir: Path, changes: dict
) -> None:
    torch.manual_seed(0)
    config = SensorEncoderConfig(**{**SMALL.to_dict(), "analysis_token": True, **changes})
    model = SensorEncoder(config)
    bank = small_bank()
    result = export_sensor_model(model, bank, tmp_path)
    X = real_windows(data_dir)[:, :, : config.input_channels]
    expected = training_time_embeddings(model, X)
    module, _ = load_exported(tmp_path)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(X)).numpy(), expected, rtol=0, atol=1e-5)
        with pytest.raises(RuntimeError, match="forward"):  # one input: the analysis is computed inside
            module(torch.from_numpy(X), torch.from_numpy(window_analysis(X, config)))
    on_onnx = onnx_session(result["sensor_encoder_onnx"]).run(["embedding"], {"window": X})[0]
    np.testing.assert_allclose(on_onnx, expected, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(bank.classify(on_onnx), bank.classify(encode_windows(model, X)))
    graph = onnx.load(result["sensor_encoder_onnx"])
    assert graph.opset_import[0].version >= ONNX_OPSET >= 17
    assert [node.name for node in graph.graph.input] == ["window"]
    batch_axis = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axis.dim_param == "batch" and not batch_axis.HasField("dim_value")  # any batch size
    info = json.loads((tmp_path / "sensor_encoder.json").read_text())
    assert "analysis_input" not in info and info["input"]["shape"] == ["batch", 120, config.input_channels]
    assert info["analysis"]["features"] == list(config.analysis_features)
    assert info["files"] == {
        "torchscript": "sensor_encoder.pt",
        "onnx": "sensor_encoder.onnx",
        "onnx_int8": "sensor_encoder.int8.onnx",
        "onnx_opset": ONNX_OPSET,
    }


def test_the_int8_onnx_model_takes_the_raw_window_and_embeds_as_the_training_time_model(
    tmp_path: Path, data_dir: Path
) -> None:
    """The default-size encoder: int8 weights in every float32 matrix product, the float64 analysis exact,
    under a third of the bytes, and embeddings that point where the training-time model's do."""
    torch.manual_seed(0)
    model = SensorEncoder(SensorEncoderConfig())
    result = export_sensor_model(model, small_bank(dim=384), tmp_path)
    assert result["sensor_encoder_onnx_int8"] == str(tmp_path / ONNX_INT8_FILE)
    # int8 weights, and the analysis constants (the DFT matrix, float64) as they were
    assert result["sensor_encoder_onnx_int8_mb"] < result["sensor_encoder_onnx_mb"] / 3
    graph = onnx.load(result["sensor_encoder_onnx_int8"]).graph
    assert [node.name for node in graph.input] == ["window"]
    integer_products = [node for node in graph.node if node.op_type == "MatMulInteger"]
    float_products = [node for node in graph.node if node.op_type in ("MatMul", "Gemm")]
    weights = {tensor.name: tensor for tensor in graph.initializer}
    int8_weights = [weights[node.input[1]] for node in integer_products if node.input[1] in weights]
    assert len(int8_weights) >= 3 * model.config.num_layers  # attention in, attention out, two feed-forward
    assert all(tensor.data_type == onnx.TensorProto.INT8 for tensor in int8_weights)
    # What stays float: the analysis' float64 products and the attention's activation-by-activation products.
    assert all(
        "window_features" in node.name or not any(name in weights for name in node.input)
        for node in float_products
    )
    X = real_windows(data_dir)
    expected = training_time_embeddings(model, X)
    on_int8 = onnx_session(tmp_path / ONNX_INT8_FILE).run(["embedding"], {"window": X})[0]
    cosine = (on_int8 * expected).sum(1) / np.linalg.norm(on_int8, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.99, cosine.min()


def test_exported_model_stays_invariant_to_device_rotation(tmp_path: Path, data_dir: Path) -> None:
    """Acc and gyro rotated together by a random rotation: the analysis computed inside the exported model and
    the gravity-frame channels do not move, so neither does the embedding."""
    torch.manual_seed(0)
    model = SensorEncoder(SensorEncoderConfig(**{**SMALL.to_dict(), "analysis_token": True}))
    export_sensor_model(model, small_bank(), tmp_path)
    module, _ = load_exported(tmp_path)
    session = onnx_session(tmp_path)
    X = real_windows(data_dir, per_set=50).astype(np.float64)
    with torch.no_grad():
        reference = module(torch.from_numpy(X.astype(np.float32))).numpy()
        for seed in range(3):
            rotation = rotation_matrix(np.random.default_rng(seed).uniform(-180.0, 180.0, size=3))
            rotated = np.concatenate([X[..., :3] @ rotation.T, X[..., 3:] @ rotation.T], axis=2)
            rotated = rotated.astype(np.float32)
            np.testing.assert_allclose(module(torch.from_numpy(rotated)).numpy(), reference, atol=1e-4)
            np.testing.assert_allclose(session.run(None, {"window": rotated})[0], reference, atol=1e-4)


def test_default_model_fits_the_size_budget(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SensorEncoder(SensorEncoderConfig())
    bank = small_bank(dim=384)
    result = export_sensor_model(model, bank, tmp_path)
    assert result["total_mb"] <= 25.0
    parameters = sum(p.numel() for p in model.parameters())
    assert result["sensor_encoder_mb"] >= 4 * parameters / 1e6 * 0.95  # every layer stored, nothing lost


def test_measure_latency_reports_timings(tmp_path: Path) -> None:
    config = SensorEncoderConfig(**{**SMALL.to_dict(), "analysis_token": True})
    export_sensor_model(SensorEncoder(config), small_bank(), tmp_path)
    for runtime in ("torchscript", "onnxruntime", "onnxruntime-int8"):  # raw window in, analysis included
        timings = measure_latency(tmp_path, threads=1, repeats=20, warmup=2, runtime=runtime)
        assert timings["threads"] == 1 and timings["repeats"] == 20 and timings["runtime"] == runtime
        assert 0 < timings["min_ms"] <= timings["median_ms"] <= timings["p95_ms"]
        assert torch.get_num_threads() == 1  # restored
    assert measure_latency(tmp_path / "sensor_encoder.pt", repeats=2, warmup=0, batch=3)["batch"] == 3
    with pytest.raises(ValueError, match="runtime must be one of"):
        measure_latency(tmp_path, runtime="tflite")


def test_export_rejects_mismatched_bank(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label bank dim 384 != sensor encoder out_dim 16"):
        export_sensor_model(SensorEncoder(SMALL), small_bank(dim=384), tmp_path)
    with pytest.raises(FileNotFoundError, match="run export_sensor_model first"):
        load_exported(tmp_path / "nothing")


def test_cli_export_writes_both_model_files_and_times_both_runtimes(tmp_path: Path) -> None:
    config = SensorEncoderConfig(**{**SMALL.to_dict(), "analysis_token": True})
    model_dir, out = tmp_path / "model", tmp_path / "export"
    SensorEncoder(config).save(model_dir / "sensor_encoder.pt")
    small_bank().save(model_dir / "label_bank.npz")
    assert fedlanhar(["export", "--model", str(model_dir), "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert (out / "sensor_encoder.onnx").is_file() and report["sensor_encoder_onnx_mb"] > 0
    assert report["latency"]["runtime"] == "torchscript" and report["latency"]["median_ms"] > 0
    for runtime in ("onnxruntime", "onnxruntime-int8"):
        latency = report[f"latency_{runtime.replace('-', '_')}"]
        assert latency["runtime"] == runtime and latency["median_ms"] > 0
