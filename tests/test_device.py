"""Device selection (common/base/device.py): what "auto" picks, clear refusals, models and batches on it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_train import synthetic_stage2

from common.base.device import DeviceError, autocast, module_device, resolve_device
from common.federation.run_config import ConfigError, FederationConfig
from common.method.train import SensorTrainConfig, train_sensor_encoder, train_sensor_epochs
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, encode_windows
from simulations.cli import main


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without CUDA, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_picks_cuda_only_when_present(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


def test_auto_on_this_machine_matches_what_torch_sees():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_refused_with_its_reason(no_cuda, spec):
    with pytest.raises(DeviceError, match="CUDA is not available on this machine"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "mps:0", ""])
def test_a_name_that_is_no_device_is_refused(spec):
    with pytest.raises(DeviceError, match="not a device name; choose auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


def test_cli_exits_2_at_once_when_cuda_is_missing(no_cuda, capsys, tmp_path):
    # --data-dir does not even exist: the device is checked before anything is read.
    code = main(
        ["train", "--device", "cuda", "--data-dir", str(tmp_path / "none"), "--source", "uci",
         "--target", "dsads_torso", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 2
    assert "device 'cuda': CUDA is not available on this machine" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_config_names_the_device_key(no_cuda):
    with pytest.raises(ConfigError, match="device"):
        FederationConfig.from_run_config({"device": "cuda"})
    assert FederationConfig.from_run_config({"device": "cpu"}).device == "cpu"


def test_autocast_is_a_no_op_on_the_cpu():
    layer = torch.nn.Linear(4, 4)
    with autocast(torch.device("cpu")):
        assert layer(torch.ones(2, 4)).dtype == torch.float32


def test_a_text_space_trained_on_cuda_in_bf16_is_cached_apart_from_a_cpu_one():
    from common.method.text_space_cache import stage1_key
    from common.method.train import TextTrainConfig

    keys = []
    for device in ("cpu", "cuda"):
        encoder = SimpleNamespace(content_digest=lambda: "digest", max_length=16, device=torch.device(device))
        keys.append(stage1_key(encoder, ["a text"], ["walking"], {"walking": ["walks"]}, TextTrainConfig()))
    assert keys[0] != keys[1]


def _record_input_devices(model: torch.nn.Module) -> list[torch.device]:
    seen: list[torch.device] = []
    model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].device))
    return seen


def test_model_and_batches_land_on_the_chosen_device():
    device = resolve_device("cpu")
    X, Z, y = synthetic_stage2(n_per_class=8)
    model = SensorEncoder(SensorEncoderConfig(d_model=32, ff_dim=64, num_layers=1, out_dim=Z.shape[1]))
    model = model.to(device)
    seen = _record_input_devices(model)
    config = SensorTrainConfig(epochs=1, batch_size=8, val_fraction=0.0)
    train_sensor_encoder(model, X, Z, config, progress=False)
    train_sensor_epochs(model, X, Z, config, seed=1)
    embeddings = encode_windows(model, X)
    assert module_device(model) == device
    assert seen and all(batch_device == device for batch_device in seen)
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(X), Z.shape[1])


def test_module_device_of_a_module_without_parameters_is_the_cpu():
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")
