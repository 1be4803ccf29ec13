"""Issue #13: mixed real federations, per-client label spaces, per-device results, preflight refusals,
lean updates and update clipping. The end-to-end test is a real `flwr run .` of a small mixed federation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from flower_runs import run_flwr
from flwr.app import ArrayRecord

from client.device_client import evaluate_locally
from common.data.errors import DataError
from common.data.label_spaces import client_label_space, mixes_stairs, scoring_labels
from common.data.synthetic import generate_windows
from common.federation.compression import decode_arrays, encode_update
from common.federation.mixed import client_group, parse_clients_data
from common.federation.partition import (
    EVALUATE,
    TRAIN,
    ClientData,
    client_spec,
    held_out_user_split,
    load_client_data,
    user_layout_slots,
)
from common.federation.preflight import client_data_problem
from common.federation.run_config import ConfigError, FederationConfig
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig
from common.models.zero_shot import LabelBank
from server.breakdown import breakdown_summary, client_distribution, per_group
from server.cloud import load_source
from server.updates import clip_updates, update_norms

RUN_LABELS = ["walking", "upstairs", "downstairs", "sitting"]


# --- label spaces ---------------------------------------------------------------------------------------
def test_label_space_merges_stairs_only_for_a_set_that_mixes_them():
    wisdm = ["walking", "stairs", "sitting", "jogging"]
    dsads = ["walking", "upstairs", "downstairs", "sitting", "jumping"]
    assert mixes_stairs(wisdm) and not mixes_stairs(dsads)
    columns, names = client_label_space(RUN_LABELS, wisdm)
    assert columns == [0, 1, 2, 3] and names == ["walking", "stairs", "stairs", "sitting"]
    assert client_label_space(RUN_LABELS, dsads) == ([0, 1, 2, 3], RUN_LABELS)
    assert client_label_space(RUN_LABELS + ["jumping"], wisdm)[0] == [0, 1, 2, 3]  # no jumping in its data
    assert scoring_labels(RUN_LABELS, [wisdm, dsads]) == RUN_LABELS + ["stairs"]
    assert scoring_labels(RUN_LABELS, [dsads]) == RUN_LABELS


def _bank(labels: list[str], dim: int = 8) -> LabelBank:
    return LabelBank(labels=labels, embeddings=np.eye(len(labels), dim, dtype=np.float32))


def test_a_stairs_mixing_client_is_scored_on_stairs_and_a_separating_one_on_up_and_down():
    model = SensorEncoder(SensorEncoderConfig(d_model=16, ff_dim=32, out_dim=8))
    scoring = RUN_LABELS + ["stairs"]
    mixed = generate_windows(["walking", "upstairs", "sitting"], 5, seed=0, n_users=1)
    mixed.label_names = ["walking", "stairs", "sitting"]  # one class for going up and down, as wisdm_phone
    counts = evaluate_locally(model, mixed, _bank(RUN_LABELS), [], scoring_labels=scoring)
    confusion = counts["confusion"]
    up, down, stairs = 1, 2, 4
    assert confusion.sum() == len(mixed) == counts["num-scored"]
    assert confusion[[up, down]].sum() == 0 and confusion[:, [up, down]].sum() == 0  # never up/down
    assert confusion[stairs].sum() == 5
    separate = generate_windows(RUN_LABELS, 5, seed=1, n_users=1)
    counts = evaluate_locally(model, separate, _bank(RUN_LABELS), [], scoring_labels=scoring)
    assert counts["confusion"][stairs].sum() == 0 and counts["confusion"][:, stairs].sum() == 0
    assert counts["confusion"][up].sum() == counts["confusion"][down].sum() == 5


# --- mixed layout on the real data sets ---------------------------------------------------------------
def mixed_config(data_dir: Path, **overrides) -> FederationConfig:
    values = dict(
        source="uci",
        clients_data="uci,wisdm_phone,dsads_torso,synthetic:wrist_watch",
        clients_per_user=1,
        device_types="native",
        data_dir=str(data_dir.resolve()),
    )
    return FederationConfig(**(values | overrides))


def test_every_user_is_a_client_and_the_servers_source_users_are_not(data_dir):
    config = mixed_config(data_dir)
    slots = user_layout_slots(config)
    uci = held_out_user_split("uci", config)
    uci_clients = [users[0] for data_set, users, _, _ in slots if data_set == "uci"]
    assert uci_clients == list(uci.eval_users)  # the server holds uci's training users
    assert set(np.unique(load_source(config).user)) == set(uci.train_users)
    assert (
        sum(1 for s in slots if s[0] == "wisdm_phone") == 21
        and sum(1 for s in slots if s[0] == "dsads_torso") == 8
    )
    wisdm = held_out_user_split("wisdm_phone", config)
    assert wisdm.activities == ("walking", "stairs", "sitting")  # merged as the central uci:wisdm pair
    first_wisdm = next(i for i, s in enumerate(slots) if s[0] == "wisdm_phone")
    data = load_client_data(client_spec(first_wisdm, len(slots) + 1, config), config)
    assert data.role == TRAIN and "stairs" in data.train.label_names and data.train.position != "unknown"
    last = load_client_data(client_spec(len(slots) - 1, len(slots) + 1, config), config)
    assert last.role == EVALUATE and last.spec.data_set == "dsads_torso"
    synthetic = client_spec(len(slots), len(slots) + 1, config)
    assert (synthetic.data_set, synthetic.device_type) == ("synthetic", "wrist_watch")
    assert client_group(synthetic.data_set, synthetic.device_type) == "synthetic:wrist_watch"
    two = mixed_config(data_dir, clients_per_user=2, clients_data="dsads_torso")
    a, b = (load_client_data(client_spec(p, 16, two), two) for p in (0, 1))
    assert a.spec.users == b.spec.users and not set(a.train.segment) & set(b.train.segment)
    with pytest.raises(DataError, match="no synthetic entry"):
        client_spec(len(user_layout_slots(two)), 99, two)
    with pytest.raises(ValueError, match="only synthetic entries"):
        parse_clients_data(mixed_config(data_dir, clients_data="uci:wrist_watch"))


# --- per-device breakdown -------------------------------------------------------------------------------
def _reply(group: str, confusion: list[list[int]]) -> SimpleNamespace:
    metrics = {
        "confusion": np.asarray(confusion).ravel().tolist(),
        "new-windows": 0,
        "new-correct-among-new": 0,
        "new-top3-among-new": 0,
        "num-unscored": 0,
    }
    return SimpleNamespace(content={"metrics": metrics, "client": {"group": group}})


def test_per_device_breakdown_pools_each_group_and_spreads_over_clients():
    from common.data.labels import load_vocabulary
    from server.federation import pooled_metrics

    labels = ["walking", "sitting"]
    replies = [
        _reply("dsads_torso", [[4, 0], [0, 4]]),
        _reply("dsads_torso", [[2, 2], [0, 0]]),
        _reply("synthetic:wrist_watch", [[0, 5], [5, 0]]),
    ] + [_reply("uci", [[3, 1], [1, 3]]) for _ in range(7)]
    groups = per_group(replies, lambda group: pooled_metrics(group, labels, [], load_vocabulary().category))
    assert set(groups) == {"dsads_torso", "synthetic:wrist_watch", "uci"}
    assert (
        groups["dsads_torso"]["accuracy"] == pytest.approx(10 / 12) and groups["dsads_torso"]["clients"] == 2
    )
    assert groups["synthetic:wrist_watch"]["accuracy"] == 0.0 and groups["uci"]["windows"] == 56
    assert all(math.isfinite(g["macro_f1"]) for g in groups.values())
    spread = client_distribution(replies)
    assert (
        spread["clients"] == 10
        and spread["worst"] == 0.0
        and spread["worst_group"] == "synthetic:wrist_watch"
    )
    assert spread["worst_10pct_mean"] == 0.0  # 10% of 10 clients = the worst one
    assert spread["mean"] == pytest.approx((1 + 0.5 + 0 + 7 * 0.75) / 10)
    line = breakdown_summary({"per_group": groups, "client_accuracy": spread})
    assert "dsads_torso 0.833 (F1 " in line and "worst 0.000 (synthetic:wrist_watch)" in line


# --- preflight ------------------------------------------------------------------------------------------
def _client(train_X: np.ndarray | None) -> ClientData:
    ws = generate_windows(["walking", "sitting"], 4, seed=0, n_users=1)
    if train_X is not None:
        ws.X = train_X
    empty = ws.subset(np.arange(0))
    return ClientData(spec=client_spec(0, 1, FederationConfig()), train=ws, eval=empty, role=TRAIN)


def test_preflight_names_empty_constant_nan_and_unknown_device_clients():
    good = _client(None)
    assert client_data_problem(good) is None
    empty = ClientData(spec=good.spec, train=good.eval, eval=good.eval, role=TRAIN)
    assert client_data_problem(empty) == "no windows (empty data)"
    constant = np.broadcast_to(np.float32([0, 0, 9.81, 0, 0, 0]), good.train.X.shape).copy()
    assert "constant: 8 of 8 windows" in client_data_problem(_client(constant))
    nan = good.train.X.copy()
    nan[2, 5, 1] = np.nan
    assert "NaN/inf values: 1 of 8 windows, first at window 2, sample 5, channel 1" in client_data_problem(
        _client(nan)
    )
    config = FederationConfig(clients_data="synthetic:hover_board")
    with pytest.raises(DataError, match="device type 'hover_board'"):
        load_client_data(client_spec(0, 1, config), config)


# --- lean updates ---------------------------------------------------------------------------------------
def _weights(seed: int, shapes=((64, 32), (32,), (32, 16))) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"w{i}": rng.normal(size=shape).astype(np.float32) for i, shape in enumerate(shapes)}


@pytest.mark.parametrize("mode", ["int8", "sparse-int8"])
def test_quantised_update_round_trip_and_error_feedback_stays_bounded(mode):
    base = _weights(0)
    trained = {k: v + 0.01 * _weights(1)[k] for k, v in base.items()}
    sent, residual = encode_update(trained, base, None, mode, topk_fraction=0.1)
    decoded = decode_arrays(sent, base)
    for name in base:  # what was sent plus what stays on the client is exactly the update
        update = trained[name] - base[name]
        np.testing.assert_allclose(decoded[name] - base[name] + residual[name], update, atol=1e-6)
        if mode == "int8":
            assert np.abs(decoded[name] - trained[name]).max() <= 0.5 * np.abs(update).max() / 127 + 1e-6
    dense = sum(v.nbytes for v in base.values())
    sent_bytes = sum(v.nbytes for v in sent.values())
    assert dense / sent_bytes > (3.9 if mode == "int8" else 10)
    # Many rounds of updates: the residual (what was not sent yet) stays bounded, and the sum of what
    # was sent tracks the sum of the true updates up to that residual.
    residual, sent_total, true_total, norms = None, 0.0, 0.0, []
    for step in range(60):
        update = {k: 0.01 * v for k, v in _weights(100 + step).items()}
        weights = {k: base[k] + update[k] for k in base}
        sent, residual = encode_update(weights, base, residual, mode, topk_fraction=0.1)
        got = decode_arrays(sent, base)
        sent_total = sent_total + np.concatenate([(got[k] - base[k]).ravel() for k in base])
        true_total = true_total + np.concatenate([update[k].ravel() for k in base])
        gap = true_total - sent_total
        np.testing.assert_allclose(gap, np.concatenate([residual[k].ravel() for k in base]), atol=1e-4)
        norms.append(float(np.linalg.norm(gap)))
    one_update = float(np.linalg.norm(np.concatenate([u.ravel() for u in update.values()])))
    assert max(norms[30:]) < 6 * one_update  # bounded: does not grow with the number of rounds
    assert max(norms[30:]) < 1.5 * max(norms[:30]) + 1e-9


def test_outlier_updates_are_clipped_to_a_multiple_of_the_median_norm():
    base = {"w": torch.zeros(4)}
    replies = [
        SimpleNamespace(content={"arrays": ArrayRecord({"w": torch.full((4,), scale)})})
        for scale in (1.0, 1.0, 1.2, 50.0)
    ]
    info = clip_updates(replies, ArrayRecord(base), factor=2.0)
    norms = update_norms(replies, ArrayRecord(base))
    assert info["clipped"] == 1 and norms[3] == pytest.approx(2.0 * info["median_norm"], rel=1e-5)
    assert norms[:3] == pytest.approx([2.0, 2.0, 2.4], rel=1e-5)  # the others untouched


def test_lean_and_clipping_config_is_checked():
    with pytest.raises(ConfigError, match="update-compression"):
        FederationConfig.from_run_config({"update-compression": "zip"})
    with pytest.raises(ConfigError, match="update-compression"):
        FederationConfig.from_run_config({"update-compression": "int8", "dp-mode": "central"})
    with pytest.raises(ConfigError, match="update-clip-factor"):
        FederationConfig.from_run_config({"update-clip-factor": -1.0})
    with pytest.raises(ConfigError, match="client-train-layers.*0 \\(all\\) to 3"):
        FederationConfig.from_run_config({"client-train-layers": 4})
    with pytest.raises(ConfigError, match="client-train-layers.*whole model"):
        FederationConfig.from_run_config({"client-train-layers": 1, "dp-mode": "central"})


# --- end to end -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_flwr_run_mixed_federation_per_device_metrics(tmp_path, data_dir):
    """3 real sets (1 training + 1 held-out user each) + synthetic wrist watch, through `flwr run .`: the run
    completes, every group is scored with finite metrics; lean updates (the top layer's changes, sparse int8)
    cut the bytes up, and down after a client's first model, more than 10x.

    A client of an unknown device type is no longer part of it: the server's preflight now stops such a run
    before stage 1 (issue #37). Refused clients, and the run that stops when every client of a named device
    type refused, are tested in process with the production ClientApp handler
    (tests/test_federation_units.py); the clients' reasons just above."""
    out_dir = tmp_path / "out"
    run_config = {
        "num-server-rounds": 2,
        "source": "uci",
        "clients-data": "wisdm_phone,dsads_torso,dsads_rightleg,synthetic:wrist_watch",
        "clients-per-user": 1,
        "users-per-data-set": 1,
        "device-types": "native",
        "data-dir": str(data_dir.resolve()),
        "out-dir": str(out_dir),
        "new-activities": "jogging",
        "new-activities-round": 2,
        "stage1-steps": 2,
        "server-pretrain-epochs": 1,
        "local-epochs": 1,
        "sensor-width": 32,
        "windows-per-client": 48,
        "min-available-nodes": 7,
        "update-compression": "sparse-int8",
        "client-train-layers": 1,
        "update-clip-factor": 3.0,
        "checkpoint": False,
    }
    config_file = tmp_path / "run-config.toml"
    config_file.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in run_config.items()))
    log = run_flwr(tmp_path, config_file, num_supernodes=7)
    assert "per device: dsads_rightleg" in log  # the round lines carry the breakdown
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["refused_clients"] == []
    assert metrics["targets"]["clients"] == 7
    groups = metrics["per_group"]
    assert set(groups) == {"wisdm_phone", "dsads_torso", "dsads_rightleg", "synthetic:wrist_watch"}
    for group, values in groups.items():
        for key in ("accuracy", "macro_f1"):
            assert math.isfinite(values[key]) and 0.0 <= values[key] <= 1.0, (group, key)
    assert 0.0 <= groups["wisdm_phone"]["new_activity_accuracy"] <= 1.0  # jogging: wisdm has it
    spread = metrics["client_accuracy"]  # the evaluating clients: 3 held-out users + the synthetic one
    assert spread["clients"] == 4 and spread["worst"] <= spread["worst_10pct_mean"] <= spread["mean"]
    # wisdm_phone scores "stairs" (never upstairs/downstairs); the DSADS clients score up and down apart.
    labels = metrics["scoring_labels"]
    assert labels[-1] == "stairs"
    confusion = np.asarray(metrics["confusion"])
    up, down, stairs = (labels.index(name) for name in ("upstairs", "downstairs", "stairs"))
    wisdm_windows = groups["wisdm_phone"]["windows"]
    assert confusion[stairs].sum() > 0 and confusion[stairs].sum() <= wisdm_windows
    assert confusion[stairs, [up, down]].sum() == 0 and confusion[[up, down], stairs].sum() == 0
    assert confusion[up].sum() > 0 and confusion[down].sum() > 0
    lean = metrics["update_bytes"]
    assert lean["compression"] == "sparse-int8" and lean["up_reduction_vs_float32"] > 10
    # Downlink: each client's first model goes whole (float16), every later one as the steps since.
    sent = lean["downlink_messages"]
    assert sent["whole"]["messages"] == 7  # every client, once
    dense = lean["float32_model_bytes"]
    assert sent["steps"]["messages"] > 0 and sent["steps"]["bytes_per_message"] < dense / 10
    assert sent["whole"]["bytes_per_message"] < 0.6 * dense  # float16 + ~128 header bytes per tensor
    assert (out_dir / "accuracy_per_device.png").stat().st_size > 0
    assert metrics["config"]["clients-data"] == run_config["clients-data"] and metrics["seed"] == 0


def test_lazy_enrolment_sets_up_only_sampled_clients_and_learns_their_roles():
    from server.enrolment import Enrolment

    setups, pushes = [], []

    def setup(fresh, bank):
        setups.append((list(fresh), bank[2]))
        stored = [node for node in fresh if node != 9]  # node 9 refuses at its preflight
        return {
            "nodes_with_targets": stored,
            "roles": {node: (TRAIN if node % 2 == 0 else EVALUATE) for node in stored},
            "windows_interpreted": len(stored),
            "eval_windows_interpreted": 0,
        }

    enrolment = Enrolment(list(range(10)), setup, lambda nodes, *bank: pushes.append((list(nodes), bank[2])))
    enrolment.set_labels(["walking", "sitting"], [], 1, ["walking", "sitting"])
    assert pushes == [] and setups == []  # nobody is set up before being sampled
    rng = np.random.default_rng(0)
    trainers = enrolment.sample(rng, 4, TRAIN)
    assert setups[0][1] == 1 and len(setups[0][0]) == 4  # enrolled with the current bank, in one message
    assert all(node % 2 == 0 for node in trainers) and set(trainers) <= set(enrolment.roles)
    for _ in range(5):  # evaluation-only clients, once known, are never offered for training again
        assert all(enrolment.roles[node] == TRAIN for node in enrolment.sample(rng, 4, TRAIN))
    assert len(enrolment.roles) + len(enrolment.unusable) <= 10
    enrolment.set_labels(["walking", "sitting", "jogging"], ["jogging"], 2, ["walking", "sitting", "jogging"])
    assert pushes[-1] == (sorted(enrolment.roles), 2)  # a later push goes to the clients met so far only
    assert all(node not in enrolment.roles for node in enrolment.unusable)
