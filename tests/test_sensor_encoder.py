"""SensorEncoder: config checks, normalisation, shapes, rotation-invariant channels, TorchScript, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.data.features import FEATURE_NAMES, INVARIANT_FEATURES
from common.models.sensor_encoder import (
    STANDARD_GRAVITY,
    SensorEncoder,
    SensorEncoderConfig,
    check_windows,
    encode_windows,
    sinusoidal_positions,
    window_analysis,
)

torch.set_num_threads(1)

# The patch path alone; SMALL_TOKEN adds the analysis token (the product default).
SMALL = SensorEncoderConfig(
    d_model=32, num_heads=2, num_layers=2, ff_dim=64, out_dim=16, dropout=0.0, analysis_token=False
)
SMALL_DEVICE_FRAME = SensorEncoderConfig(**{**SMALL.to_dict(), "input_frame": "device"})
SMALL_TOKEN = SensorEncoderConfig(**{**SMALL.to_dict(), "analysis_token": True})


def random_windows(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 120, 6, generator=generator)
    x[:, :, 2] += STANDARD_GRAVITY  # gravity on z, like a phone lying flat
    return x


def random_rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def test_default_config_matches_minilm_and_the_paper() -> None:
    config = SensorEncoderConfig()
    assert (config.d_model, config.ff_dim, config.out_dim, config.num_layers, config.num_heads) == (
        128,
        256,
        384,
        3,
        2,
    )
    assert config.window % config.patch_size == 0
    assert config.input_frame == "gravity"
    assert config.analysis_token and config.analysis_features == INVARIANT_FEATURES
    assert config.feature_channels == 6  # along/across gravity + magnitude, for acc and for gyro
    assert SensorEncoderConfig(input_frame="device").feature_channels == 8  # 6 raw + |acc| + |gyro|


def test_the_default_device_model_stays_within_the_papers_bound() -> None:
    """Issue #34: the paper's sensor encoder has under 1.2 M weights; so must ours, centrally and in the
    federation (which builds its encoder from the run config's sensor-width), and its float32 update must fit
    the 1.5 MB a client sends each way once compressed to int8 or float16."""
    from common.federation.run_config import FederationConfig

    federated = FederationConfig().sensor_width
    for config in (SensorEncoderConfig(), SensorEncoderConfig(d_model=federated, ff_dim=2 * federated)):
        weights = sum(p.numel() for p in SensorEncoder(config).parameters())
        assert weights <= 1_200_000, weights
        assert 2 * weights <= 1_500_000  # float16 bytes


def test_a_narrow_trunk_still_reaches_every_direction_of_the_text_space() -> None:
    """With a linear output, a 16-wide trunk's embeddings would span at most 17 dimensions (an affine map of
    16); the wide head lets them span the text space, where new activities' label embeddings may lie."""
    torch.manual_seed(0)
    model = SensorEncoder(
        SensorEncoderConfig(d_model=16, ff_dim=32, num_heads=2, analysis_token=False)
    ).eval()
    with torch.no_grad():
        embeddings = model(torch.randn(400, 120, 6) * 3.0)
    assert torch.linalg.matrix_rank(embeddings - embeddings.mean(0), rtol=1e-4) > 17
    assert isinstance(
        SensorEncoder(SensorEncoderConfig(d_model=384, ff_dim=384)).output_projection, torch.nn.Linear
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"patch_size": 7}, "multiple of patch_size"),
        ({"d_model": 30, "num_heads": 4}, "divisible by num_heads"),
        ({"input_channels": 9}, "input_channels"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_layers": 0}, "num_layers"),
        ({"input_frame": "world"}, "input_frame"),
    ],
)
def test_config_rejects_inconsistent_sizes(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SensorEncoderConfig(**changes)


def test_config_dict_round_trip_and_unknown_fields() -> None:
    assert SensorEncoderConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError, match="unknown SensorEncoderConfig fields"):
        SensorEncoderConfig.from_dict({**SMALL.to_dict(), "colour": "red"})


def test_forward_shape_and_input_checks() -> None:
    model = SensorEncoder(SMALL)
    assert model(random_windows(5)).shape == (5, 16)
    with pytest.raises(ValueError, match=r"shape \[B, 120, 6\]"):
        model(torch.zeros(5, 100, 6))
    with pytest.raises(ValueError, match=r"shape \[B, 120, 6\]"):
        model(torch.zeros(120, 6))
    with pytest.raises(ValueError, match="NaN"):
        check_windows(np.full((2, 120, 6), np.nan, dtype=np.float32), SMALL)
    with pytest.raises(ValueError, match=r"\[N, 120, 6\]"):
        check_windows(np.zeros((2, 120, 3), dtype=np.float32), SMALL)


def test_normalisation_scales_acc_to_g_and_adds_rotation_invariant_magnitudes() -> None:
    model = SensorEncoder(SMALL_DEVICE_FRAME)
    x = random_windows(3)
    features = model.normalize(x)
    assert features.shape == (3, 120, 8)
    torch.testing.assert_close(features[..., :3], x[..., :3] / STANDARD_GRAVITY)
    torch.testing.assert_close(features[..., 3:6], x[..., 3:6])
    rotation = random_rotation(1)
    rotated = torch.cat([x[..., :3] @ rotation.T, x[..., 3:] @ rotation.T], dim=-1)
    torch.testing.assert_close(model.normalize(rotated)[..., 6:], features[..., 6:], rtol=1e-4, atol=1e-5)
    assert torch.allclose(features[..., 6], (x[..., :3] / STANDARD_GRAVITY).norm(dim=-1))


def test_without_magnitudes_and_accelerometer_only() -> None:
    plain = SensorEncoder(
        SensorEncoderConfig(**{**SMALL_DEVICE_FRAME.to_dict(), "add_magnitude_channels": False})
    )
    assert plain.normalize(random_windows(2)).shape == (2, 120, 6)
    acc_only = SensorEncoder(SensorEncoderConfig(**{**SMALL_DEVICE_FRAME.to_dict(), "input_channels": 3}))
    assert acc_only.normalize(random_windows(2)[..., :3]).shape == (2, 120, 4)
    assert acc_only(random_windows(2)[..., :3]).shape == (2, 16)
    gravity_acc_only = SensorEncoder(SensorEncoderConfig(**{**SMALL.to_dict(), "input_channels": 3}))
    assert gravity_acc_only.normalize(random_windows(2)[..., :3]).shape == (2, 120, 3)
    assert gravity_acc_only(random_windows(2)[..., :3]).shape == (2, 16)


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[..., :3] @ rotation.T, x[..., 3:6] @ rotation.T], dim=-1)


def test_gravity_frame_input_and_embedding_are_invariant_to_any_device_rotation() -> None:
    model = SensorEncoder(SMALL).eval()
    x = random_windows(4)
    for seed in range(3):
        rotated = rotate(x, random_rotation(seed))
        torch.testing.assert_close(model.normalize(rotated), model.normalize(x), rtol=1e-4, atol=1e-4)
        with torch.no_grad():
            torch.testing.assert_close(model(rotated), model(x), rtol=1e-4, atol=1e-4)
    # The device frame is not invariant: the raw axes move with the device.
    device_model = SensorEncoder(SMALL_DEVICE_FRAME).eval()
    assert not torch.allclose(
        device_model.normalize(rotate(x, random_rotation(0))), device_model.normalize(x)
    )


def test_gravity_frame_channels_closed_form() -> None:
    """Gravity on z, a vertical bounce, a horizontal sway along x, a spin about the vertical."""
    t = torch.arange(120, dtype=torch.float32) / 20.0
    x = torch.zeros(1, 120, 6)
    bounce = 0.2 * torch.sin(2 * torch.pi * 2.0 * t)  # g, zero mean over the 6 s window
    sway = 0.1 * torch.sin(2 * torch.pi * 1.0 * t)
    x[0, :, 2] = (1.0 + bounce) * STANDARD_GRAVITY
    x[0, :, 0] = sway * STANDARD_GRAVITY
    x[0, :, 5] = 0.5  # rad/s about z = about the vertical
    x[0, :, 3] = 0.3  # rad/s about x = across the vertical
    channels = SensorEncoder(SMALL).normalize(x)[0]
    torch.testing.assert_close(channels[:, 0], bounce, atol=1e-5, rtol=0)  # along gravity, signed
    torch.testing.assert_close(channels[:, 1], sway.abs(), atol=1e-5, rtol=0)  # across gravity, norm
    expected_magnitude = torch.sqrt((1 + bounce) ** 2 + sway**2)
    torch.testing.assert_close(channels[:, 2], expected_magnitude, atol=1e-5, rtol=0)
    torch.testing.assert_close(channels[:, 3], torch.full((120,), 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(channels[:, 4], torch.full((120,), 0.3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        channels[:, 5], torch.full((120,), (0.5**2 + 0.3**2) ** 0.5), atol=1e-5, rtol=0
    )


def test_checkpoints_without_an_input_frame_load_as_device_frame() -> None:
    legacy = {key: value for key, value in SMALL.to_dict().items() if key != "input_frame"}
    assert SensorEncoderConfig.from_dict(legacy).input_frame == "device"


def test_layers_start_from_different_weights() -> None:
    model = SensorEncoder(SMALL)
    first, second = model.encoder.layers[0], model.encoder.layers[1]
    assert not torch.equal(first.linear1.weight, second.linear1.weight)
    assert not torch.equal(first.self_attn.in_proj_weight, second.self_attn.in_proj_weight)


def test_positions_are_sinusoidal_and_not_in_the_state_dict() -> None:
    table = sinusoidal_positions(6, 8)
    assert table.shape == (6, 8)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0] * 4))
    model = SensorEncoder(SMALL)
    assert "positions" not in model.state_dict()  # recomputed from the config, never sent to clients


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:.*non-constant submodule")
def test_torchscript_gives_the_same_embeddings() -> None:
    model = SensorEncoder(SMALL).eval()
    scripted = torch.jit.script(model)
    x = random_windows(4)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))
    with pytest.raises(torch.jit.Error, match="SensorEncoder expects x of shape"):
        scripted(torch.zeros(1, 60, 6))


def test_save_load_and_encode_windows(tmp_path: Path) -> None:
    model = SensorEncoder(SMALL)
    model.save(tmp_path / "sensor.pt")
    loaded = SensorEncoder.load(tmp_path / "sensor.pt")
    assert loaded.config == SMALL
    X = random_windows(7).numpy()
    embeddings = encode_windows(model, X, batch_size=3)
    assert embeddings.shape == (7, 16) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(encode_windows(loaded, X), embeddings, atol=1e-6)
    assert model.training  # encode_windows restores the mode
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a SensorEncoder checkpoint"):
        SensorEncoder.load(tmp_path / "other.pt")


def test_analysis_token_reads_the_features_its_input_frame_can_see() -> None:
    assert SMALL.analysis_features == ()
    assert SMALL_TOKEN.analysis_features == INVARIANT_FEATURES  # gravity frame: rotation-invariant ones
    assert SensorEncoderConfig(input_frame="device", analysis_token=True).analysis_features == FEATURE_NAMES
    x = random_windows(3).numpy()
    analysis = window_analysis(x, SMALL_TOKEN)
    assert analysis.shape == (3, len(INVARIANT_FEATURES)) and analysis.dtype == np.float32
    acc_only = SensorEncoderConfig(**{**SMALL_TOKEN.to_dict(), "input_channels": 3})
    no_gyro = window_analysis(x[:, :, :3], acc_only)
    assert np.all(no_gyro[:, INVARIANT_FEATURES.index("gyro_available")] == 0)
    assert np.all(no_gyro[:, INVARIANT_FEATURES.index("gyro_magnitude_mean")] == 0)
    with pytest.raises(ValueError, match="must have shape"):
        window_analysis(x, acc_only)
    # In the walking frame the token also reads tilt_z, the segment's inclination from its walking posture.
    framed = SensorEncoderConfig(**{**SMALL_TOKEN.to_dict(), "walking_frame": True})
    assert framed.analysis_features == (*INVARIANT_FEATURES, "tilt_z")
    np.testing.assert_array_equal(window_analysis(x, framed)[:, :-1], analysis)
    with pytest.raises(
        ValueError, match="walking_frame .* needs input_frame='gravity' and analysis_token=True"
    ):
        SensorEncoderConfig(input_frame="device", analysis_token=True, walking_frame=True)


def test_analysis_token_is_one_more_input_and_leaves_the_other_weights_as_they_were() -> None:
    torch.manual_seed(0)
    plain = SensorEncoder(SMALL)
    torch.manual_seed(0)
    model = SensorEncoder(SMALL_TOKEN).eval()
    for name, weight in plain.state_dict().items():  # the token's layers are drawn after all the others
        torch.testing.assert_close(model.state_dict()[name], weight)
    # window_features holds only non-persistent buffers: no new state_dict entry, the federated payload
    assert {name.split(".")[0] for name in set(model.state_dict()) - set(plain.state_dict())} == {
        "analysis_projection"
    }
    x = random_windows(4)
    analysis = torch.from_numpy(window_analysis(x.numpy(), SMALL_TOKEN))
    with torch.no_grad():
        embeddings = model(x, analysis)
        changed = analysis.clone()
        changed[:, INVARIANT_FEATURES.index("step_rate")] += 2.0
        assert embeddings.shape == (4, 16)
        assert not torch.allclose(model(x, changed), embeddings)  # the model reads the analysis
    np.testing.assert_allclose(
        encode_windows(model, x.numpy()), torch.nn.functional.normalize(embeddings, dim=-1).numpy(), atol=1e-5
    )
    with torch.no_grad():  # no analysis given: the model computes it itself (WindowFeatures)
        torch.testing.assert_close(model(x), embeddings, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="pass analysis \\[B, 34\\] from window_analysis"):
        model(x, analysis[:2])
    with pytest.raises(ValueError, match="analysis must have 34 columns, got 52"):
        model(x, torch.zeros(4, 52))


def test_analysis_token_model_stays_invariant_to_device_rotation() -> None:
    model = SensorEncoder(SMALL_TOKEN).eval()
    x = random_windows(4)
    reference = encode_windows(model, x.numpy())
    for seed in range(3):
        rotated = rotate(x, random_rotation(seed)).numpy()
        np.testing.assert_allclose(encode_windows(model, rotated), reference, atol=1e-4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:.*non-constant submodule")
def test_analysis_token_model_scripts_with_two_inputs_and_loads_from_old_configs(tmp_path: Path) -> None:
    model = SensorEncoder(SMALL_TOKEN).eval()
    scripted = torch.jit.freeze(torch.jit.script(model))
    x = random_windows(4)
    analysis = torch.from_numpy(window_analysis(x.numpy(), SMALL_TOKEN))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, analysis), model(x, analysis))
        torch.testing.assert_close(scripted(x), model(x))  # the analysis computed inside the model
    with pytest.raises(torch.jit.Error, match="has an analysis token"):
        scripted(x, analysis[:2])
    model.save(tmp_path / "token.pt")
    assert SensorEncoder.load(tmp_path / "token.pt").config == SMALL_TOKEN
    legacy = {key: value for key, value in SMALL.to_dict().items() if key != "analysis_token"}
    assert SensorEncoderConfig.from_dict(legacy).analysis_token is False  # written before the token existed


def test_a_checkpoint_written_with_a_removed_switch_loads_only_at_the_kept_value() -> None:
    """trunk_equivalent and acc_level were removed; checkpoints written while they existed carry them."""
    written_then = {**SMALL_TOKEN.to_dict(), "trunk_equivalent": False, "acc_level": True}
    assert SensorEncoderConfig.from_dict(written_then) == SMALL_TOKEN
    with pytest.raises(ValueError, match=r"trained with acc_level=False, a switch since removed"):
        SensorEncoderConfig.from_dict({**written_then, "acc_level": False})
    with pytest.raises(ValueError, match=r"trained with trunk_equivalent=True, a switch since removed"):
        SensorEncoderConfig.from_dict({**written_then, "trunk_equivalent": True})
