"""One SecAgg+ training round driven over the Message API (stages in common/federation/secagg.py).

The strategy still samples and configures the round (`configure_train`: FedProx's mu, central DP's clipping
norm) and still turns the aggregate into the next global model (`aggregate_train`, so FedAdam's server step
applies); only the averaging itself happens under the masks. The server never sees a client's model: it gets
masked uint32 vectors (uniformly random on their own) and, after unmasking, only their weighted sum. A train
reply holds that vector and nothing else: the client's weight and train loss are coordinates of it, so the
round's train loss is the clients' weighted mean, never one client's (issue #36).

Drop-outs: clients lost during setup or share-keys are simply left out (nobody masked with them); clients lost
after share-keys (no masked vector) are recovered in the unmask stage from their neighbours' shares of their
private key. Whenever a live neighbourhood falls below the reconstruction threshold, or fewer than
min-replies-fraction of the sampled clients sent a masked vector, the round is refused: logged, recorded as a
failure, and the global model is kept (the same rule as a plain round with too few replies).

Central DP (dp-mode = "central"): clients clip their update before masking (Flower's fixedclipping_mod runs
inside the SecAgg+ mod); after unmasking the server adds Gaussian noise of std noise-multiplier x
clipping-norm / survivors to the average (the sensitivity of an average of that many clipped updates) and
composes the round into the strategy's RDP accountant. The noise comes from fresh OS entropy, never from the
run seed that every client receives (server/dp_noise.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, Strategy

from common.federation import secagg
from common.federation.protocol import UNIFORM_WEIGHT
from common.federation.run_config import FederationConfig
from server.dp_noise import add_gaussian_noise, reproducible_seed

log = logging.getLogger("fedlanhar.server")


@dataclass
class SecAggRound:
    """What one secure round did: who was sampled, who got through, the aggregate (None if refused)."""

    sampled: list[int]
    survivors: list[int] = field(default_factory=list)  # sent a masked vector
    dropped_after_share_keys: list[int] = field(default_factory=list)  # recovered in the unmask stage
    aggregated: ArrayRecord | None = None
    metrics: MetricRecord | None = None
    refused: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    clients_weight: float = 0.0

    def summary(self) -> dict:
        return {
            "sampled": len(self.sampled),
            "survivors": len(self.survivors),
            "dropped_after_share_keys": len(self.dropped_after_share_keys),
            "refused": self.refused,
            "stage_seconds": self.stage_seconds,
        }


def secagg_params(
    config: FederationConfig, sampled: list[int], weights: dict[int, float]
) -> secagg.SecAggParams:
    """The round's parameters: neighbourhoods of secagg-num-shares (at most the round), the weight scale."""
    weight_key = UNIFORM_WEIGHT if config.dp_mode == "central" else "num-examples"
    max_weight = 1.0 if weight_key == UNIFORM_WEIGHT else max(float(weights.get(n, 1.0)) for n in sampled)
    return secagg.SecAggParams(
        num_shares=min(config.secagg_num_shares, len(sampled)),
        threshold=config.secagg_reconstruction_threshold,
        clipping_range=config.secagg_clipping_range,
        quantization_range=config.secagg_quantization_range,
        max_weight=max_weight,
        weight_key=weight_key,
    )


def secagg_train_round(
    exchange: Callable[[list[Message], str], list[Message]],
    strategy: Strategy,
    server_round: int,
    arrays: ArrayRecord,
    grid,
    config: FederationConfig,
    weights: dict[int, float],
    server_reply: Callable[[], Message] | None = None,
) -> SecAggRound:
    """Sample with the strategy, run the four stages, return the new global model (or why not).

    `exchange(messages, phase)` sends and returns the successful replies (server.federation.Exchange);
    `weights`: each client's num-examples as it reported in the summaries phase; `server_reply`: the server's
    own update (server-train-epochs), averaged in after unmasking with its weight.
    """
    train_messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), grid))
    sampled = [m.metadata.dst_node_id for m in train_messages]
    outcome = SecAggRound(sampled=sampled)
    dp = strategy if isinstance(strategy, DifferentialPrivacyClientSideFixedClipping) else None
    try:
        _run_stages(outcome, exchange, train_messages, server_round, arrays, config, weights)
    except secagg.SecAggError as error:
        outcome.refused = str(error)
    if outcome.refused is not None:
        if dp is not None:
            dp._pop_pending_event(server_round)  # nothing was released this round: nothing to account
        log.warning(
            "round %d: secure aggregation refused: %s; global model kept", server_round, outcome.refused
        )
        return outcome
    update, weight_sum = outcome.aggregated, outcome.clients_weight
    inner = dp.strategy if dp is not None else strategy
    participants = [_aggregate_as_reply(update, weight_sum, outcome.metrics)]
    if server_reply is not None:
        participants.append(server_reply())
    outcome.aggregated, outcome.metrics = inner.aggregate_train(server_round, participants)
    if dp is not None:
        dp._compose_release(dp._pop_pending_event(server_round))  # the accountant's epsilon after this round
    return outcome


def _run_stages(
    outcome: SecAggRound,
    exchange,
    train_messages: list[Message],
    server_round: int,
    arrays: ArrayRecord,
    config: FederationConfig,
    weights: dict[int, float],
) -> None:
    """The four SecAgg+ stages, each timed into `outcome.stage_seconds`; a SecAggError refuses the round."""
    sampled = outcome.sampled
    params = _round_params(config, sampled, weights)
    graph = secagg.neighbourhoods(sampled, params.num_shares, seed=config.seed * 7919 + server_round)
    minimum = max(params.threshold, int(np.ceil(config.min_replies_fraction * len(sampled))))
    clock = time.monotonic()
    public_keys = _setup_stage(exchange, sampled, params, graph)
    outcome.stage_seconds["setup"], clock = time.monotonic() - clock, time.monotonic()
    shared_keys, inbox = _share_keys_stage(exchange, public_keys, params, graph)
    outcome.stage_seconds["share_keys"], clock = time.monotonic() - clock, time.monotonic()
    masked = _collect_stage(exchange, train_messages, inbox, params, graph, outcome, shared_keys, minimum)
    outcome.stage_seconds["collect"], clock = time.monotonic() - clock, time.monotonic()
    dropped = shared_keys - set(masked)
    average, weight_sum = _unmask_stage(exchange, masked, dropped, public_keys, params, graph)
    average, train_loss = secagg.split_loss(average, params)  # the weighted mean loss, from the masked sum
    outcome.stage_seconds["unmask"] = time.monotonic() - clock
    outcome.aggregated = _new_global_model(arrays, average, len(masked), config, server_round)
    outcome.clients_weight = weight_sum * params.max_weight
    outcome.metrics = MetricRecord({"train-loss": train_loss})


def _round_params(
    config: FederationConfig, sampled: list[int], weights: dict[int, float]
) -> secagg.SecAggParams:
    """secagg_params, refusing a round too small to mask or with neighbourhoods below the threshold."""
    if len(sampled) < 2:
        raise secagg.SecAggError(f"{len(sampled)} client sampled: secure aggregation needs at least 2")
    secagg.check_modulus(len(sampled), config.secagg_quantization_range)
    params = secagg_params(config, sampled, weights)
    if params.threshold > params.num_shares:
        raise secagg.SecAggError(
            f"neighbourhoods of {params.num_shares} clients (secagg-num-shares, at most the {len(sampled)} "
            f"sampled) are smaller than secagg-reconstruction-threshold {params.threshold}"
        )
    return params


def _check_neighbourhoods(
    graph: dict[int, set[int]], alive: set[int], params: secagg.SecAggParams, stage: str
) -> None:
    shortfall = secagg.threshold_shortfall(graph, alive, params.threshold)
    if shortfall:
        raise secagg.SecAggError(f"after {stage}: {shortfall}")


def _setup_stage(
    exchange, sampled: list[int], params: secagg.SecAggParams, graph: dict[int, set[int]]
) -> dict[int, tuple]:
    """Stage 1, setup: the round's parameters out, each client's two public keys back."""
    content = RecordDict({secagg.PARAMS: ConfigRecord(params.to_config())})
    replies = exchange(
        [Message(content, message_type=secagg.SETUP, dst_node_id=n) for n in sampled], "secagg-setup"
    )
    public_keys = {
        r.metadata.src_node_id: (r.content[secagg.KEYS]["pk1"], r.content[secagg.KEYS]["pk2"])
        for r in replies
    }
    _check_neighbourhoods(graph, set(public_keys), params, "setup")
    return public_keys


def _share_keys_stage(
    exchange, public_keys: dict[int, tuple], params: secagg.SecAggParams, graph: dict[int, set[int]]
) -> tuple[set[int], dict[int, dict[int, bytes]]]:
    """Stage 2, share keys: relay the live neighbours' public keys, collect the encrypted shares; the clients
    that shared their keys, and each one's inbox (sender -> the ciphertext addressed to it)."""
    alive = set(public_keys)
    messages = []
    for node in sorted(alive):
        keys = ConfigRecord({str(m): list(public_keys[m]) for m in sorted(graph[node] & alive)})
        messages.append(
            Message(RecordDict({secagg.KEYS: keys}), message_type=secagg.SHARE_KEYS, dst_node_id=node)
        )
    sent = {}
    for reply in exchange(messages, "secagg-share-keys"):
        shares = reply.content[secagg.SHARES]
        sent[reply.metadata.src_node_id] = dict(
            zip((int(n) for n in shares["destinations"]), shares["ciphertexts"], strict=True)
        )
    alive = set(sent)
    _check_neighbourhoods(graph, alive, params, "share-keys")
    return set(alive), secagg.route_ciphertexts(sent, alive)


def _collect_stage(
    exchange,
    train_messages: list[Message],
    inbox: dict[int, dict[int, bytes]],
    params: secagg.SecAggParams,
    graph: dict[int, set[int]],
    outcome: SecAggRound,
    shared_keys: set[int],
    minimum: int,
) -> dict[int, np.ndarray]:
    """Stage 3, collect masked input: the round's train messages, each carrying the shares addressed to its
    client; back comes each survivor's masked vector (node -> vector). Records survivors and drop-outs."""
    messages = []
    for message in train_messages:
        node = message.metadata.dst_node_id
        if node not in shared_keys:
            continue
        train_config = ConfigRecord(dict(message.content["config"].items()))
        train_config[secagg.SOURCES] = [str(n) for n in inbox[node]]
        train_config[secagg.CIPHERTEXTS] = list(inbox[node].values())
        content = RecordDict({"arrays": message.content["arrays"], "config": train_config})
        messages.append(Message(content, message_type=MessageType.TRAIN, dst_node_id=node))
    masked = {}
    for reply in exchange(messages, "train"):  # nothing but the masked vector (client/secagg.py)
        masked[reply.metadata.src_node_id] = reply.content[secagg.MASKED]["vector"].numpy()
    outcome.survivors = sorted(masked)
    outcome.dropped_after_share_keys = sorted(shared_keys - set(masked))
    if len(masked) < minimum:
        raise secagg.SecAggError(
            f"{len(masked)} of {len(outcome.sampled)} sampled clients sent a masked update, fewer than "
            f"{minimum} (reconstruction threshold / min-replies-fraction)"
        )
    _check_neighbourhoods(graph, set(masked), params, "collect")
    return masked


def _unmask_stage(
    exchange,
    masked: dict[int, np.ndarray],
    dropped: set[int],
    public_keys: dict[int, tuple],
    params: secagg.SecAggParams,
    graph: dict[int, set[int]],
) -> tuple[np.ndarray, float]:
    """Stage 4, unmask: shares of survivors' mask seeds and of dropped clients' private keys; (the unmasked
    weighted average, with the loss as its last coordinate; the sum of the clients' scaled weights)."""
    messages = []
    for node in sorted(masked):
        lists = ConfigRecord(
            {
                "active": [str(n) for n in sorted(graph[node] & set(masked))],
                "dropped": [str(n) for n in sorted(graph[node] & dropped)],
            }
        )
        messages.append(
            Message(RecordDict({secagg.NEIGHBOURS: lists}), message_type=secagg.UNMASK, dst_node_id=node)
        )
    shares: dict[int, list[bytes]] = {}
    for reply in exchange(messages, "secagg-unmask"):
        released = reply.content[secagg.SHARES]
        for owner, share in zip(released["owners"], released["shares"], strict=True):
            shares.setdefault(int(owner), []).append(share)
    return secagg.unmask_sum(masked, shares, dropped, graph, public_keys, params)


def _new_global_model(
    arrays: ArrayRecord, average: np.ndarray, survivors: int, config: FederationConfig, server_round: int
) -> ArrayRecord:
    """The global model moved by the unmasked average update (under central DP, with the server's noise)."""
    keys = list(arrays.keys())
    shapes = [tuple(arrays[key].shape) for key in keys]
    update = secagg.split_update(average, shapes)
    if config.dp_mode == "central":
        # The average of n updates clipped to C moves by at most C/n when one client changes.
        std = config.dp_noise_multiplier * config.dp_clipping_norm / survivors
        # Fresh OS entropy, never the run seed every client knows (server/dp_noise.py).
        update = add_gaussian_noise(update, std, reproducible_seed(config), server_round)
        log.info("round %d: central DP noise std %.4g added after unmasking", server_round, std)
    return ArrayRecord(
        {
            key: Array((arrays[key].numpy().astype(np.float64) + part).astype(arrays[key].numpy().dtype))
            for key, part in zip(keys, update, strict=True)
        }
    )


def _aggregate_as_reply(arrays: ArrayRecord, weight: float, metrics: MetricRecord) -> Message:
    """The clients' unmasked average shaped like one train reply, for the strategy's aggregate_train."""
    values = {
        "num-examples": float(weight),
        UNIFORM_WEIGHT: 1,
        "train-loss": float(metrics["train-loss"]),
    }
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    return Message(RecordDict({"arrays": arrays, "metrics": MetricRecord(values)}), reply_to=request)
