"""Which windows each simulated client holds: device types, users, splits that never overlap."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from device_recordings import ACTIVITIES, write_recorded_device

from common.data.device_data import device_recordings
from common.data.devices import load_device_type
from common.data.errors import DataError
from common.data.features import FEATURE_INDEX, analyze_windows
from common.data.loading import load_dataset
from common.federation.partition import (
    client_spec,
    client_spec_from_node_config,
    evaluation_plan,
    load_client_data,
    partition_indices,
    split_in_time,
)
from common.federation.run_config import FederationConfig


def test_device_types_and_data_sets_are_assigned_round_robin():
    config = FederationConfig(device_types="waist_phone,wrist_watch,thigh_sensor")
    assert [client_spec(i, 6, config).device_type for i in range(6)] == [
        "waist_phone",
        "wrist_watch",
        "thigh_sensor",
        "waist_phone",
        "wrist_watch",
        "thigh_sensor",
    ]


def test_synthetic_client_train_is_unlabeled_and_never_overlaps_eval():
    config = FederationConfig(windows_per_client=60, device_types="wrist_watch")
    data = load_client_data(client_spec(3, 10, config), config)
    assert (data.train.y == -1).all()
    assert (data.eval.y >= 0).all()
    assert set(data.eval.labels()) == set(config.all_activities)
    train_rows = {w.tobytes() for w in data.train.X}
    assert not any(w.tobytes() in train_rows for w in data.eval.X)
    assert data.train.position == "wrist"


def test_device_type_sets_the_window_count_unless_overridden():
    config = FederationConfig(device_types="cheap_band")
    data = load_client_data(client_spec(0, 2, config), config)
    assert 150 <= len(data.train) + len(data.eval) <= 200  # cheap_band.toml: windows = 200
    assert not data.train.has_gyro and np.all(data.train.X[..., 3:] == 0)


def test_split_in_time_keeps_each_recording_in_order():
    config = FederationConfig(windows_per_client=60)
    windows = load_client_data(client_spec(0, 2, config), config).eval
    train, held_out = split_in_time(windows, 0.5)
    for segment in np.unique(held_out.segment):
        assert segment in train.segment  # every recording contributes to both sides


def test_real_clients_by_user_hold_disjoint_users(data_dir):
    config = FederationConfig(clients_data="dsads_torso", device_types="native", data_dir=str(data_dir))
    users = []
    for pid in range(4):
        data = load_client_data(client_spec(pid, 4, config), config)
        users.append(set(data.train.user.tolist()) | set(data.eval.user.tolist()))
        assert set(data.eval.labels()) <= set(config.all_activities)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not users[i] & users[j]


def test_with_the_walking_frame_each_client_turns_its_own_windows(data_dir):
    """The same clients' windows with and without walking-frame: the same windows in the same order, turned
    (magnitudes kept, axes not), and a training client's rhythmic windows now upright (tilt_z near 0)."""
    plain = FederationConfig(clients_data="dsads_torso", device_types="native", data_dir=str(data_dir))
    turned = FederationConfig(
        clients_data="dsads_torso", device_types="native", data_dir=str(data_dir), walking_frame=True
    )
    sides_seen = set()
    for pid in range(4):  # held-out users: some clients train, the others hold the evaluation users
        before = load_client_data(client_spec(pid, 4, plain), plain)
        after = load_client_data(client_spec(pid, 4, turned), turned)
        for side in ("train", "eval"):
            x0, x1 = getattr(before, side).X, getattr(after, side).X
            assert x0.shape == x1.shape
            if len(x0):
                sides_seen.add(side)
                magnitudes = [np.linalg.norm(x[..., :3], axis=-1) for x in (x0, x1)]
                np.testing.assert_allclose(*magnitudes, rtol=1e-5)  # float32 windows
                assert not np.allclose(x0, x1)
        if len(after.train):
            features = analyze_windows(after.train.X, after.train.sampling_rate, after.train.has_gyro)
            rhythmic = (features[:, FEATURE_INDEX["acc_mag_std"]] >= 0.6) & (
                features[:, FEATURE_INDEX["autocorrelation_peak"]] >= 0.45
            )
            assert np.median(features[rhythmic, FEATURE_INDEX["tilt_z"]]) < 10.0
    assert sides_seen == {"train", "eval"}


@pytest.mark.parametrize("partitioning", ["by-user", "iid", "dirichlet"])
def test_partitions_cover_every_window_once(data_dir, partitioning):
    windows = load_dataset("uci", data_dir)
    parts = partition_indices(windows, 40, partitioning, 0.3, seed=0)  # more clients than the 30 users
    assert len(parts) == 40
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) <= len(windows)
    if partitioning != "by-user":
        assert len(joined) == len(windows)
    for part in parts:  # whole recordings move together
        for other in parts:
            if part is not other:
                assert not set(windows.segment[part]) & set(windows.segment[other])


def test_dirichlet_small_alpha_skews_labels(data_dir):
    windows = load_dataset("uci", data_dir)
    parts = partition_indices(windows, 5, "dirichlet", 0.05, seed=0)
    dominant = [np.bincount(windows.y[p]).max() / len(p) for p in parts if len(p)]
    assert np.mean(dominant) > 0.5


def test_node_config_can_pin_device_and_users():
    config = FederationConfig()
    spec = client_spec_from_node_config(
        {"partition-id": 1, "num-partitions": 2, "device-type": "chest_strap", "users": "3,5"}, config
    )
    assert spec.device_type == "chest_strap" and spec.users == (3, 5)
    with pytest.raises(DataError, match="partition-id"):
        client_spec_from_node_config({"num-partitions": 2}, config)


def test_clients_of_a_device_type_with_recordings_hold_them_users_apart(tmp_path):
    """Partitions 1, 3, 5 are of the recorded type (round-robin with a simulated one): two train on
    training users, one scores the held-out users; none holds a user another one holds."""
    ring = write_recorded_device(tmp_path, rate=50.0, n_users=4)
    config = FederationConfig(
        device_types=f"waist_phone,{ring}",
        activities=",".join(ACTIVITIES),
        new_activities="",
        windows_per_client=24,
        eval_users_fraction=0.25,  # 1 of the 4 users: 1 of the 3 clients scores it
    )
    recorded = device_recordings(load_device_type(ring))
    clients = [load_client_data(client_spec(pid, 6, config), config) for pid in range(6)]
    assert {clients[pid].train.position for pid in (0, 2, 4)} == {"waist"}  # simulated, as before
    ring_clients = [clients[pid] for pid in (1, 3, 5)]
    assert [c.role for c in ring_clients] == ["train", "train", "evaluate"]
    assert {c.split for c in ring_clients} == {"held-out-users"}
    users = [set(c.train.user.tolist()) | set(c.eval.user.tolist()) for c in ring_clients]
    assert all(users) and not (users[0] & users[1] or users[0] & users[2] or users[1] & users[2])
    assert set.union(*users) == set(recorded.user.tolist())
    for client in ring_clients:
        for side in (client.train, client.eval):
            assert side.X.shape[1:] == (120, 6) and side.sampling_rate == 20.0
            assert (side.position, side.device, side.has_gyro) == ("neck", "my_pendant", True)
        assert (client.train.y == -1).all() and (client.eval.y >= 0).all()
    evaluation = ring_clients[2].eval
    assert len(evaluation) == np.isin(recorded.user, list(users[2])).sum()  # every held-out window scored
    assert set(evaluation.labels()) == set(ACTIVITIES)
    plan = evaluation_plan(config)  # metrics.json: how the recordings were split
    assert plan["synthetic"]["split"] == "time" and "synthetic:waist_phone" not in plan
    assert plan[f"synthetic:{ring}"]["split"] == "held-out-users"
    assert set(plan[f"synthetic:{ring}"]["eval_users"]) == users[2]


def test_recorded_device_clients_split_in_time_or_only_train_without_labels(tmp_path):
    ring = write_recorded_device(tmp_path / "labeled", rate=50.0, n_users=2)
    config = FederationConfig(device_types=str(ring), activities=",".join(ACTIVITIES), new_activities="")
    timed = replace(config, client_eval="time")
    for pid in range(2):
        data = load_client_data(client_spec(pid, 2, timed), timed)
        assert data.role == "train+evaluate" and data.split == "time" and data.trains and data.evaluates
        train_rows = {w.tobytes() for w in data.train.X}
        assert not any(w.tobytes() in train_rows for w in data.eval.X)

    n_windows = 24
    unlabeled = write_recorded_device(
        tmp_path / "unlabeled", y=np.full(n_windows, -1), label_names=np.array([], dtype=str)
    )
    config = FederationConfig(device_types=str(unlabeled))
    held = [load_client_data(client_spec(pid, 2, config), config) for pid in range(2)]
    assert [(c.role, c.evaluates) for c in held] == [("train", False), ("train", False)]
    assert evaluation_plan(config)[f"synthetic:{unlabeled}"]["split"].startswith("none (unlabeled")
    assert sum(len(c.train) for c in held) == n_windows
    assert not set(held[0].train.user.tolist()) & set(held[1].train.user.tolist())


def test_preflight_checks_the_recordings_of_the_run_device_types(tmp_path):
    from server.federation import preflight

    ring = write_recorded_device(tmp_path, rate=50.0)
    preflight(FederationConfig(device_types=f"waist_phone,{ring}"))
    recorded = np.load(tmp_path / "recordings.npz")
    write_recorded_device(tmp_path, rate=50.0, X=recorded["X"] / 9.80665)  # acc in g
    with pytest.raises(DataError, match=r"recordings.npz: field 'X': median \|acc\| .* looks like g"):
        preflight(FederationConfig(device_types=f"waist_phone,{ring}"))
