"""SecAgg+ (issue #14): N clients and the server exchanging the real records, in-process, no simulation.

A fake grid delivers each message to the client handlers of client/secagg.py (the train message through
`secagg_mod`, under central DP also through Flower's `fixedclipping_mod`, as client/client_app.py chains them)
and the server side is server/secagg.py with server.federation.Exchange, i.e. the production code on both
ends; only Flower's transport and the model training are replaced (each client's update is known).
"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.client.mod.utils import make_ffn
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.task_identity import TaskIdentity

from client.secagg import handle_setup, handle_share_keys, handle_unmask, secagg_mod
from common.federation import secagg
from common.federation.run_config import FederationConfig
from server.federation import Exchange
from server.secagg import secagg_train_round
from server.strategy import make_strategy

SHAPES = {"encoder.weight": (16, 8), "encoder.bias": (8,), "head": (3, 5)}
QUANTISATION_STEP = 2 * 1.0 / 4194304  # 2 x secagg-clipping-range / secagg-quantization-range (defaults)


SERVER = 0  # the ServerApp's node id in a message's metadata, as the run_identity fixture sets it
pytestmark = pytest.mark.usefixtures("run_identity")  # tests/conftest.py: messages need a run id


class FakeGrid:
    """Delivers messages to in-process clients; `drop[message_type]` = nodes that never answer it."""

    def __init__(self, nodes: list[int], updates: dict, weights: dict, dp: bool = False) -> None:
        self.nodes, self.updates, self.weights = nodes, updates, weights
        self.losses = {n: 0.5 + 0.25 * i for i, n in enumerate(nodes)}  # distinct: a leaked one is visible
        self.contexts = {n: Context(1, n, {}, RecordDict(), {}) for n in nodes}
        self.drop: dict[str, set[int]] = {}
        self.received: dict[str, list[Message]] = {}  # what the server got back, per message type
        mods = [secagg_mod, fixedclipping_mod] if dp else [secagg_mod]
        self.train = make_ffn(self._train, mods)

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def _train(self, msg: Message, context: Context) -> Message:
        node = msg.metadata.dst_node_id
        arrays = msg.content["arrays"]
        trained = {k: Array(arrays[k].numpy() + self.updates[node][k]) for k in arrays}
        metrics = MetricRecord(
            {"num-examples": self.weights[node], "uniform-weight": 1, "train-loss": self.losses[node]}
        )
        return Message(RecordDict({"arrays": ArrayRecord(trained), "metrics": metrics}), reply_to=msg)

    def send_and_receive(self, messages, timeout=None) -> list[Message]:
        handlers = {
            secagg.SETUP: handle_setup,
            secagg.SHARE_KEYS: handle_share_keys,
            MessageType.TRAIN: self.train,
            secagg.UNMASK: handle_unmask,
        }
        replies = []
        for message in messages:
            kind, node = message.metadata.message_type, message.metadata.dst_node_id
            if node in self.drop.get(kind, set()):
                continue
            TaskIdentity.node_id = node  # as in the client's own process
            reply = handlers[kind](message, self.contexts[node])
            TaskIdentity.node_id = SERVER
            replies.append(reply)
            self.received.setdefault(kind, []).append(reply)
        return replies


def federation(num_clients: int, seed: int = 0, **overrides):
    rng = np.random.default_rng(seed)
    nodes = [int(n) for n in rng.choice(2**62, size=num_clients, replace=False)]
    updates = {n: {k: rng.normal(0, 0.01, s).astype(np.float32) for k, s in SHAPES.items()} for n in nodes}
    weights = {n: int(rng.integers(10, 200)) for n in nodes}
    values = dict(secagg=True, min_train_nodes=num_clients, min_available_nodes=num_clients)
    values.update(overrides)
    config = FederationConfig(**values)
    global_model = ArrayRecord({k: Array(rng.normal(0, 1, s).astype(np.float32)) for k, s in SHAPES.items()})
    return config, nodes, updates, weights, global_model


def plain_fedavg(config, nodes, updates, weights, global_model) -> ArrayRecord:
    """Flower's FedAvg over the same clients' plain replies: the reference."""
    strategy = make_strategy(config, len(nodes))
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    replies = []
    for n in nodes:
        arrays = {k: Array(global_model[k].numpy() + updates[n][k]) for k in SHAPES}
        metrics = MetricRecord({"num-examples": weights[n], "uniform-weight": 1, "train-loss": 0.5})
        replies.append(
            Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), reply_to=request)
        )
    aggregated, _ = strategy.aggregate_train(1, replies)
    return aggregated


def secure_round(config, nodes, updates, weights, global_model, drop=None, dp=False):
    grid = FakeGrid(nodes, updates, weights, dp=dp)
    grid.drop = drop or {}
    exchange = Exchange(grid, timeout=10)
    strategy = make_strategy(config, len(nodes))
    outcome = secagg_train_round(exchange, strategy, 1, global_model, grid, config, weights)
    return outcome, grid, exchange, strategy


def max_difference(a: ArrayRecord, b: ArrayRecord) -> float:
    return max(float(np.abs(a[k].numpy() - b[k].numpy()).max()) for k in SHAPES)


def test_secure_aggregate_equals_plain_fedavg_and_the_server_sees_only_masked_vectors():
    config, nodes, updates, weights, global_model = federation(10)
    outcome, grid, exchange, _ = secure_round(config, nodes, updates, weights, global_model)

    assert outcome.refused is None and len(outcome.survivors) == 10
    # num_examples-weighted, up to quantisation (stochastic rounding: <= one step per client, averaged).
    assert max_difference(outcome.aggregated, plain_fedavg(config, nodes, updates, weights, global_model)) < (
        2 * QUANTISATION_STEP
    )
    assert outcome.aggregated["head"].numpy().dtype == np.float32
    # What reached the server from training: one masked uint32 vector, no model, no weight, no loss.
    assert set(exchange.uploaded["train"]) == {"secagg-masked.vector"}
    parameters = sum(int(np.prod(s)) for s in SHAPES.values())
    masked_vectors = []
    for reply in grid.received[MessageType.TRAIN]:
        vector = reply.content[secagg.MASKED]["vector"].numpy()
        assert vector.dtype == np.uint32 and vector.shape == (1 + parameters + 1,)  # weight, update, loss
        node = reply.metadata.src_node_id
        # The client's own quantised weighted update (what an unmasked vector would hold), for comparison:
        ratio = weights[node] / max(weights.values())
        truth = np.concatenate([updates[node][k].ravel() * ratio for k in SHAPES])
        plain = np.round((truth + 1.0) / QUANTISATION_STEP)
        assert np.mean(np.abs(vector[1:-1] - plain) <= 1) < 0.01  # masked: nowhere near the update
        masked_vectors.append(vector)
    # Spread over the whole modulus: each entry is above 2**31 with probability 1/2. Pooled over all clients'
    # entries (10 x 152) the fraction's standard deviation is 0.013; a 6-sigma bound never fails by chance
    # (about 1 run in 10**9) yet still catches a mask drawn from half the modulus (fraction 0 or 1).
    above_half = np.mean(np.concatenate(masked_vectors) > 2**31)
    assert above_half == pytest.approx(0.5, abs=6 * 0.5 / np.sqrt(sum(v.size for v in masked_vectors)))
    # The masked vectors alone (summed) are still masked: only the unmask stage's shares reveal the sum.
    assert set(exchange.uploaded["secagg-unmask"]) == {"secagg-shares.owners", "secagg-shares.shares"}


def test_a_secagg_reply_carries_nothing_in_clear_but_its_masked_vector():
    config, nodes, updates, weights, global_model = federation(6, seed=5)
    outcome, grid, _, _ = secure_round(config, nodes, updates, weights, global_model)
    assert outcome.refused is None
    replies = grid.received[MessageType.TRAIN]
    assert len(replies) == 6
    for reply in replies:  # every record of the reply a client built, of every kind
        content = reply.content
        assert set(content.keys()) == {secagg.MASKED}
        assert dict(content.metric_records) == {} and dict(content.config_records) == {}
        assert set(content.array_records) == {secagg.MASKED}
        assert set(content[secagg.MASKED].keys()) == {"vector"}
        assert content[secagg.MASKED]["vector"].numpy().dtype == np.uint32
    # The round's loss still reaches the log, but only as the num_examples-weighted mean from the masked sum:
    # no client's own loss was ever readable.
    mean_loss = sum(grid.losses[n] * weights[n] for n in nodes) / sum(weights[n] for n in nodes)
    assert float(outcome.metrics["train-loss"]) == pytest.approx(mean_loss, abs=1e-3)
    assert all(float(outcome.metrics["train-loss"]) != grid.losses[n] for n in nodes)


def test_clients_dropping_after_share_keys_are_recovered_and_match_fedavg_of_the_survivors():
    config, nodes, updates, weights, global_model = federation(10, seed=1)
    dropped = set(nodes[3:5])  # 20% never send their masked update
    outcome, _, exchange, _ = secure_round(
        config, nodes, updates, weights, global_model, drop={MessageType.TRAIN: dropped}
    )

    assert outcome.refused is None
    assert set(outcome.dropped_after_share_keys) == dropped and len(outcome.survivors) == 8
    survivors = [n for n in nodes if n not in dropped]
    reference = plain_fedavg(config, survivors, updates, weights, global_model)
    assert max_difference(outcome.aggregated, reference) < 2 * QUANTISATION_STEP
    assert exchange.failures and all(f["phase"] == "train" for f in exchange.failures)


def test_too_few_survivors_refuse_the_round_with_its_reason():
    config, nodes, updates, weights, global_model = federation(10, seed=2, min_replies_fraction=0.1)
    outcome, *_ = secure_round(
        config, nodes, updates, weights, global_model, drop={MessageType.TRAIN: set(nodes[:7])}
    )
    assert outcome.aggregated is None
    assert "fewer than 4 (reconstruction threshold / min-replies-fraction)" in outcome.refused
    assert outcome.summary()["refused"] == outcome.refused

    # Lost already at setup: nobody masks with them, the rest go on if every neighbourhood keeps 4.
    outcome, *_ = secure_round(
        config, nodes, updates, weights, global_model, drop={secagg.SETUP: set(nodes[:1])}
    )
    assert outcome.refused is None and len(outcome.survivors) == 9
    reference = plain_fedavg(config, nodes[1:], updates, weights, global_model)
    assert max_difference(outcome.aggregated, reference) < 2 * QUANTISATION_STEP


def test_central_dp_clips_before_masking_and_noises_after_unmasking():
    clip = 0.05
    config, nodes, updates, weights, global_model = federation(
        6, seed=3, dp_mode="central", dp_clipping_norm=clip, dp_noise_multiplier=1e-6
    )
    outcome, _, _, strategy = secure_round(config, nodes, updates, weights, global_model, dp=True)
    assert outcome.refused is None
    # Uniform weights, each update clipped to norm `clip` on the client (Flower's fixedclipping_mod).
    expected = {}
    for k in SHAPES:
        clipped = []
        for n in nodes:
            norm = np.sqrt(sum(float(np.sum(updates[n][j].astype(np.float64) ** 2)) for j in SHAPES))
            clipped.append(updates[n][k] * min(1.0, clip / norm))
        expected[k] = global_model[k].numpy() + np.mean(clipped, axis=0)
    assert max(float(np.abs(outcome.aggregated[k].numpy() - expected[k]).max()) for k in SHAPES) < 1e-5
    assert strategy.privacy_spent().epsilon > 0  # the round was composed into the accountant

    noisy_config = FederationConfig(**{**config.__dict__, "dp_noise_multiplier": 2.0})
    noisy, *_ = secure_round(noisy_config, nodes, updates, weights, global_model, dp=True)
    change = np.concatenate([(noisy.aggregated[k].numpy() - expected[k]).ravel() for k in SHAPES])
    assert np.std(change) == pytest.approx(2.0 * clip / len(nodes), rel=0.2)  # sigma x C / survivors


def test_a_client_never_releases_both_secrets_of_one_node():
    params = secagg.SecAggParams(3, 2, 1.0, 2**22, 1.0, "num-examples")
    secrets = {n: secagg.client_setup(n, params) for n in (1, 2, 3)}
    keys = {n: (s.pk1, s.pk2) for n, s in secrets.items()}
    sent = {n: secagg.client_share_keys(secrets[n], keys) for n in secrets}
    inbox = secagg.route_ciphertexts(sent, set(secrets))
    secagg.client_masked_vector(secrets[1], inbox[1], [np.zeros(3)], 1.0, loss=0.0)
    restored = secagg.ClientSecrets.from_config(secrets[1].to_config())
    assert restored == secrets[1]
    with pytest.raises(secagg.SecAggError, match="both active and dropped"):
        secagg.client_unmask_shares(restored, [1, 2], [2])
    with pytest.raises(secagg.SecAggError, match="its own private key"):
        secagg.client_unmask_shares(restored, [2, 3], [1])


def test_fedadam_applies_its_server_step_to_the_secure_average():
    config, nodes, updates, weights, global_model = federation(5, seed=4, strategy="fedadam")
    outcome, *_ = secure_round(config, nodes, updates, weights, global_model)
    reference = make_strategy(config, len(nodes))
    list(reference.configure_train(1, global_model, ConfigRecord(), FakeGrid(nodes, updates, weights)))
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    average = plain_fedavg(
        FederationConfig(**{**config.__dict__, "strategy": "fedavg"}), nodes, updates, weights, global_model
    )
    metrics = MetricRecord({"num-examples": 1, "uniform-weight": 1, "train-loss": 0.5})
    expected, _ = reference.aggregate_train(
        1, [Message(RecordDict({"arrays": average, "metrics": metrics}), reply_to=request)]
    )
    assert max_difference(outcome.aggregated, expected) < 1e-4  # Adam's step: quantisation error / sqrt(v)
    assert max_difference(outcome.aggregated, global_model) > 1e-3  # and it did move the model
