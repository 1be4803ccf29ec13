"""How federated clients are scored (run config `client-eval`): held-out users as in the central run.

The held-out users must be exactly the central run's target split; no user may be on both sides; clients
holding held-out users must never train (not even be offered to the strategy's sampling); the text path and
its agreement with the sensor encoder are counted on the client and pooled exactly on the server.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord

from client.device_client import evaluate_locally
from common.data.errors import DataError
from common.data.labels import load_vocabulary
from common.data.loading import load_dataset
from common.data.synthetic import generate_windows
from common.federation.partition import (
    EVALUATE,
    TRAIN,
    TRAIN_AND_EVALUATE,
    client_spec,
    client_spec_from_node_config,
    deal_whole_users,
    evaluation_peers,
    evaluation_plan,
    held_out_user_split,
    load_client_data,
    run_activities,
)
from common.federation.run_config import ConfigError, FederationConfig
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, encode_windows
from common.models.zero_shot import LabelBank
from server.federation import NodeSubset, pooled_metrics
from server.strategy import make_strategy
from simulations.central import CentralConfig, central_config, load_pair

NEW = "running on treadmill,cycling on exercise bike (horizontal),jumping,lying on back"


def real_config(data_dir: Path, **overrides) -> FederationConfig:
    values = dict(
        source="uci",
        clients_data="dsads_torso",
        device_types="native",
        data_dir=str(data_dir.resolve()),
        new_activities=NEW,
    )
    values.update(overrides)
    return FederationConfig(**values)


def users_of(data) -> set[int]:
    return set(data.train.user.tolist()) | set(data.eval.user.tolist())


def test_defaults_hold_out_users_with_the_central_fraction():
    assert FederationConfig().client_eval == "held-out-users"
    assert FederationConfig().eval_users_fraction == CentralConfig().target_eval_fraction == 0.5
    with pytest.raises(ConfigError, match="'client-eval' must be one of"):
        FederationConfig.from_run_config({"client-eval": "random"})
    with pytest.raises(ConfigError, match="'eval-users-fraction' must be in"):
        FederationConfig.from_run_config({"eval-users-fraction": 1.0})


@pytest.mark.parametrize("seed", [0, 3])
def test_held_out_users_are_the_central_target_split(data_dir, seed):
    """The same users as `fedlanhar train --source uci --target dsads_torso` (load_pair) for the seed."""
    split = held_out_user_split("dsads_torso", real_config(data_dir, seed=seed))
    central = load_pair(central_config("default", source="uci", target="dsads_torso", seed=seed), data_dir)
    assert split.eval_users == tuple(sorted(set(central["target_eval"].user.tolist())))
    assert split.train_users == tuple(sorted(set(central["target_train"].user.tolist())))
    assert not set(split.eval_users) & set(split.train_users)
    assert len(split.eval_users) == 4 and len(split.train_users) == 4  # 8 DSADS users, fraction 0.5
    plan = evaluation_plan(real_config(data_dir, seed=seed))["dsads_torso"]
    assert plan["split"] == "held-out-users" and plan["eval_users"] == list(split.eval_users)


@pytest.mark.parametrize("seed", [0, 3])
def test_the_server_can_train_on_exactly_the_central_source_users(data_dir, seed):
    """source-eval-users-fraction = central's source_eval_fraction: the server's windows are those
    `fedlanhar train --source uci` trains on for the seed; 0 (the default) keeps every source user."""
    from server.cloud import load_source

    central = load_pair(central_config("default", source="uci", target="dsads_torso", seed=seed), data_dir)
    matched = load_source(real_config(data_dir, seed=seed, source_eval_users_fraction=0.2))
    assert np.array_equal(matched.X, central["source_train"].X)
    assert matched.labels() == central["source_train"].labels()
    every_user = load_source(real_config(data_dir, seed=seed))
    assert set(every_user.user.tolist()) == set(matched.user.tolist()) | set(
        central["source_val"].user.tolist()
    )


def test_a_source_that_is_also_a_client_set_keeps_its_own_split_and_refuses_a_second(data_dir):
    """In a mixed federation the source's held-out users are clients: which of its users the server trains
    on is decided there, so asking for central's source split as well is refused, naming the key."""
    from server.cloud import load_source

    mixed = real_config(data_dir, clients_data="uci,dsads_torso", clients_per_user=1)
    held_out = held_out_user_split("uci", mixed)
    assert set(load_source(mixed).user.tolist()) == set(held_out.train_users)
    both = dataclasses.replace(mixed, source_eval_users_fraction=0.2)
    with pytest.raises(ValueError, match="'source-eval-users-fraction': source 'uci' is also a client"):
        load_source(both)


def test_a_source_eval_users_fraction_out_of_range_or_without_real_source_is_named():
    with pytest.raises(ConfigError, match="'source-eval-users-fraction' must be in \\[0, 1\\), got 1.0"):
        FederationConfig.from_run_config({"source-eval-users-fraction": 1.0})
    with pytest.raises(ConfigError, match="'source-eval-users-fraction' applies to a real source"):
        FederationConfig.from_run_config({"source-eval-users-fraction": 0.2, "source": "synthetic"})


def test_eight_dsads_clients_are_four_trainers_and_four_evaluators(data_dir):
    config = real_config(data_dir)
    split = held_out_user_split("dsads_torso", config)
    clients = [load_client_data(client_spec(pid, 8, config), config) for pid in range(8)]
    assert [c.role for c in clients] == [TRAIN] * 4 + [EVALUATE] * 4
    for client in clients:
        assert client.split == "held-out-users"
        if client.role == TRAIN:
            assert client.trains and not client.evaluates  # never scored on its training windows
            assert users_of(client) <= set(split.train_users) and (client.train.y == -1).all()
        else:
            assert client.evaluates and not client.trains  # nothing to train on
            assert users_of(client) <= set(split.eval_users)
    # Every window of every held-out user in the run's activities (initial and new) is evaluated, once; the
    # training clients hold every window of the training users, whatever the activity (no label picks them).
    recorded = load_dataset("dsads_torso", data_dir)
    scored = run_activities(recorded, config.all_activities)
    assert sum(len(c.eval) for c in clients) == np.isin(scored.user, split.eval_users).sum()
    assert sum(len(c.train) for c in clients) == np.isin(recorded.user, split.train_users).sum()
    central = load_pair(central_config("default", source="uci", target="dsads_torso"), data_dir)
    assert sum(len(c.train) for c in clients) == len(central["target_train"])  # central's open pool
    assert len(scored.label_names) == 8 < len(recorded.label_names) == 19
    assert {label for c in clients if c.evaluates for label in c.eval.labels()} <= set(config.all_activities)
    held_users = [users_of(c) for c in clients if c.role == EVALUATE]
    assert set().union(*held_users) == set(split.eval_users)


@pytest.mark.parametrize("partitioning", ["iid", "dirichlet"])
def test_training_side_follows_the_partitioning_and_never_holds_eval_users(data_dir, partitioning):
    config = real_config(data_dir, partitioning=partitioning)
    split = held_out_user_split("dsads_torso", config)
    evaluated = []
    for pid in range(4):
        try:
            client = load_client_data(client_spec(pid, 4, config), config)
        except DataError:  # a Dirichlet draw may leave a training client without windows
            continue
        side = split.train_users if client.role == TRAIN else split.eval_users
        assert users_of(client) <= set(side)
        if client.role == EVALUATE:
            evaluated.append(client.eval.X)
    assert len(evaluated) == 2  # the last two of four clients hold the held-out users, whole


def test_synthetic_clients_split_in_time_and_do_both():
    config = FederationConfig(windows_per_client=48, device_types="waist_phone")
    data = load_client_data(client_spec(0, 2, config), config)
    assert (data.role, data.split) == (TRAIN_AND_EVALUATE, "time")
    assert data.trains and data.evaluates
    assert evaluation_plan(config) == {"synthetic": {"split": "time", "client_eval_fraction": 0.3}}


def test_time_split_stays_selectable_on_real_data(data_dir):
    config = real_config(data_dir, client_eval="time")
    data = load_client_data(client_spec(5, 8, config), config)
    assert (data.role, data.split) == (TRAIN_AND_EVALUATE, "time") and data.trains and data.evaluates
    assert evaluation_plan(config)["dsads_torso"]["split"] == "time"


def test_pinned_users_get_their_side_and_may_not_straddle_it(data_dir):
    config = real_config(data_dir)
    split = held_out_user_split("dsads_torso", config)

    def role(users: list[int]) -> str:
        node = {"partition-id": 0, "num-partitions": 2, "users": ",".join(map(str, users))}
        return load_client_data(client_spec_from_node_config(node, config), config).role

    assert role(list(split.eval_users[:2])) == EVALUATE
    assert role(list(split.train_users[:1])) == TRAIN
    with pytest.raises(DataError, match="mixes held-out users"):
        role([split.eval_users[0], split.train_users[0]])


def test_evaluation_clients_follow_the_user_share():
    assert evaluation_peers(8, 8, 4) == 4
    assert evaluation_peers(2, 8, 4) == 1
    assert evaluation_peers(10, 30, 15) == 5
    assert evaluation_peers(3, 8, 1) == 1  # at least one evaluates ...
    assert evaluation_peers(3, 8, 7) == 2  # ... and at least one trains
    with pytest.raises(DataError, match="at least 2 clients"):
        evaluation_peers(1, 8, 4)


def test_more_evaluation_clients_than_users_still_cover_every_window():
    ws = generate_windows(["walking", "sitting"], 20, seed=0, n_users=2, windows_per_recording=5)
    parts = deal_whole_users(ws, 5)
    joined = np.concatenate(parts)
    assert len(parts) == 5 and all(len(p) for p in parts)
    assert sorted(joined.tolist()) == list(range(len(ws)))


class FakeGrid:
    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)


@pytest.mark.parametrize("strategy", ["fedavg", "fedprox", "fedadam"])
def test_evaluation_only_clients_are_never_sampled_for_training(strategy):
    nodes = [2**63 + i for i in range(8)]
    trainers = nodes[:4]
    config = FederationConfig(strategy=strategy, min_train_nodes=8, min_available_nodes=8)
    model = SensorEncoder(SensorEncoderConfig(d_model=16, ff_dim=32, out_dim=8))
    chosen = make_strategy(config, len(trainers))
    # Outside a Flower run no Message can be built: keep the sampled node ids instead.
    chosen._construct_messages = lambda record, node_ids, message_type: list(node_ids)
    sampled = chosen.configure_train(
        1, ArrayRecord(model.state_dict()), ConfigRecord(), NodeSubset(FakeGrid(nodes), trainers)
    )
    assert sorted(sampled) == sorted(trainers)


def test_text_path_counts_on_the_client_and_pooled_on_the_server():
    labels = ["walking", "sitting"]
    ws = generate_windows(labels, 6, seed=0, n_users=1)
    model = SensorEncoder(SensorEncoderConfig(d_model=16, ff_dim=32, out_dim=4))
    bank = LabelBank(labels=labels, embeddings=np.eye(2, 4, dtype=np.float32))
    truth = np.array([labels.index(t) for t in ws.labels()])
    # A perfect text path: each window's interpretation embeds onto its own label.
    counts = evaluate_locally(model, ws, bank, [], text_targets=np.eye(2, 4, dtype=np.float32)[truth])
    text_confusion = counts["text-confusion"]
    assert np.trace(text_confusion) == text_confusion.sum() == len(ws)
    sensor_correct = int(np.trace(counts["confusion"]))
    assert counts["agreement"] == sensor_correct  # agreeing with a perfect text path = being right
    with pytest.raises(ValueError, match="eval targets"):
        evaluate_locally(model, ws, bank, [], text_targets=np.zeros((1, 4), dtype=np.float32))

    def reply(confusion, text, agreement):
        metrics = {
            "confusion": np.asarray(confusion).ravel().tolist(),
            "text-confusion": np.asarray(text).ravel().tolist(),
            "agreement": agreement,
            "new-windows": 0,
            "new-correct-among-new": 0,
            "new-top3-among-new": 0,
            "num-unscored": 0,
        }
        return SimpleNamespace(content={"metrics": metrics})

    replies = [reply([[3, 1], [0, 4]], [[4, 0], [2, 2]], 5), reply([[2, 0], [2, 0]], [[1, 1], [0, 2]], 1)]
    pooled = pooled_metrics(replies, labels, [], load_vocabulary().category)
    assert pooled["accuracy"] == pytest.approx(9 / 12)
    assert pooled["text_path_accuracy"] == pytest.approx(9 / 12)
    assert pooled["sensor_text_agreement"] == pytest.approx(6 / 12)
    assert pooled["text_path_confusion"] == [[5, 1], [2, 4]]
    assert pooled["text_path_per_class"]["sitting"]["support"] == 6


def test_initial_activities_are_scored_among_themselves_after_a_push():
    """After new labels join the bank, the initial ones are still scored choosing among themselves only."""
    labels = ["walking", "sitting", "jogging"]  # jogging is pushed later: the new label
    ws = generate_windows(labels, 6, seed=0, n_users=1)
    model = SensorEncoder(SensorEncoderConfig(d_model=16, ff_dim=32, out_dim=4))
    bank = LabelBank(labels=labels, embeddings=np.eye(3, 4, dtype=np.float32))
    counts = evaluate_locally(model, ws, bank, ["jogging"])
    initial = counts["initial-confusion"]
    assert initial.shape == (2, 2) and initial.sum() == 12  # 6 walking + 6 sitting windows, none lost
    scores = bank.scores(encode_windows(model, ws.X))
    truth = np.array([labels.index(t) for t in ws.labels()])
    among_initial = scores[truth < 2][:, :2].argmax(axis=1)
    assert np.trace(initial) == int((among_initial == truth[truth < 2]).sum())

    def reply(initial_confusion):
        metrics = {
            "confusion": np.eye(3, dtype=np.int64).ravel().tolist(),
            "initial-confusion": np.asarray(initial_confusion).ravel().tolist(),
            "new-windows": 0,
            "new-correct-among-new": 0,
            "new-top3-among-new": 0,
            "num-unscored": 0,
        }
        return SimpleNamespace(content={"metrics": metrics})

    pooled = pooled_metrics(
        [reply([[3, 1], [0, 4]]), reply([[2, 0], [2, 0]])], labels, ["jogging"], load_vocabulary().category
    )
    assert pooled["initial_activities"]["labels"] == ["walking", "sitting"]
    assert pooled["initial_activities"]["accuracy"] == pytest.approx(9 / 12)
    assert pooled["initial_activities"]["windows"] == 12
