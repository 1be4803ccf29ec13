"""Training loops: stage 1 on a tiny text encoder (real MiniLM when slow), stage 2 on synthetic windows."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import tiny_text_encoder_dir  # noqa: F401 (fixture)

from common.method.train import (
    SensorTrainConfig,
    TextTrainConfig,
    _TextEmbedder,
    _tokenize_capped,
    distinct_targets,
    rotate_windows,
    train_sensor_encoder,
    train_sensor_epochs,
    train_text_encoder,
)
from common.models.losses import InfoNCELoss, same_group_mask
from common.models.sensor_encoder import (
    STANDARD_GRAVITY,
    SensorEncoder,
    SensorEncoderConfig,
    encode_windows,
    window_analysis,
)
from common.models.text_encoder import DEFAULT_TEXT_ENCODER, TextEncoder

torch.set_num_threads(1)
TORCH_ADAMW = torch.optim.AdamW  # tests below wrap it

CATEGORY = {"walking": "locomotion", "running": "locomotion", "sitting": "static", "lying": "static"}
DESCRIPTIONS = {
    "walking": [
        "a person walks at a steady pace",
        "walking: regular steps, the legs swing",
        "strolling along",
    ],
    "running": ["a person runs fast", "running: strong periodic impacts", "jogging quickly"],
    "sitting": ["a person sits on a chair", "sitting still, upper body upright", "seated and calm"],
    "lying": ["a person lies on a bed", "lying down, body horizontal", "resting flat on the back"],
}
SENSOR_TEXTS = {
    "walking": ["moderate periodic acceleration near 2 Hz", "steady rhythm, medium amplitude"],
    "running": ["strong periodic acceleration near 3 Hz", "large impacts, fast rhythm"],
    "sitting": ["almost no movement, gravity on the vertical axis", "flat signal, upright"],
    "lying": ["almost no movement, gravity on the horizontal axis", "flat signal, horizontal"],
}


def labeled_texts(repeats: int = 3) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, options in SENSOR_TEXTS.items():
        for _ in range(repeats):  # rule interpretations repeat verbatim
            texts.extend(options)
            labels.extend([label] * len(options))
    return texts, labels


def text_path_cross_entropy(encoder: TextEncoder, texts: list[str], labels: list[str]) -> float:
    """Mean -log p(true label | sensor text) against description prototypes, at temperature 0.07."""
    names = sorted(DESCRIPTIONS)
    prototypes = np.stack([encoder.encode(DESCRIPTIONS[name]).mean(axis=0) for name in names])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    logits = torch.from_numpy(encoder.encode(texts) @ prototypes.T) / 0.07
    target = torch.tensor([names.index(label) for label in labels])
    return float(torch.nn.functional.cross_entropy(logits, target))


# ------------------------------------------------------------------------------------------- stage 1


def test_text_training_reports_every_term_and_the_budget(tiny_text_encoder_dir: Path) -> None:  # noqa: F811
    encoder = TextEncoder(tiny_text_encoder_dir)
    texts, labels = labeled_texts()
    config = TextTrainConfig(max_steps=3, batch_size=8, max_length=8, seed=1)
    history = train_text_encoder(
        encoder, texts, labels, DESCRIPTIONS, CATEGORY.__getitem__, config, progress=False
    )
    for term in ("loss", "align", "ca1", "ca2", "ca3", "re", "lr"):
        assert len(history[term]) == 3 and all(np.isfinite(history[term]))
    assert history["steps"] == 3
    assert history["unique_pairs"] == 8 and history["num_texts"] == 24
    assert history["num_descriptions"] == 12
    assert history["categories"] == ["locomotion", "static"]
    assert history["token_lengths"]["sensor"]["max"] <= 8 and history["token_lengths"]["sensor"]["cut"] >= 1
    assert history["token_lengths"]["description"]["max"] <= 8
    assert 10 < history["decoder_vocab"] < 200  # compact decoder vocabulary, not the 30k WordPiece one
    assert min(history["re"]) > 0 and min(history["ca1"]) > 0
    assert not encoder.training


def test_text_training_steps_follow_epochs_without_max_steps(tiny_text_encoder_dir: Path) -> None:  # noqa: F811
    encoder = TextEncoder(tiny_text_encoder_dir)
    texts, labels = labeled_texts()
    config = TextTrainConfig(max_steps=None, epochs=2, batch_size=4, beta=0.0, descriptions_per_label=1)
    history = train_text_encoder(
        encoder, texts, labels, DESCRIPTIONS, CATEGORY.__getitem__, config, progress=False
    )
    assert history["steps"] == 4  # 2 epochs x ceil(8 unique pairs / 4)
    assert history["num_descriptions"] == 4
    assert history["re"] == [0.0] * 4


def test_text_training_lowers_the_text_path_loss(tiny_text_encoder_dir: Path) -> None:  # noqa: F811
    encoder = TextEncoder(tiny_text_encoder_dir)
    texts, labels = labeled_texts(repeats=1)
    before = text_path_cross_entropy(encoder, texts, labels)
    config = TextTrainConfig(max_steps=30, batch_size=8, lr=1e-3, max_length=24, seed=0)
    train_text_encoder(encoder, texts, labels, DESCRIPTIONS, CATEGORY.__getitem__, config, progress=False)
    assert text_path_cross_entropy(encoder, texts, labels) < 0.7 * before


@pytest.mark.parametrize("trainable_layers", [1, 2])
def test_cached_lower_layers_embed_as_the_whole_model(
    tiny_text_encoder_dir: Path,  # noqa: F811
    trainable_layers: int,
) -> None:
    """Stage 1 runs only the top layers on the cached output of the frozen bottom: in eval mode (no
    dropout) that must give the whole model's embeddings, whatever the padding of the batch."""
    encoder = TextEncoder(tiny_text_encoder_dir).eval()
    texts = ["walking at a steady pace", "still", "a long description of climbing the stairs " * 3]
    token_ids, _ = _tokenize_capped(encoder, texts, max_length=64)
    cached = _TextEmbedder(encoder, token_ids, trainable_layers)
    whole = _TextEmbedder(encoder, token_ids, None)
    assert cached.top is not None and len(cached.top) == trainable_layers and whole.top is None
    with torch.no_grad():
        embeddings, ids, mask = cached([2, 0, 1])
        expected = encoder.embed_tokens(ids, mask)
        alone = cached([1])[0]
    torch.testing.assert_close(embeddings, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone[0], expected[2], atol=1e-5, rtol=1e-5)


def test_trainable_layers_freezes_the_bottom_of_the_encoder(tiny_text_encoder_dir: Path) -> None:  # noqa: F811
    encoder = TextEncoder(tiny_text_encoder_dir)
    bottom = copy.deepcopy(encoder.model.encoder.layer[0].state_dict())
    top = copy.deepcopy(encoder.model.encoder.layer[1].state_dict())
    texts, labels = labeled_texts(repeats=1)
    config = TextTrainConfig(max_steps=2, batch_size=8, lr=1e-3, trainable_layers=1, warmup_fraction=0.0)
    train_text_encoder(encoder, texts, labels, DESCRIPTIONS, CATEGORY.__getitem__, config, progress=False)
    for name, value in encoder.model.encoder.layer[0].state_dict().items():
        assert torch.equal(value, bottom[name]), name
    assert any(not torch.equal(v, top[k]) for k, v in encoder.model.encoder.layer[1].state_dict().items())
    assert all(p.requires_grad for p in encoder.parameters())  # handed back fully trainable


def test_text_training_rejects_inconsistent_inputs(tiny_text_encoder_dir: Path) -> None:  # noqa: F811
    encoder = TextEncoder(tiny_text_encoder_dir)
    with pytest.raises(ValueError, match="no description for labels \\['jumping'\\]"):
        train_text_encoder(encoder, ["x"], ["jumping"], DESCRIPTIONS, CATEGORY.get, progress=False)
    with pytest.raises(ValueError, match="2 rows but sensor_labels has 1"):
        train_text_encoder(encoder, ["x", "y"], ["walking"], DESCRIPTIONS, CATEGORY.get, progress=False)
    with pytest.raises(ValueError, match="max_steps"):
        TextTrainConfig(max_steps=0)


@pytest.mark.slow
def test_real_minilm_few_steps_lower_the_loss() -> None:
    encoder = TextEncoder(DEFAULT_TEXT_ENCODER)
    texts, labels = labeled_texts(repeats=1)
    before = text_path_cross_entropy(encoder, texts, labels)
    config = TextTrainConfig(max_steps=6, batch_size=8, lr=5e-5, max_length=24, warmup_fraction=0.0, seed=0)
    history = train_text_encoder(
        encoder, texts, labels, DESCRIPTIONS, CATEGORY.__getitem__, config, progress=False
    )
    after = text_path_cross_entropy(encoder, texts, labels)
    assert after < before
    assert np.mean(history["align"][-2:]) < np.mean(history["align"][:2])


# ------------------------------------------------------------------------------------------- stage 2

SMALL = SensorEncoderConfig(d_model=32, num_heads=2, num_layers=1, ff_dim=64, out_dim=16, patch_size=20)


def synthetic_stage2(n_per_class: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three 'activities' (still, 1 Hz, 3 Hz oscillation) whose windows share one target per class."""
    rng = np.random.default_rng(seed)
    t = np.arange(120) / 20.0
    X, y = [], []
    for label, (frequency, amplitude) in enumerate([(0.0, 0.0), (1.0, 3.0), (3.0, 6.0)]):
        for _ in range(n_per_class):
            window = rng.normal(0, 0.3, size=(120, 6)).astype(np.float32)
            window[:, 2] += STANDARD_GRAVITY + amplitude * np.sin(
                2 * np.pi * frequency * t + rng.uniform(0, 6)
            )
            window[:, 3] += 0.3 * amplitude * np.cos(2 * np.pi * frequency * t)
            X.append(window)
            y.append(label)
    targets = np.linalg.qr(rng.normal(size=(16, 3)))[0].T.astype(np.float32)  # 3 orthonormal targets
    y = np.array(y)
    return np.stack(X).astype(np.float32), targets[y], y


def test_sensor_training_aligns_windows_with_their_targets() -> None:
    X, Z, y = synthetic_stage2()
    torch.manual_seed(0)
    model = SensorEncoder(SMALL)
    config = SensorTrainConfig(epochs=12, batch_size=16, lr=3e-3, seed=0)
    history = train_sensor_encoder(model, X, Z, config, progress=False)
    assert len(history["loss"]) == 12 and history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["distinct_targets"] == 3 and history["num_examples"] == len(X)
    assert history["windows_per_second"] > 0
    predicted = np.argmax(encode_windows(model, X) @ Z[[0, len(X) // 3, -1]].T, axis=1)
    assert np.mean(predicted == y) > 0.9


@pytest.mark.parametrize(("input_frame", "rotation_deg"), [("gravity", 0.0), ("device", 30.0)])
def test_sensor_training_with_the_analysis_token_aligns(input_frame: str, rotation_deg: float) -> None:
    """Central stage 2 and a client's local epochs with the analysis token (device frame + rotation: the
    per-axis analysis is recomputed for each rotated batch)."""
    X, Z, y = synthetic_stage2()
    config = SensorEncoderConfig(**{**SMALL.to_dict(), "analysis_token": True, "input_frame": input_frame})
    torch.manual_seed(0)
    model = SensorEncoder(config)
    before = copy.deepcopy(model.analysis_projection.state_dict())
    train_config = SensorTrainConfig(
        epochs=12, batch_size=16, lr=3e-3, rotation_jitter_deg=rotation_deg, seed=0
    )
    history = train_sensor_encoder(model, X, Z, train_config, progress=False)
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    predicted = np.argmax(encode_windows(model, X) @ Z[[0, len(X) // 3, -1]].T, axis=1)
    assert np.mean(predicted == y) > 0.9
    assert any(not torch.equal(w, model.analysis_projection.state_dict()[k]) for k, w in before.items())
    local = train_sensor_epochs(SensorEncoder(config), X, Z, SensorTrainConfig(epochs=1, seed=0))
    assert np.isfinite(local["loss"])
    early_stopped = train_sensor_encoder(
        SensorEncoder(config), X, Z, SensorTrainConfig(epochs=2, val_fraction=0.25, seed=0), progress=False
    )
    assert len(early_stopped["val_loss"]) == 2 and np.all(np.isfinite(early_stopped["val_loss"]))


def test_rotate_windows_turns_acc_and_gyro_alike_and_keeps_magnitudes() -> None:
    X, _, _ = synthetic_stage2(n_per_class=2)
    X_t = torch.from_numpy(X)
    assert torch.allclose(rotate_windows(X_t, torch.zeros(len(X), 3)), X_t)
    quarter_turn = torch.tensor([[0.0, 0.0, 90.0]]).repeat(len(X), 1)  # about z: (x, y) -> (-y, x)
    rotated = rotate_windows(X_t, quarter_turn)
    for offset in (0, 3):  # accelerometer, then gyroscope
        assert torch.allclose(rotated[..., offset], -X_t[..., offset + 1], atol=1e-5)
        assert torch.allclose(rotated[..., offset + 1], X_t[..., offset], atol=1e-5)
        assert torch.allclose(rotated[..., offset + 2], X_t[..., offset + 2], atol=1e-5)
    random = rotate_windows(X_t, torch.randn(len(X), 3) * 60)
    for part in (slice(0, 3), slice(3, 6)):
        assert torch.allclose(random[..., part].norm(dim=-1), X_t[..., part].norm(dim=-1), atol=1e-4)


def test_sensor_training_with_rotation_augmentation_still_aligns() -> None:
    X, Z, y = synthetic_stage2()
    torch.manual_seed(0)
    model = SensorEncoder(SMALL)
    config = SensorTrainConfig(epochs=12, batch_size=16, lr=3e-3, rotation_jitter_deg=30.0, seed=0)
    history = train_sensor_encoder(model, X, Z, config, progress=False)
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    predicted = np.argmax(encode_windows(model, X) @ Z[[0, len(X) // 3, -1]].T, axis=1)
    assert np.mean(predicted == y) > 0.9
    with pytest.raises(ValueError, match="rotation_jitter_deg must be in \\[0, 180\\] degrees, got -1"):
        SensorTrainConfig(rotation_jitter_deg=-1.0)


def test_sensor_training_keeps_the_best_validation_epoch() -> None:
    X, Z, _ = synthetic_stage2()
    X_val, Z_val, _ = synthetic_stage2(n_per_class=6, seed=1)
    model = SensorEncoder(SMALL)
    # One validation batch (18 <= 32 windows), so the loss below is computed on the same batch.
    config = SensorTrainConfig(epochs=6, batch_size=32, lr=3e-3, patience=2, seed=0)
    history = train_sensor_encoder(model, X, Z, config, progress=False, X_val=X_val, Z_val=Z_val)
    assert len(history["val_loss"]) == history["epochs_run"] <= 6
    assert history["best_epoch"] == int(np.argmin(history["val_loss"]))
    with torch.no_grad():
        model.eval()
        E = model(torch.from_numpy(X_val), torch.from_numpy(window_analysis(X_val, model.config)))
        groups = torch.from_numpy(distinct_targets(Z_val)[1])
        val_loss = InfoNCELoss(config.temperature)(E, torch.from_numpy(Z_val), same_group_mask(groups))[
            "loss"
        ]
    assert float(val_loss) == pytest.approx(min(history["val_loss"]), rel=1e-4)


def test_sensor_training_with_a_random_validation_fraction() -> None:
    X, Z, _ = synthetic_stage2(n_per_class=10)
    history = train_sensor_encoder(
        SensorEncoder(SMALL),
        X,
        Z,
        SensorTrainConfig(epochs=2, batch_size=8, val_fraction=0.2),
        progress=False,
    )
    assert history["num_examples"] == 24 and len(history["val_loss"]) == 2


def test_local_epochs_are_deterministic_and_leave_the_global_rng_alone() -> None:
    X, Z, _ = synthetic_stage2(n_per_class=8)
    model = SensorEncoder(SMALL)
    first, second = copy.deepcopy(model), copy.deepcopy(model)
    config = SensorTrainConfig(epochs=2, batch_size=8, lr=1e-3, seed=5)
    rng_before = torch.get_rng_state()
    result = train_sensor_epochs(first, X, Z, config, seed=11)
    assert torch.equal(torch.get_rng_state(), rng_before)
    train_sensor_epochs(second, X, Z, config, seed=11)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert isinstance(result["loss"], float) and result["num_examples"] == 24
    assert len(result["losses"]) == 2 and result["epochs"] == 2


def test_proximal_term_keeps_local_weights_near_the_global_ones() -> None:
    X, Z, _ = synthetic_stage2(n_per_class=8)
    model = SensorEncoder(SMALL)
    initial = [p.detach().clone() for p in model.parameters()]
    config = SensorTrainConfig(epochs=3, batch_size=8, lr=3e-3, seed=0)

    def drift(mu: float) -> float:
        local = copy.deepcopy(model)
        train_sensor_epochs(local, X, Z, config, proximal_mu=mu)
        return float(
            sum(((p.detach() - p0) ** 2).sum() for p, p0 in zip(local.parameters(), initial, strict=True))
        )

    assert drift(10.0) < 0.8 * drift(0.0)


THREE_LAYERS = SensorEncoderConfig(**{**SMALL.to_dict(), "num_layers": 3, "analysis_token": True})


@pytest.mark.parametrize("layers", [0, 1, 2, 3])
def test_bottom_states_and_top_embeddings_compute_forward(layers: int) -> None:
    X, _, _ = synthetic_stage2(n_per_class=4)
    model = SensorEncoder(THREE_LAYERS).eval()
    windows = torch.from_numpy(X)
    with torch.no_grad():
        split = model.top_embeddings(model.bottom_states(windows, None, layers), layers)
        torch.testing.assert_close(split, model(windows), rtol=1e-5, atol=1e-6)


def test_frozen_bottom_layers_counts_the_layers_train_only_leaves_frozen() -> None:
    model = SensorEncoder(THREE_LAYERS)
    assert model.frozen_bottom_layers() == 0  # everything trains
    for top in (1, 2, 3):
        model.train_only(model.top_layer_names(top))
        assert model.frozen_bottom_layers() == 3 - top
    model.train_only([name for name in model.top_layer_names(1) if not name.startswith("encoder.layers")])
    assert model.frozen_bottom_layers() == 3  # only the final norm and the output projection train
    model.train_only(model.top_layer_names(1) + ["patch_projection.weight"])
    assert model.frozen_bottom_layers() == 0  # a trained input weight changes every layer's input


def test_local_training_over_a_frozen_bottom_runs_it_once_and_trains_as_the_whole_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client training only the top layer (client-train-layers) runs the frozen layers once per window, not
    once per epoch. Without dropout that is exactly what running the whole model every batch trains; the
    frozen layers stay as they were."""
    X, Z, _ = synthetic_stage2(n_per_class=8)
    model = SensorEncoder(SensorEncoderConfig(**{**THREE_LAYERS.to_dict(), "dropout": 0.0}))
    model.train_only(model.top_layer_names(1))
    cached, whole = copy.deepcopy(model), copy.deepcopy(model)
    config = SensorTrainConfig(epochs=2, batch_size=8, lr=1e-3, seed=3)
    bottom_calls = []
    original_bottom = SensorEncoder.bottom_states

    def counted_bottom(self, *args, **kwargs):
        bottom_calls.append(len(args[0]))
        return original_bottom(self, *args, **kwargs)

    monkeypatch.setattr(SensorEncoder, "bottom_states", counted_bottom)
    train_sensor_epochs(cached, X, Z, config)
    assert sum(bottom_calls) == len(X)  # each window once, for both epochs
    monkeypatch.setattr(SensorEncoder, "frozen_bottom_layers", lambda self: 0)
    train_sensor_epochs(whole, X, Z, config)
    # The embeddings, not each weight: the attention's key bias gets a gradient of rounding noise only
    # (softmax ignores a shift), which AdamW's normalised step turns into +-lr either way.
    windows = torch.from_numpy(X)
    with torch.no_grad():
        torch.testing.assert_close(cached.eval()(windows), whole.eval()(windows), rtol=1e-4, atol=1e-5)
    for name, value in cached.state_dict().items():
        if name.startswith(("encoder.layers.0.", "encoder.layers.1.", "patch_", "analysis_")):
            assert torch.equal(value, model.state_dict()[name]), name
    assert not torch.equal(cached.output_projection.weight, model.output_projection.weight)


def _adamw_forced_to(monkeypatch: pytest.MonkeyPatch, foreach: bool) -> list[bool]:
    """Make train.py's AdamW use this update (foreach or torch's per-tensor loop); returns the flags that
    train.py itself asked for, one per optimiser built."""
    asked: list[bool] = []

    def forced(groups: list[dict], **options: object) -> torch.optim.AdamW:
        asked.append(bool(options.get("foreach")))
        optimizer = TORCH_ADAMW(groups, **(options | {"foreach": foreach}))
        assert optimizer.defaults["foreach"] is foreach
        return optimizer

    monkeypatch.setattr(torch.optim, "AdamW", forced)
    return asked


def test_foreach_adamw_trains_the_same_stage2_weights_as_the_per_tensor_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The foreach update (train.py asks for it: on the CPU torch would loop over the tensors in Python)
    must not move a bit: a small stage 2 with the early stop and a client's local epochs, trained with each
    update from the same start, ends with equal weights and equal losses."""
    X, Z, _ = synthetic_stage2(n_per_class=8)
    central = SensorTrainConfig(epochs=3, batch_size=8, lr=3e-3, val_fraction=0.25, seed=0)
    local = SensorTrainConfig(epochs=2, batch_size=8, lr=3e-3, rotation_jitter_deg=20.0, seed=1)

    def train(foreach: bool) -> tuple[list[torch.Tensor], list, list[bool]]:
        asked = _adamw_forced_to(monkeypatch, foreach)
        torch.manual_seed(0)
        model = SensorEncoder(SMALL)
        history = train_sensor_encoder(model, X, Z, central, progress=False)
        client = train_sensor_epochs(model, X, Z, local, proximal_mu=0.1)
        losses = [history["loss"], history["val_loss"], history["best_epoch"], client["losses"]]
        return list(model.state_dict().values()), losses, asked

    foreach_weights, foreach_losses, asked = train(foreach=True)
    loop_weights, loop_losses, _ = train(foreach=False)
    assert asked == [True, True]  # central stage 2 and the client both ask for the foreach update
    assert foreach_losses == loop_losses
    assert len(foreach_weights) == len(loop_weights)
    for foreach_weight, loop_weight in zip(foreach_weights, loop_weights, strict=True):
        assert torch.equal(foreach_weight, loop_weight)


def test_foreach_adamw_trains_the_same_text_encoder_as_the_per_tensor_loop(
    monkeypatch: pytest.MonkeyPatch,
    tiny_text_encoder_dir: Path,  # noqa: F811
) -> None:
    """Stage 1 shares the optimiser: the same check on the text encoder and its reconstruction decoder."""
    texts, labels = labeled_texts()
    config = TextTrainConfig(max_steps=3, batch_size=8, lr=1e-3, max_length=12, seed=0)

    def train(foreach: bool) -> tuple[list[torch.Tensor], list[float]]:
        _adamw_forced_to(monkeypatch, foreach)
        encoder = TextEncoder(tiny_text_encoder_dir)
        history = train_text_encoder(
            encoder, texts, labels, DESCRIPTIONS, CATEGORY.__getitem__, config, progress=False
        )
        return list(encoder.state_dict().values()), history["loss"]

    foreach_weights, foreach_losses = train(foreach=True)
    loop_weights, loop_losses = train(foreach=False)
    assert foreach_losses == loop_losses
    for foreach_weight, loop_weight in zip(foreach_weights, loop_weights, strict=True):
        assert torch.equal(foreach_weight, loop_weight)


def test_sensor_training_rejects_mismatched_targets() -> None:
    X, Z, _ = synthetic_stage2(n_per_class=2)
    model = SensorEncoder(SMALL)
    with pytest.raises(ValueError, match=r"Z must be \[6, 16\]"):
        train_sensor_encoder(model, X, Z[:, :8], progress=False)
    with pytest.raises(ValueError, match=r"X must have shape \[N, 120, 6\]"):
        train_sensor_epochs(model, X[:, :60], Z, SensorTrainConfig())
    with pytest.raises(ValueError, match="pass both X_val and Z_val"):
        train_sensor_encoder(model, X, Z, SensorTrainConfig(epochs=1), progress=False, X_val=X)


def test_average_state_dicts_is_the_window_weighted_mean_key_by_key() -> None:
    from common.method.train import average_state_dicts

    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.0)}
    b = {"w": torch.tensor([5.0, -2.0]), "b": torch.tensor(4.0)}
    averaged = average_state_dicts([a, b], [30, 10])  # 3 : 1, as window counts
    torch.testing.assert_close(averaged["w"], torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(averaged["b"], torch.tensor(1.0))
    # A generator is read one state at a time and gives the same mean as the list, bit for bit.
    streamed = average_state_dicts((state for state in (a, b)), [30, 10])
    assert all(torch.equal(streamed[key], averaged[key]) for key in averaged)
    # One model is its own mean.
    model = SensorEncoder(SMALL)
    alone = average_state_dicts([model.state_dict()], [7])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(alone[key], value)


def test_average_state_dicts_names_what_does_not_fit() -> None:
    from common.method.train import average_state_dicts

    state = {"w": torch.ones(2)}
    with pytest.raises(ValueError, match="more states than the 1 weights"):
        average_state_dicts([state, state], [1])
    with pytest.raises(ValueError, match="1 states for 2 weights"):
        average_state_dicts(iter([state]), [1, 1])
    with pytest.raises(ValueError, match="positive sum"):
        average_state_dicts([state, state], [0, 0])
    with pytest.raises(ValueError, match="state 1 has other keys"):
        average_state_dicts([state, {"v": torch.ones(2)}], [1, 1])
    with pytest.raises(ValueError, match="'step' is torch.int64, not floating point"):
        average_state_dicts([{"step": torch.tensor(3)}], [1])
