"""SecAgg+ (issue #14): N clients and the server exchanging the real records, in-process, no simulation.

A fake grid delivers each message to the client handlers of client/secagg.py (the train message through
`secagg_mod`, under central DP also through Flower's `fixedclipping_mod`, as client/client_app.py chains them)
and the server side is server/secagg.py with server.federation.Exchange, i.e. the production code on both
ends; only Flower's transport and the model training are replaced (each client's update is known).
"""

from __future__ import annotations

import base64
import dataclasses
import random
from collections.abc import Callable
from uuid import uuid4

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.client.mod.utils import make_ffn
from flwr.clientapp.mod import fixedclipping_mod
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.crypto.shamir import combine_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import decrypt, generate_shared_key
from flwr.common.secure_aggregation.secaggplus_utils import share_keys_plaintext_separate
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    public_key_to_bytes,
)
from flwr.supercore.task_identity import TaskIdentity

import server.secagg
from client.privacy import trained_part_clipping_mod
from client.secagg import (
    IDENTITY_KEY_NODE_CONFIG,
    ROSTER_NODE_CONFIG,
    handle_setup,
    handle_share_keys,
    handle_unmask,
    secagg_mod,
)
from common.federation import protocol, secagg, secagg_identity
from common.federation.run_config import ConfigError, FederationConfig
from server.federation import Exchange
from server.secagg import secagg_train_round
from server.strategy import make_strategy

SHAPES = {"encoder.weight": (16, 8), "encoder.bias": (8,), "head": (3, 5)}
QUANTISATION_STEP = 2 * 1.0 / 4194304  # 2 x secagg-clipping-range / secagg-quantization-range (defaults)


SERVER = 0  # the ServerApp's node id in a message's metadata, as the run_identity fixture sets it
pytestmark = pytest.mark.usefixtures("run_identity")  # tests/conftest.py: messages need a run id


class FakeGrid:
    """Delivers messages to in-process clients; `drop[message_type]` = nodes that never answer it.

    Each client's context holds `config` as its own run config (context.run_config, what it checks the
    server's values against). A client that refuses a stage (SecAggError) answers with an error reply, as
    Flower's ClientApp does when a handler raises; `refusals[node]` keeps the error.
    """

    def __init__(
        self,
        nodes: list[int],
        updates: dict,
        weights: dict,
        dp: bool = False,
        trained: list[str] | None = None,
        config: FederationConfig | None = None,
        node_configs: dict[int, dict] | None = None,
    ) -> None:
        self.nodes, self.updates, self.weights = nodes, updates, weights
        self.losses = {n: 0.5 + 0.25 * i for i, n in enumerate(nodes)}  # distinct: a leaked one is visible
        run_config = config.as_dict() if config is not None else {}
        node_configs = node_configs or {}  # a SuperNode's own --node-config (a roster, for signed keys)
        self.contexts = {n: Context(1, n, node_configs.get(n, {}), RecordDict(), run_config) for n in nodes}
        self.drop: dict[str, set[int]] = {}
        # A deviating server's hook: every message passes through it before delivery (None: sent as built).
        self.rewrite: Callable[[Message], Message] | None = None
        self.received: dict[str, list[Message]] = {}  # what the server got back, per message type
        self.unpulled: dict[str, Message] = {}  # replies by the id of the message they answer
        self.refusals: dict[int, tuple[str, secagg.SecAggError]] = {}  # node -> (message type, error)
        self.trained = trained  # lean clients (client-train-layers): they send these tensors only
        clipping = fixedclipping_mod if trained is None else trained_part_clipping_mod
        mods = [secagg_mod, clipping] if dp else [secagg_mod]
        self.train = make_ffn(self._train, mods)

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def _train(self, msg: Message, context: Context) -> Message:
        node = msg.metadata.dst_node_id
        arrays = msg.content["arrays"]
        sent = [k for k in arrays.keys() if self.trained is None or k in self.trained]
        trained = {k: Array(arrays[k].numpy() + self.updates[node][k]) for k in sent}
        metrics = MetricRecord(
            {"num-examples": self.weights[node], "uniform-weight": 1, "train-loss": self.losses[node]}
        )
        return Message(RecordDict({"arrays": ArrayRecord(trained), "metrics": metrics}), reply_to=msg)

    def push_messages(self, messages) -> list[str]:
        """Answers each message at once; a reply waits for the next pull (a dropped node's never comes)."""
        handlers = {
            secagg.SETUP: handle_setup,
            secagg.SHARE_KEYS: handle_share_keys,
            MessageType.TRAIN: self.train,
            secagg.UNMASK: handle_unmask,
        }
        message_ids = []
        for message in messages:
            message_id = str(uuid4())  # as Flower's grids number pushed messages
            message_ids.append(message_id)
            kind, node = message.metadata.message_type, message.metadata.dst_node_id
            if node in self.drop.get(kind, set()):
                continue
            if self.rewrite is not None:
                message = self.rewrite(message)
            message.metadata.__dict__["_message_id"] = message_id
            TaskIdentity.node_id = node  # as in the client's own process
            try:
                reply = handlers[kind](message, self.contexts[node])
            except secagg.SecAggError as error:
                self.refusals[node] = (kind, error)
                reply = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, str(error)), reply_to=message)
            TaskIdentity.node_id = SERVER
            self.unpulled[message_id] = reply
            self.received.setdefault(kind, []).append(reply)
        return message_ids

    def pull_messages(self, message_ids) -> list[Message]:
        return [
            self.unpulled.pop(message_id) for message_id in list(message_ids) if message_id in self.unpulled
        ]


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


def secure_round(
    config,
    nodes,
    updates,
    weights,
    global_model,
    drop=None,
    dp=False,
    trained=None,
    population=None,
    node_configs=None,
    rewrite=None,
):
    grid = FakeGrid(nodes, updates, weights, dp=dp, trained=trained, config=config, node_configs=node_configs)
    grid.drop = drop or {}
    grid.rewrite = rewrite
    exchange = Exchange(grid, timeout=0.1)  # a dropped node's reply never comes: wait one pull for it
    strategy = make_strategy(config, population or len(nodes))
    outcome = secagg_train_round(exchange, strategy, 1, global_model, grid, config, weights, trained=trained)
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


# ------------------------------------------------- combinations (issue #36): lean clients, Poisson sampling
LEAN = ["encoder.bias", "head"]  # the tensors lean clients train and send; "encoder.weight" stays frozen


def test_lean_clients_mask_only_the_trained_tensors_and_the_frozen_rest_does_not_move():
    config, nodes, updates, weights, global_model = federation(7, seed=6, client_train_layers=1)
    outcome, grid, exchange, _ = secure_round(config, nodes, updates, weights, global_model, trained=LEAN)
    assert outcome.refused is None
    sent_values = sum(int(np.prod(SHAPES[k])) for k in LEAN)
    assert exchange.uploaded["train"] == {"secagg-masked.vector": [1 + sent_values + 1]}  # shorter
    reference = plain_fedavg(config, nodes, updates, weights, global_model)
    for key in LEAN:
        assert float(np.abs(outcome.aggregated[key].numpy() - reference[key].numpy()).max()) < 2 * (
            QUANTISATION_STEP
        )
    assert np.array_equal(
        outcome.aggregated["encoder.weight"].numpy(), global_model["encoder.weight"].numpy()
    )


def test_central_dp_with_lean_clients_clips_and_noises_the_sent_tensors_only():
    clip = 0.02
    config, nodes, updates, weights, global_model = federation(
        6, seed=7, dp_mode="central", dp_clipping_norm=clip, dp_noise_multiplier=1e-6, client_train_layers=1
    )
    outcome, _, _, strategy = secure_round(
        config, nodes, updates, weights, global_model, dp=True, trained=LEAN
    )
    assert outcome.refused is None
    for key in LEAN:  # the sensitivity is over the sent vector: each update clipped over LEAN's tensors
        clipped = []
        for n in nodes:
            norm = np.sqrt(sum(float(np.sum(updates[n][j].astype(np.float64) ** 2)) for j in LEAN))
            clipped.append(updates[n][key] * min(1.0, clip / norm))
        expected = global_model[key].numpy() + np.mean(clipped, axis=0)
        assert float(np.abs(outcome.aggregated[key].numpy() - expected).max()) < 1e-5
    assert np.array_equal(
        outcome.aggregated["encoder.weight"].numpy(), global_model["encoder.weight"].numpy()
    )
    assert strategy.privacy_spent().epsilon > 0


def poisson_config(num_clients: int, seed: int, **overrides):
    return federation(
        num_clients,
        seed=seed,
        client_sampling="poisson",
        sampling_probability=0.5,
        dp_mode="central",
        dp_clipping_norm=0.05,
        min_train_nodes=2,
        min_available_nodes=2,
        **overrides,
    )


def clipped_sum(updates: dict, nodes: list[int], key: str, clip: float) -> np.ndarray:
    """The sum over `nodes` of tensor `key` of each update clipped to L2 norm `clip` (over all tensors)."""
    total = np.zeros(SHAPES[key])
    for n in nodes:
        norm = np.sqrt(sum(float(np.sum(updates[n][j].astype(np.float64) ** 2)) for j in SHAPES))
        total += updates[n][key] * min(1.0, clip / norm)
    return total


@pytest.mark.parametrize("cohort", [6, 8])
def test_poisson_dp_divides_the_secure_sum_by_q_n_and_noises_by_z_c_over_q_n(cohort):
    """Population N = 12, q = 0.5: the release is global + sum(clipped) / (q N = 6) + noise, whatever the
    cohort's size (the fixed denominator: a cohort of 8 is still divided by 6)."""
    config, nodes, updates, weights, global_model = poisson_config(cohort, seed=8, dp_noise_multiplier=1e-6)
    outcome, _, _, strategy = secure_round(
        config, nodes, updates, weights, global_model, dp=True, population=12
    )
    assert outcome.refused is None and strategy.expected_cohort == 6.0
    for key in SHAPES:
        expected = global_model[key].numpy() + clipped_sum(updates, nodes, key, 0.05) / 6.0
        assert float(np.abs(outcome.aggregated[key].numpy() - expected).max()) < 1e-5
    assert strategy.accountant.num_releases == 1


def test_a_poisson_draw_below_the_threshold_releases_the_noise_alone_and_asks_nothing_of_its_clients():
    config, nodes, updates, weights, global_model = poisson_config(3, seed=10, dp_noise_multiplier=2.0)
    outcome, grid, exchange, strategy = secure_round(
        config, nodes, updates, weights, global_model, dp=True, population=40
    )
    assert "smaller than secagg-reconstruction-threshold 4" in outcome.refused
    assert grid.received == {} and exchange.traffic.summary()["bytes_down_total"] == 0  # nobody was asked
    change = np.concatenate(
        [(outcome.aggregated[k].numpy() - global_model[k].numpy()).ravel() for k in SHAPES]
    )
    assert np.std(change) == pytest.approx(2.0 * 0.05 / 20, rel=0.2)  # z C / (q N), q N = 20
    assert strategy.accountant.num_releases == 1  # a release like any other


def shared_keys(num_nodes: int = 5):
    """Stages 1-2 among nodes 1..num_nodes, one neighbourhood of all (num-shares = nodes, threshold 4)."""
    params = secagg.SecAggParams(num_nodes, 4, 1.0, 2**22, 1.0, "num-examples")
    secrets = {n: secagg.client_setup(n, params) for n in range(1, num_nodes + 1)}
    keys = {n: (s.pk1, s.pk2) for n, s in secrets.items()}
    sent = {n: secagg.client_share_keys(secrets[n], keys) for n in secrets}
    return secrets, keys, sent, secagg.route_ciphertexts(sent, set(secrets))


def test_a_client_never_releases_both_secrets_of_one_node():
    secrets, _, _, inbox = shared_keys()
    secagg.client_masked_vector(secrets[1], inbox[1], [np.zeros(3)], 1.0, loss=0.0)
    restored = secagg.ClientSecrets.from_config(secrets[1].to_config())
    assert restored == secrets[1]
    with pytest.raises(secagg.SecAggError, match="both active and dropped"):
        secagg.client_unmask_shares(restored, [1, 2, 3, 4], [2])
    with pytest.raises(secagg.SecAggError, match="its own private key"):
        secagg.client_unmask_shares(restored, [2, 3, 4, 5], [1])


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


# --------------------------------------------------------------------------- masks (issue #36): 256-bit seeds
SEED = bytes(range(32))


def flip_bits(seed: bytes, *bits: int) -> bytes:
    value = int.from_bytes(seed, "little")
    for bit in bits:
        value ^= 1 << bit
    return value.to_bytes(len(seed), "little")


@pytest.mark.parametrize("purpose", [secagg.SELF_MASK, secagg.PAIRWISE_MASK])
def test_a_mask_depends_on_every_bit_of_its_256_bit_seed(purpose):
    """Flower's pseudo_rand_gen XOR-folded the seed to 32 bits: seeds that differ in bits i and i + 32 (and so
    on) gave the same mask, and 2**32 tries rebuilt any mask. Each seed here must give its own mask."""
    variants = [(), (0,), (100,), (255,), (0, 32), (100, 228), (7, 39, 71, 103)]  # the last three: same fold
    masks = [secagg.expand_mask(flip_bits(SEED, *bits), purpose, (64,)) for bits in variants]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert np.mean(masks[i] == masks[j]) < 0.05, f"bits {variants[i]} and {variants[j]}: same mask"
    assert np.array_equal(masks[0], secagg.expand_mask(SEED, purpose, (64,)))  # and it is reproducible


def test_masks_are_uniform_32_bit_words_and_each_purpose_has_its_own():
    words = secagg.expand_mask(SEED, secagg.SELF_MASK, (256, 256)).ravel().astype(np.float64)
    count, modulus = words.size, 2.0**32
    assert words.min() >= 0 and words.max() < modulus
    # Uniform on 0..2**32-1: mean (2**32-1)/2 with standard error 2**32/sqrt(12 count) (6 sigma); variance
    # 2**64/12 to within 3% (its relative standard error is sqrt(4/5 / count) = 0.35%).
    assert abs(words.mean() - (modulus - 1) / 2) < 6 * modulus / np.sqrt(12 * count)
    assert words.var() == pytest.approx(modulus**2 / 12, rel=0.03)
    for bit in (0, 15, 31):  # every bit of a word is a fair coin (within 6 sigma)
        assert abs(np.mean((words.astype(np.int64) >> bit) & 1) - 0.5) < 6 * 0.5 / np.sqrt(count)
    pairwise = secagg.expand_mask(SEED, secagg.PAIRWISE_MASK, (256, 256))
    assert np.mean(pairwise.ravel() == words) < 0.01  # one key, two purposes: unrelated masks
    assert secagg.expand_mask(SEED, secagg.SELF_MASK, (1000,), modulus=2**16).max() < 2**16
    with pytest.raises(ValueError, match="32 bytes"):
        secagg.expand_mask(SEED[:4], secagg.SELF_MASK, (8,))


def test_the_client_masks_with_chacha20_masks_of_its_own_seed_and_its_pairwise_keys():
    """Removing expand_mask's self mask and pairwise masks from a client's vector leaves its plain vector."""
    secrets, _, _, inbox = shared_keys()
    client = secrets[1]
    # A zero update and loss quantise exactly (to the offset clipping-range / step): no stochastic rounding.
    vector, _ = secagg.client_masked_vector(client, inbox[1], [np.zeros(3)], 1.0, loss=0.0)
    plain = np.array([2**22] + [2**21] * 4, dtype=np.int64)  # q_weight = Q at weight = max-weight, then 0s
    unmasked = vector.astype(np.int64) - secagg.expand_mask(client.mask_seed, secagg.SELF_MASK, vector.shape)
    for neighbour in client.live_neighbours:
        key = generate_shared_key(
            bytes_to_private_key(client.sk1), bytes_to_public_key(secrets[neighbour].pk1)
        )
        mask = secagg.expand_mask(base64.urlsafe_b64decode(key), secagg.PAIRWISE_MASK, vector.shape)
        unmasked -= mask if client.node_id > neighbour else -mask
    assert np.array_equal(unmasked % 2**32, plain)
    assert len(client.mask_seed) == 32


# ----------------------------------------------------------------------- neighbourhoods: >= 3 live neighbours
@pytest.mark.parametrize(
    "num_shares, threshold, reason",
    [
        (3, 2, "1 live neighbours, fewer than 3"),
        (5, 3, "2 live neighbours, fewer than 3"),
        (4, 4, "tolerates no dropout"),
        (7, 7, "tolerates no dropout"),
    ],
)
def test_the_config_refuses_neighbourhoods_that_leave_a_survivor_under_3_live_neighbours(
    num_shares, threshold, reason
):
    with pytest.raises(ValueError, match=reason):
        secagg.check_neighbourhood(num_shares, threshold)
    run_config = {"secagg-num-shares": num_shares, "secagg-reconstruction-threshold": threshold}
    with pytest.raises(ConfigError) as error:
        FederationConfig.from_run_config(run_config)
    message = str(error.value)
    assert "'secagg-reconstruction-threshold'" in message and f"secagg-num-shares {num_shares}" in message
    assert "allowed: 4 <= secagg-reconstruction-threshold < secagg-num-shares" in message


@pytest.mark.parametrize("num_shares, threshold", [(5, 4), (7, 4), (7, 6), (20, 11)])
def test_neighbourhoods_with_3_live_neighbours_and_room_for_a_dropout_pass(num_shares, threshold):
    secagg.check_neighbourhood(num_shares, threshold)  # raises if refused
    config = FederationConfig.from_run_config(
        {"secagg-num-shares": num_shares, "secagg-reconstruction-threshold": threshold}
    )
    assert (config.secagg_num_shares, config.secagg_reconstruction_threshold) == (num_shares, threshold)


# -------------------------------------------------------------- tampered relayed material (the server relays)
def altered(ciphertext: bytes, index: int) -> bytes:
    """The Fernet token with one bit of raw byte `index` flipped: version 0, timestamp 1-8, IV 9-24, then the
    AES-CBC ciphertext and the 32-byte HMAC tag (negative index: from the end)."""
    raw = bytearray(base64.urlsafe_b64decode(ciphertext))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw))


@pytest.mark.parametrize("index", [3, 12, 40, -1], ids=["timestamp", "iv", "body", "tag"])
def test_a_client_refuses_a_ciphertext_whose_bytes_were_changed(index):
    secrets, _, _, inbox = shared_keys()
    tampered = dict(inbox[1])
    tampered[2] = altered(tampered[2], index)
    with pytest.raises(secagg.SecAggError, match="from 2 fails authentication"):
        secagg.client_masked_vector(secrets[1], tampered, [np.zeros(3)], 1.0, loss=0.0)


def test_a_client_refuses_a_ciphertext_addressed_to_another_node():
    secrets, _, sent, inbox = shared_keys()
    # Node 2's shares for node 3, relayed to node 1 as if node 2 had sent them to it: the wrong pair's key.
    with pytest.raises(secagg.SecAggError, match="from 2 fails authentication"):
        secagg.client_masked_vector(secrets[1], {**inbox[1], 2: sent[2][3]}, [np.zeros(3)], 1.0, loss=0.0)
    # Node 1's own shares for node 2, relayed back to node 1 as if from node 2: a pair's key is symmetric, so
    # this one authenticates; only the sender and destination inside the plaintext expose it.
    with pytest.raises(secagg.SecAggError, match="a ciphertext from 2 names 1 -> 2"):
        secagg.client_masked_vector(secrets[1], {**inbox[1], 2: sent[1][2]}, [np.zeros(3)], 1.0, loss=0.0)
    with pytest.raises(secagg.SecAggError, match="not a neighbour"):
        secagg.client_masked_vector(secrets[1], {**inbox[1], 99: sent[2][1]}, [np.zeros(3)], 1.0, loss=0.0)


def test_share_keys_refuses_a_wrong_own_key_or_a_repeated_key_but_not_a_swapped_neighbour_key():
    """docs/privacy.md: WITHOUT a roster, relayed keys carry no signature. An honest-but-curious server relays
    them as sent and cannot read any share; a malicious one can put its own keys in a neighbour's place, which
    no client without a roster can detect (with one it is refused: the signed-keys tests below). What a client
    can check, it checks."""
    params = secagg.SecAggParams(5, 4, 1.0, 2**22, 1.0, "num-examples")
    secrets = {n: secagg.client_setup(n, params) for n in range(1, 6)}
    keys = {n: (s.pk1, s.pk2) for n, s in secrets.items()}
    with pytest.raises(secagg.SecAggError, match="wrong public key for this node"):
        secagg.client_share_keys(secrets[1], {**keys, 1: keys[2]})
    with pytest.raises(secagg.SecAggError, match="the same public key"):
        secagg.client_share_keys(secrets[1], {**keys, 3: keys[2]})

    # The honest-but-curious model's limit, shown on the path without a roster: with
    # its own key pairs in the neighbours' places, the server decrypts threshold shares of node 1's mask seed
    # and of its private key 1, i.e. both secrets, which would strip all of node 1's masks.
    impostors = {n: (generate_key_pairs(), generate_key_pairs()) for n in (2, 3, 4, 5)}
    swapped = {
        n: (public_key_to_bytes(pair1[1]), public_key_to_bytes(pair2[1]))
        for n, (pair1, pair2) in impostors.items()
    }
    ciphertexts = secagg.client_share_keys(secrets[1], {1: keys[1], **swapped})  # accepted: nothing to tell
    seed_shares, sk1_shares = [], []
    for node, (_, (server_sk2, _)) in impostors.items():
        server_key = generate_shared_key(server_sk2, bytes_to_public_key(secrets[1].pk2))
        sender, destination, seed_share, sk1_share = share_keys_plaintext_separate(
            decrypt(server_key, ciphertexts[node])
        )
        assert (sender, destination) == (1, node)
        seed_shares.append(seed_share)
        sk1_shares.append(sk1_share)
    assert (
        combine_shares(seed_shares) == secrets[1].mask_seed and combine_shares(sk1_shares) == secrets[1].sk1
    )


# --------------------------------- a server that deviates from what it announced (issue #36, client checks)
def deviating_round(monkeypatch, config, nodes, updates, weights, global_model, dp=False, **changes):
    """A secure round whose server sends every client the parameters of the run config changed by `changes`
    (the honest server's round parameters, then dataclasses.replace, past the server's own checks), the rest
    of the protocol as written."""
    honest = server.secagg._round_params
    monkeypatch.setattr(
        server.secagg,
        "_round_params",
        lambda *args: dataclasses.replace(honest(*args), **changes),
    )
    return secure_round(config, nodes, updates, weights, global_model, dp=dp)


@pytest.mark.parametrize(
    "parameter, received, expected",
    [
        ("threshold", 2, "4 (secagg-reconstruction-threshold"),
        ("threshold", 1, "4 (secagg-reconstruction-threshold"),
        ("threshold", 5, "4 (secagg-reconstruction-threshold"),  # not the run's either
        ("num-shares", 9, "4..7 (secagg-num-shares"),  # a larger neighbourhood: more shares handed out
        ("num-shares", 3, "4..7 (secagg-num-shares"),  # a neighbourhood below the threshold
        ("clipping-range", 0.001, "1.0 (secagg-clipping-range)"),
        ("clipping-range", 8.0, "1.0 (secagg-clipping-range)"),
        ("quantization-range", 2**10, "4194304 (secagg-quantization-range)"),
        ("modulus", 2**16, "4294967296 (2**32)"),
        ("loss-bound", 1.0, "256.0"),
        ("max-weight", 0.5, "a whole number >= 1"),
        ("weight-key", "uniform-weight", "'num-examples'"),
    ],
)
def test_every_client_refuses_at_setup_a_parameter_other_than_the_run_configs(
    monkeypatch, parameter, received, expected
):
    """Before: clients took any threshold, num-shares, grid or modulus the server sent, e.g. a threshold of 2
    that lets 2 shares rebuild a client's secrets. Now each one refuses at setup, naming the parameter, the
    value received and the value expected; it answers nothing, and the round is refused as for dropouts."""
    config, nodes, updates, weights, global_model = federation(8, seed=11)
    field_name = parameter.replace("-", "_")
    outcome, grid, exchange, _ = deviating_round(
        monkeypatch, config, nodes, updates, weights, global_model, **{field_name: received}
    )
    assert outcome.refused is not None and outcome.aggregated is None
    assert set(grid.refusals) == set(nodes)
    for node, (stage, error) in grid.refusals.items():
        assert stage == secagg.SETUP and isinstance(error, secagg.SecAggRefused)
        assert (error.parameter, error.received) == (parameter, received)
        assert error.expected.startswith(expected)
        assert f"node {node}: refused {parameter} {received!r} from the server, expected {expected}" in str(
            error
        )
    assert secagg.SETUP not in grid.received or all(r.has_error() for r in grid.received[secagg.SETUP])
    assert secagg.SHARE_KEYS not in grid.received  # no client got as far as sharing its secrets
    assert {f["phase"] for f in exchange.failures} >= {"secagg-setup"}
    assert all(secagg.STATE not in grid.contexts[n].state for n in nodes)  # nothing kept of the round


@pytest.mark.parametrize(
    "changes, parameter",
    [({"max_weight": 1000.0}, "max-weight"), ({"weight_key": "num-examples"}, "weight-key")],
    ids=["max-weight", "weight-key"],
)
def test_under_central_dp_clients_refuse_a_max_weight_other_than_1_or_a_num_examples_weight(
    monkeypatch, changes, parameter
):
    """Uniform weights under central DP: max-weight is 1 for everyone, and a client's update must not be
    weighed by its window count (before, a max-weight of 1000 for some clients shrank their share)."""
    config, nodes, updates, weights, global_model = federation(
        6, seed=12, dp_mode="central", dp_clipping_norm=0.05, dp_noise_multiplier=1e-6
    )
    outcome, grid, *_ = deviating_round(
        monkeypatch, config, nodes, updates, weights, global_model, dp=True, **changes
    )
    assert outcome.refused is not None and set(grid.refusals) == set(nodes)
    assert {error.parameter for _, error in grid.refusals.values()} == {parameter}


def test_a_client_refuses_at_collect_a_max_weight_below_its_own_weight(monkeypatch):
    """A whole max-weight passes setup; the client knows its own weight only after training, and refuses a
    max-weight below it (its update would be scaled past the quantisation range the modulus is sized for)."""
    config, nodes, updates, weights, global_model = federation(8, seed=13)
    low = float(sorted(weights.values())[3])  # above half the clients' weights
    outcome, grid, *_ = deviating_round(
        monkeypatch, config, nodes, updates, weights, global_model, max_weight=low
    )
    heavier = {n for n in nodes if weights[n] > low}
    assert heavier and set(grid.refusals) == heavier
    for stage, error in grid.refusals.values():
        assert stage == MessageType.TRAIN and (error.parameter, error.received) == ("max-weight", low)
    assert outcome.refused is not None  # too few masked vectors: refused by the threshold logic


def test_the_run_config_the_client_checks_is_its_own_not_the_servers_copy():
    """The summaries phase keeps the server's copy of the run config in context.state (client_app.py); the
    checks read context.run_config, so a server cannot announce other values there and then use them."""
    config, nodes, updates, weights, _ = federation(6, seed=14)
    context = FakeGrid(nodes, updates, weights, config=config).contexts[nodes[0]]
    servers_copy = FederationConfig(**{**config.__dict__, "secagg_clipping_range": 8.0})
    context.state[protocol.RUN_CONFIG] = ConfigRecord(servers_copy.as_dict())
    params = secagg.SecAggParams(7, 4, 8.0, 2**22, 100.0, "num-examples")
    request = Message(
        RecordDict({secagg.PARAMS: ConfigRecord(params.to_config())}),
        message_type=secagg.SETUP,
        dst_node_id=nodes[0],
    )
    with pytest.raises(
        secagg.SecAggRefused, match="refused clipping-range 8.0 from the server, expected 1.0"
    ):
        handle_setup(request, context)


def test_a_client_refuses_a_neighbour_list_larger_than_its_neighbourhood():
    """num-shares 7: a ring of 7, itself included. Before, a client shared its secrets with any list the
    server sent, e.g. its own Sybil nodes added: 9 nodes hold its shares."""
    params = secagg.SecAggParams(7, 4, 1.0, 2**22, 1.0, "num-examples")
    secrets = {n: secagg.client_setup(n, params) for n in range(1, 10)}
    keys = {n: (s.pk1, s.pk2) for n, s in secrets.items()}
    secagg.client_share_keys(secrets[1], {n: keys[n] for n in range(1, 8)})  # 7: the ring
    for size in (8, 9):
        with pytest.raises(secagg.SecAggRefused) as error:
            secagg.client_share_keys(secrets[1], {n: keys[n] for n in range(1, size + 1)})
        assert (error.value.parameter, error.value.received) == ("number of neighbours listed", size)
        assert "expected 4..7, itself included" in str(error.value)
    # A list missing nodes is refused below the threshold (4, itself included), which is now the run's; above
    # it a missing neighbour cannot be told from one lost at setup (docs/privacy.md).
    with pytest.raises(secagg.SecAggRefused, match="refused number of neighbours listed 3"):
        secagg.client_share_keys(secrets[1], {n: keys[n] for n in range(1, 4)})


def test_a_server_that_shrinks_neighbourhoods_must_lower_the_threshold_and_is_refused_at_setup(monkeypatch):
    """Neighbourhoods of 3 (itself and 2 neighbours) need threshold <= 3: before, a server that sent
    num-shares 3 and threshold 2 ran the round with every client's update behind 2 pairwise masks."""
    config, nodes, updates, weights, global_model = federation(8, seed=15)
    outcome, grid, *_ = deviating_round(
        monkeypatch, config, nodes, updates, weights, global_model, num_shares=3, threshold=2
    )
    assert outcome.refused is not None and set(grid.refusals) == set(nodes)
    assert {error.parameter for _, error in grid.refusals.values()} == {"threshold"}


def context_holding(secrets: secagg.ClientSecrets, run_config: dict | None = None) -> Context:
    """A client's context holding its round state (as handle_setup and the stages after keep it)."""
    context = Context(1, secrets.node_id, {}, RecordDict(), run_config or {})
    context.state[secagg.STATE] = ConfigRecord(secrets.to_config())
    return context


def share_keys_request(node: int, keys: dict[str, tuple[bytes, bytes]]) -> Message:
    record = ConfigRecord({name: list(pair) for name, pair in keys.items()})
    return Message(RecordDict({secagg.KEYS: record}), message_type=secagg.SHARE_KEYS, dst_node_id=node)


def unmask_request(node: int, active: list[str], dropped: list[str]) -> Message:
    lists = ConfigRecord({"active": active, "dropped": dropped})
    return Message(RecordDict({secagg.NEIGHBOURS: lists}), message_type=secagg.UNMASK, dst_node_id=node)


def test_a_client_refuses_a_neighbour_named_twice():
    """'2' and '02' name one node: before, the second silently replaced the first's keys."""
    params = secagg.SecAggParams(7, 4, 1.0, 2**22, 1.0, "num-examples")
    secrets = {n: secagg.client_setup(n, params) for n in range(1, 6)}
    keys = {str(n): (s.pk1, s.pk2) for n, s in secrets.items()}
    context = context_holding(secrets[1])
    with pytest.raises(secagg.SecAggRefused, match=r"refused neighbour list \[2\] from the server"):
        handle_share_keys(share_keys_request(1, {**keys, "02": keys["3"]}), context)
    assert secagg.STATE not in context.state  # refused: it leaves the round
    handle_share_keys(share_keys_request(1, keys), context_holding(secrets[1]))  # the honest list passes


def after_collect() -> dict[int, secagg.ClientSecrets]:
    """Nodes 1..5 (one neighbourhood, threshold 4) after stage 3: each holds its neighbours' shares."""
    secrets, _, _, inbox = shared_keys()
    for node, client in secrets.items():
        secagg.client_masked_vector(client, inbox[node], [np.zeros(3)], 1.0, loss=0.0)
    return secrets


def test_a_client_refuses_an_active_set_below_the_threshold_even_padded_with_repeats():
    """Before, the active set's length was compared with the threshold: '2' twice (or '2' and '02') counted
    as two survivors, and a client released mask-seed shares for an active set of 3 nodes."""
    secrets = after_collect()
    for active in (["1", "2", "2", "3"], ["1", "2", "02", "3"]):
        context = context_holding(secrets[1])
        with pytest.raises(secagg.SecAggRefused, match=r"refused active set \[2\] from the server"):
            handle_unmask(unmask_request(1, active, ["4", "5"]), context)
        assert secagg.STATE not in context.state
    with pytest.raises(secagg.SecAggRefused) as error:
        secagg.client_unmask_shares(secrets[1], [1, 2, 3], [4, 5])
    assert (error.value.parameter, error.value.received) == ("number of active nodes", 3)
    assert "expected at least the reconstruction threshold 4" in str(error.value)
    assert set(secagg.client_unmask_shares(secrets[1], [1, 2, 3, 4], [5])) == {1, 2, 3, 4, 5}


def test_a_client_refuses_an_active_set_without_itself_or_with_nodes_outside_its_neighbourhood():
    """It is asked because its masked vector reached the server: an active set without it is no honest one
    (before, a client released its neighbours' mask-seed shares for it)."""
    secrets = after_collect()
    with pytest.raises(secagg.SecAggRefused, match=r"refused active set \[2, 3, 4, 5\] from the server"):
        secagg.client_unmask_shares(secrets[1], [2, 3, 4, 5], [])
    with pytest.raises(secagg.SecAggError, match=r"holds no shares of \[99\]"):
        secagg.client_unmask_shares(secrets[1], [1, 2, 3, 4, 99], [5])


def test_a_client_refusing_an_unmask_request_leaves_the_round_and_answers_no_retry():
    """A node both active and dropped is refused (both of its secrets would go out); the client then leaves
    the round as a dropout: before, it kept its secrets and answered the server's next try."""
    secrets = after_collect()
    context = context_holding(secrets[1])
    with pytest.raises(secagg.SecAggError, match="both active and dropped"):
        handle_unmask(unmask_request(1, ["1", "2", "3", "4"], ["4"]), context)
    with pytest.raises(secagg.SecAggError, match="a later stage arrived before setup"):
        handle_unmask(unmask_request(1, ["1", "2", "3"], ["4"]), context)


# ------------------------------------------- signed round keys (issue #36): a roster refuses tampered keys
def roster_configs(directory, nodes: list[int], names: list[str] | None = None) -> dict[int, dict]:
    """Identity keys and a roster in `directory` for `nodes` (named "0", "1", ... unless `names`); each
    node's own --node-config naming the roster and its key file, as a SuperNode's would."""
    names = names or [str(index) for index in range(len(nodes))]
    roster = secagg_identity.create_identities(directory, names)
    return {
        node: {
            ROSTER_NODE_CONFIG: str(roster),
            IDENTITY_KEY_NODE_CONFIG: str(directory / secagg_identity.key_file_name(name)),
        }
        for node, name in zip(nodes, names, strict=True)
    }


def test_with_a_roster_the_honest_round_signs_its_keys_and_gives_the_same_aggregate(tmp_path):
    config, nodes, updates, weights, global_model = federation(6, seed=16)
    # The same draws in both rounds: Flower samples the clients' order with Python's global generator and
    # rounds stochastically with numpy's.
    random.seed(16), np.random.seed(16)
    plain, grid, _, _ = secure_round(config, nodes, updates, weights, global_model)
    random.seed(16), np.random.seed(16)
    signed, signed_grid, exchange, _ = secure_round(
        config, nodes, updates, weights, global_model, node_configs=roster_configs(tmp_path, nodes)
    )
    assert plain.refused is None and signed.refused is None and not signed_grid.refusals
    assert (plain.keys_signed, signed.keys_signed) == (False, True)
    assert plain.summary()["keys_signed"] is False and signed.summary()["keys_signed"] is True
    assert max_difference(signed.aggregated, plain.aggregated) == 0.0  # the masks cancel exactly
    assert max_difference(signed.aggregated, plain_fedavg(config, nodes, updates, weights, global_model)) < (
        2 * QUANTISATION_STEP
    )
    assert exchange.uploaded["secagg-setup"] == {
        "secagg-keys.pk1": "bytes",
        "secagg-keys.pk2": "bytes",
        "secagg-keys.identity": "bytes",
        "secagg-keys.signature": "bytes",
    }
    for reply in grid.received[secagg.SETUP]:  # without a roster nothing is signed: unchanged replies
        assert set(reply.content[secagg.KEYS].keys()) == {"pk1", "pk2"}


def signed_setup(node_configs: dict[int, dict], server_round: int, run_config: dict):
    """Stage 1 on each node of `node_configs` (one neighbourhood): {node: its context} and the entries an
    honest server relays at share-keys, {str(node): (pk1, pk2, name, signature)}."""
    params = secagg.SecAggParams(5, 4, 1.0, 2**22, 100.0, "num-examples")  # the fixture's run config
    contexts = {
        node: Context(1, node, config, RecordDict(), run_config) for node, config in node_configs.items()
    }
    return contexts, setup_again(contexts, params, server_round)


def setup_again(contexts: dict[int, Context], params: secagg.SecAggParams, server_round: int) -> dict:
    entries = {}
    for node, context in contexts.items():
        request = Message(
            RecordDict({secagg.PARAMS: ConfigRecord(params.to_config())}),
            message_type=secagg.SETUP,
            dst_node_id=node,
            group_id=str(server_round),
        )
        keys = handle_setup(request, context).content[secagg.KEYS]
        entries[str(node)] = tuple(keys[field] for field in ("pk1", "pk2", "identity", "signature"))
    return entries


def refused_at_share_keys(context: Context, node: int, entries: dict) -> secagg.SecAggRefused:
    """handle_share_keys on these relayed entries, on a copy of the node's context after setup, must refuse;
    the node leaves the round (no secrets kept)."""
    copy = signed_context(context)
    with pytest.raises(secagg.SecAggRefused) as error:
        handle_share_keys(share_keys_request(node, entries), copy)
    assert secagg.STATE not in copy.state
    return error.value


def signed_context(context: Context) -> Context:
    """A copy of a node's context (its round state included), for one try of a stage."""
    copy = Context(
        context.run_id, context.node_id, dict(context.node_config), RecordDict(), context.run_config
    )
    for key, record in context.state.items():
        copy.state[key] = ConfigRecord(dict(record.items()))
    return copy


def flipped(value: bytes, index: int = 0) -> bytes:
    return value[:index] + bytes([value[index] ^ 0x01]) + value[index + 1 :]


SIGNED_NODES = [11, 12, 13, 14, 15]


@pytest.fixture
def signed(tmp_path):
    """Nodes 11..15 with a roster (named "0".."4"), after a round-1 setup: (contexts, entries, run config)."""
    run_config = FederationConfig(secagg=True, secagg_num_shares=5, secagg_reconstruction_threshold=4)
    node_configs = roster_configs(tmp_path, SIGNED_NODES)
    contexts, entries = signed_setup(node_configs, 1, run_config.as_dict())
    return contexts, entries, run_config.as_dict()


def test_with_a_roster_a_swapped_neighbour_key_is_refused(signed):
    """The attack of test_share_keys_refuses_..._not_a_swapped_neighbour_key, with a roster: the server's own
    key pairs in node 12's place, under node 12's name and signature (or its own signing key), fail."""
    contexts, entries, _ = signed
    impostor = (public_key_to_bytes(generate_key_pairs()[1]), public_key_to_bytes(generate_key_pairs()[1]))
    swapped = {**entries, "12": (*impostor, *entries["12"][2:])}
    error = refused_at_share_keys(contexts[11], 11, swapped)
    assert error.parameter == "signature of node 12's keys"
    assert "'1''s signature over its round-1 keys for node 12 in run 1" in error.expected
    # The server signing its keys with an Ed25519 key of its own, under node 12's roster name:
    server_key = secagg_identity.Identity("1", Ed25519PrivateKey.generate(), {})
    forged = secagg_identity.sign_keys(server_key, 1, 1, 12, *impostor)
    error = refused_at_share_keys(contexts[11], 11, {**entries, "12": (*impostor, b"1", forged)})
    assert error.parameter == "signature of node 12's keys"


@pytest.mark.parametrize(
    "field, index", [("pk1", 0), ("pk1", 20), ("pk2", 31), ("signature", 0), ("signature", 63)]
)
def test_with_a_roster_a_tampered_key_or_signature_byte_is_refused(signed, field, index):
    contexts, entries, _ = signed
    position = {"pk1": 0, "pk2": 1, "signature": 3}[field]
    tampered = list(entries["13"])
    tampered[position] = flipped(tampered[position], index)
    error = refused_at_share_keys(contexts[11], 11, {**entries, "13": tuple(tampered)})
    assert error.parameter == "signature of node 13's keys"


def test_with_a_roster_keys_replayed_from_another_round_or_node_are_refused(signed):
    contexts, round_1, run_config = signed
    params = secagg.SecAggParams(5, 4, 1.0, 2**22, 100.0, "num-examples")
    # A round it signed keys for, announced again: refused at setup (its neighbours' keys could be replayed).
    again = signed_context(contexts[11])
    with pytest.raises(
        secagg.SecAggRefused, match="refused round '1' from the server, expected a round above 1"
    ):
        setup_again({11: again}, params, 1)
    with pytest.raises(secagg.SecAggRefused, match="refused round '' from the server"):
        handle_setup(
            Message(
                RecordDict({secagg.PARAMS: ConfigRecord(params.to_config())}),
                message_type=secagg.SETUP,
                dst_node_id=11,
            ),
            signed_context(contexts[11]),
        )
    round_2 = setup_again(contexts, params, 2)
    handle_share_keys(share_keys_request(11, round_2), signed_context(contexts[11]))  # honest
    # Node 13's round-1 keys (whose private key 1 the server may have rebuilt, had it declared 13 dropped).
    error = refused_at_share_keys(contexts[11], 11, {**round_2, "13": round_1["13"]})
    assert error.parameter == "signature of node 13's keys" and "round-2 keys" in error.expected
    # Node 13's round-2 keys moved to node 14's slot: the signature names node 13.
    moved = {key: value for key, value in round_2.items() if key != "13"} | {"14": round_2["13"]}
    error = refused_at_share_keys(contexts[12], 12, moved)
    assert error.parameter == "signature of node 14's keys"


def test_with_a_roster_an_unknown_or_duplicated_identity_or_an_unsigned_key_is_refused(signed, tmp_path):
    contexts, entries, run_config = signed
    # Node 16 signs with a key of another roster (the server's Sybil, say): unknown to node 11's roster.
    outsider = roster_configs(tmp_path / "other", [16], names=["9"])
    _, extra = signed_setup(outsider, 1, run_config)
    error = refused_at_share_keys(contexts[11], 11, {**entries, **extra})
    assert (error.parameter, error.received) == ("identity of node 16", "9")
    assert "expected a client of this node's roster" in str(error)
    # The same identity key on two SuperNodes (nodes 12 and 17): each signature verifies, the name repeats.
    twin_config = {17: dict(contexts[12].node_config)}
    _, twin = signed_setup(twin_config, 1, run_config)
    error = refused_at_share_keys(contexts[11], 11, {**entries, **twin})
    assert (error.parameter, error.received) == ("identity", "1")
    # A neighbour's keys relayed without a name and signature.
    error = refused_at_share_keys(contexts[11], 11, {**entries, "14": entries["14"][:2]})
    assert error.parameter == "keys of node 14"


def test_a_roster_in_the_node_config_must_name_both_files_and_match_the_key(signed, tmp_path):
    contexts, entries, run_config = signed
    params = secagg.SecAggParams(5, 4, 1.0, 2**22, 100.0, "num-examples")
    roster_only = {ROSTER_NODE_CONFIG: contexts[11].node_config[ROSTER_NODE_CONFIG]}
    lone = {11: Context(1, 11, roster_only, RecordDict(), run_config)}
    with pytest.raises(secagg_identity.IdentityError, match="name both 'secagg-roster' and"):
        setup_again(lone, params, 1)
    # A key file whose public key is not the roster's entry for its name (a roster of another federation).
    other = roster_configs(tmp_path / "other", [11])
    mismatched = {11: Context(1, 11, {**other[11], **roster_only}, RecordDict(), run_config)}
    with pytest.raises(secagg_identity.IdentityError, match="is not in .* with this key's public key"):
        setup_again(mismatched, params, 1)
    with pytest.raises(FileExistsError):  # a new roster would lock out every client holding an old key
        secagg_identity.create_identities(tmp_path, ["0"])


def test_with_a_roster_a_server_swapping_one_clients_keys_in_a_whole_round_is_refused(tmp_path):
    """The full round: the server relays its own key pair in one client's place to every other client. Every
    client holding the swapped entry refuses before sharing anything, and the round is refused."""
    config, nodes, updates, weights, global_model = federation(6, seed=17)
    victim = nodes[0]
    impostor = [public_key_to_bytes(generate_key_pairs()[1]), public_key_to_bytes(generate_key_pairs()[1])]

    def swap(message: Message) -> Message:
        if message.metadata.message_type != secagg.SHARE_KEYS or message.metadata.dst_node_id == victim:
            return message
        record = message.content[secagg.KEYS]
        record[str(victim)] = impostor + list(record[str(victim)])[2:]
        return message

    outcome, grid, *_ = secure_round(
        config,
        nodes,
        updates,
        weights,
        global_model,
        node_configs=roster_configs(tmp_path, nodes),
        rewrite=swap,
    )
    assert outcome.refused is not None and outcome.aggregated is None
    assert set(grid.refusals) == set(nodes) - {victim}
    for stage, error in grid.refusals.values():
        assert stage == secagg.SHARE_KEYS and error.parameter == f"signature of node {victim}'s keys"
    shared = [reply for reply in grid.received[secagg.SHARE_KEYS] if not reply.has_error()]
    assert [reply.metadata.src_node_id for reply in shared] == [victim]  # nobody else encrypted a share
