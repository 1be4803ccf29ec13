"""Central LanHAR end to end on real data: real MiniLM, rules interpreter, uci -> held-out dsads_torso."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from common.data.errors import DataError
from simulations.central import (
    _cap_recordings,
    central_config,
    central_interpreter,
    load_pair,
    sensor_encoder_config,
)
from simulations.cli import main as fedlanhar

NEW = "running on treadmill,cycling on exercise bike (horizontal),jumping,lying on back"


@pytest.mark.slow
def test_train_then_evaluate_small_budget_beats_chance(tmp_path, data_dir):
    model_dir, eval_dir = tmp_path / "model", tmp_path / "eval"
    assert (
        fedlanhar(
            [
                "train",
                "--data-dir",
                str(data_dir),
                "--source",
                "uci",
                "--target",
                "dsads_torso",
                "--activities",
                "walking,upstairs,downstairs,sitting",
                "--budget",
                "small",
                "--out",
                str(model_dir),
            ]
        )
        == 0
    )
    trained = json.loads((model_dir / "metrics.json").read_text())
    assert trained["config"]["budget"] == "small" and trained["seed"] == 0
    split = trained["split"]
    assert not set(split["target_train_users"]) & set(split["target_eval_users"])

    assert (
        fedlanhar(
            [
                "evaluate",
                "--data-dir",
                str(data_dir),
                "--model",
                str(model_dir),
                "--target",
                "dsads_torso",
                "--new-activities",
                NEW,
                "--out",
                str(eval_dir),
            ]
        )
        == 0
    )
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["evaluated_on"].startswith("held-out users")
    for key in ("accuracy", "macro_f1", "category_accuracy", "new_activity_accuracy"):
        assert math.isfinite(metrics[key]), key
    assert metrics["accuracy"] > 0.25 + 0.1  # four classes: chance is 0.25
    assert metrics["new_activity_accuracy"] > metrics["new_activity_chance"]
    assert (eval_dir / "confusion.png").stat().st_size > 0

    export_dir = tmp_path / "export"
    assert fedlanhar(["export", "--model", str(model_dir), "--out", str(export_dir)]) == 0
    exported = json.loads((export_dir / "metrics.json").read_text())
    assert exported["total_mb"] <= 25.0 and exported["latency"]["median_ms"] > 0
    assert exported["latency_onnxruntime"]["median_ms"] > 0  # sensor_encoder.onnx, raw window in


def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path, data_dir, capsys):
    code = fedlanhar(
        [
            "train",
            "--data-dir",
            str(data_dir),
            "--source",
            "nosuchset",
            "--target",
            "uci",
            "--budget",
            "small",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "nosuchset" in capsys.readouterr().err
    code = fedlanhar(
        [
            "train",
            "--data-dir",
            str(data_dir),
            "--source",
            "uci",
            "--target",
            "dsads_torso",
            "--activities",
            "walking,flying",
            "--budget",
            "small",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "flying" in capsys.readouterr().err


@pytest.mark.slow
def test_stage1_is_trained_once_per_source_and_reuse_changes_nothing(tmp_path, data_dir):
    """Two targets of one source share one stage-1 run; reusing it gives the model that training gives."""
    from simulations.central import central_config, train_central

    def config(target: str):
        return central_config(
            "small", source="uci", target=target, stage1_steps=3, stage2_epochs=1, max_windows_per_class=24
        )

    cache = tmp_path / "text-spaces"
    first = train_central(config("dsads_torso"), data_dir, tmp_path / "torso", False, cache)
    reused = train_central(config("dsads_rightleg"), data_dir, tmp_path / "leg", False, cache)
    fresh = train_central(config("dsads_rightleg"), data_dir, tmp_path / "leg-fresh", False)

    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 1 and entries[0].startswith("stage1-")
    assert "reused" not in first["stage1"] and reused["stage1"]["reused"] == str(cache / entries[0])
    assert "reused" not in fresh["stage1"]
    assert reused["source_val"] == fresh["source_val"]
    assert reused["stage2"]["loss"] == fresh["stage2"]["loss"]
    assert reused["seconds"]["stage1"] < first["seconds"]["stage1"]


def test_the_open_target_pool_trains_on_every_activity_of_the_same_target_users(data_dir):
    """By default stage 2's unlabeled target windows are all windows of the target's training users (their
    other activities too); the closed pool keeps only those of the pair's activities. The users, the source
    side and the scored windows are the same."""
    opened = load_pair(central_config("default", source="uci", target="dsads_torso"), data_dir)
    config = central_config("default", source="uci", target="dsads_torso", stage2_target_all_activities=False)
    closed = load_pair(config, data_dir)
    assert set(opened["target_train"].user) == set(closed["target_train"].user)
    assert set(opened["target_train"].labels()) > set(closed["target_train"].labels())
    assert len(set(opened["target_train"].labels())) == len(opened["target_train"].label_names) == 19
    for split in ("source_train", "source_val", "target_eval"):
        assert (opened[split].X == closed[split].X).all() and opened[split].labels() == closed[split].labels()
    assert not set(opened["target_train"].user) & set(opened["target_eval"].user)


def test_a_budget_caps_the_open_pool_by_whole_recordings_without_its_labels(data_dir):
    """The small budget's cap on the unlabeled pool: at most cap x activities windows, whole recordings, the
    same for any labelling of those windows (labels scrambled: the same windows are kept)."""
    config = central_config("small", source="uci", target="dsads_torso")
    pool = load_pair(config, data_dir)["target_train"]
    cap = config.max_windows_per_class * len(config.activities)
    assert len(pool) == cap
    full = load_pair(central_config("default", source="uci", target="dsads_torso"), data_dir)["target_train"]
    kept = set(map(int, np.unique(pool.segment)))
    partial = [s for s in kept if np.sum(pool.segment == s) < np.sum(full.segment == s)]
    assert len(partial) <= 1  # only the last recording taken may be cut at the cap
    scrambled = dataclasses.replace(full, y=np.random.default_rng(1).permutation(full.y))
    assert (_cap_recordings(scrambled, cap, config.seed).X == _cap_recordings(full, cap, config.seed).X).all()


def test_a_stage2_schedule_that_does_not_exist_is_named_in_the_error() -> None:
    with pytest.raises(DataError, match="stage2_schedule must be one of .*'target-first'"):
        central_config("small", stage2_schedule="target-first")
    with pytest.raises(DataError, match="stage2_target_epochs must be >= 1, got 0"):
        central_config("small", stage2_target_epochs=0)
    with pytest.raises(
        DataError, match=r"stage2_target_rounds must be >= 1 and divide stage2_target_epochs \(15\), got 4"
    ):
        central_config("small", stage2_target_rounds=4)


def test_fedavg_target_phase_ends_on_the_target_rows_with_every_user_in_every_round() -> None:
    """The federation's order in one process: the source rows alone, then the target rows (the same windows,
    their targets permuted) split between two users of unequal size; after 3 rounds of per-user copies
    averaged, the model is aligned with the target rows' targets, so the averaged copies learned them last."""
    from test_train import SMALL, synthetic_stage2

    from common.method.train import SensorTrainConfig
    from common.models.sensor_encoder import SensorEncoder, encode_windows
    from simulations.central import TARGET_PHASE_SEED_OFFSET, _train_source_then_fedavg

    X, Z, y = synthetic_stage2()
    prototypes = Z[[0, len(X) // 3, -1]]
    swapped = prototypes[[1, 2, 0]]
    windows, targets = np.concatenate([X, X]), np.concatenate([Z, swapped[y]])
    users = np.where(np.arange(len(X)) % 3 == 0, 7, 11)  # user 7 holds a third of the target rows
    torch.manual_seed(0)
    model = SensorEncoder(SMALL)
    config = SensorTrainConfig(epochs=6, batch_size=16, lr=3e-3, seed=3)

    def fedavg(model: SensorEncoder, target_users: np.ndarray) -> dict:
        return _train_source_then_fedavg(
            model,
            windows,
            targets,
            len(X),
            config,
            9,
            False,
            target_users=target_users,
            target_rounds=3,
        )

    history = fedavg(model, users)

    source, target = history["source_phase"], history["target_phase"]
    assert source["num_examples"] == len(X) and source["epochs_run"] == 6 and source["config"]["seed"] == 3
    assert (target["rounds"], target["local_epochs"], target["users"]) == (3, 3, 2)
    assert target["config"]["seed"] == 3 + TARGET_PHASE_SEED_OFFSET
    assert target["num_examples"] == len(X) and target["loss"]["n"] == 3
    predicted = np.argmax(encode_windows(model, X) @ swapped.T, axis=1)
    assert np.mean(predicted == y) > 0.9
    with pytest.raises(ValueError, match="needs the user of every target row"):
        fedavg(SensorEncoder(SMALL), users[:-1])


def test_fedavg_target_phase_with_one_user_and_one_round_is_the_plain_target_phase() -> None:
    """One client, one round: FedAvg's mean is that client's model, and a client's local update is central
    stage 2's loss with the same seed, so the schedule gives the weights of two plain stage-2 phases: the
    source rows, then the target rows with the target phase's seed."""
    from test_train import SMALL, synthetic_stage2

    from common.method.train import SensorTrainConfig, train_sensor_encoder
    from common.models.sensor_encoder import SensorEncoder
    from simulations.central import TARGET_PHASE_SEED_OFFSET, _train_source_then_fedavg

    X, Z, _ = synthetic_stage2(n_per_class=8)
    windows, targets = np.concatenate([X, X[::-1]]), np.concatenate([Z, Z[::-1]])
    config = SensorTrainConfig(epochs=2, batch_size=8, lr=3e-3, seed=5)
    torch.manual_seed(0)
    fedavg = SensorEncoder(SMALL)
    _train_source_then_fedavg(
        fedavg,
        windows,
        targets,
        len(X),
        config,
        3,
        False,
        target_users=np.zeros(len(X), dtype=int),
        target_rounds=1,
    )
    torch.manual_seed(0)
    plain = SensorEncoder(SMALL)
    target_config = dataclasses.replace(config, epochs=3, seed=5 + TARGET_PHASE_SEED_OFFSET)
    for rows, phase_config in ((slice(0, len(X)), config), (slice(len(X), None), target_config)):
        train_sensor_encoder(plain, windows[rows], targets[rows], phase_config, progress=False)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(fedavg.state_dict()[key], value, rtol=0, atol=1e-6)


def test_the_walking_frame_needs_the_rules_interpreter_and_no_rotation_augmentation() -> None:
    with pytest.raises(DataError, match="walking_frame is implemented for the rules interpreter"):
        central_config("small", walking_frame=True, interpreter="openai")
    with pytest.raises(DataError, match="stage2_rotation_deg=30"):
        central_config("small", walking_frame=True, stage2_rotation_deg=30)
    config = central_config("small", walking_frame=True)
    assert sensor_encoder_config(config, 384).walking_frame
    assert central_interpreter(config).categories[-1] == "body inclination"
