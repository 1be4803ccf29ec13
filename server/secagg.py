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

Who takes part: the grid the caller offers (`grid`) is the round's sample source: the training clients
(fixed sampling, the strategy picks fraction-train of them), the clients lazy enrolment drew and enrolled, or
the round's Poisson cohort; key agreement runs over the clients sampled. With Poisson sampling under central
DP (server/dp_poisson.py) the release is DP-FedAvg's: the unmasked SUM of clipped updates over q N, noise
z C / (q N), and every round releases: a draw too small for SecAgg+ (fewer than 2 clients, or fewer than
secagg-reconstruction-threshold), or a round refused for dropouts, releases the noise alone, and nothing of
any client was unmasked.

Lean clients (client-train-layers): only the trained tensors (`trained`) are masked, summed and noised; the
frozen rest of the global model is not sent back and does not move.
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
from server.dp_poisson import PoissonDpFedAvg, releases_every_round

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
    # Whether every client's setup reply carried a signature over its keys (it holds a roster and checks its
    # neighbours': the malicious-server model); None when no setup reply came.
    keys_signed: bool | None = None

    def summary(self) -> dict:
        return {
            "sampled": len(self.sampled),
            "survivors": len(self.survivors),
            "dropped_after_share_keys": len(self.dropped_after_share_keys),
            "refused": self.refused,
            "keys_signed": self.keys_signed,
            "stage_seconds": self.stage_seconds,
        }


def secagg_params(
    config: FederationConfig, sampled: list[int], weights: dict[int, float]
) -> secagg.SecAggParams:
    """The round's parameters: neighbourhoods of secagg-num-shares (at most the round), the weight scale."""
    weight_key = secagg.weight_key(config.dp_mode)  # the clients derive it the same way, and check it
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
    trained: list[str] | None = None,
) -> SecAggRound:
    """Sample with the strategy, run the four stages, return the new global model (or why not).

    `exchange(messages, phase)` sends and returns the successful replies (server.federation.Exchange);
    `grid`: the clients the strategy may sample (None: nobody this round); `weights`: each client's
    num-examples as it reported in the summaries phase; `server_reply`: the server's own update
    (server-train-epochs), averaged in after unmasking with its weight; `trained`: the tensors clients train
    and send (client-train-layers; None = all).
    """
    train_messages = _configure(strategy, server_round, arrays, grid, config)
    sampled = [m.metadata.dst_node_id for m in train_messages]
    outcome = SecAggRound(sampled=sampled)
    dp = strategy if isinstance(strategy, DifferentialPrivacyClientSideFixedClipping) else None
    poisson = strategy if isinstance(strategy, PoissonDpFedAvg) else None
    keys = [key for key in arrays.keys() if trained is None or key in trained]
    try:
        _run_stages(outcome, exchange, train_messages, server_round, arrays, config, weights, keys, poisson)
    except secagg.SecAggError as error:
        outcome.refused = str(error)
    if outcome.refused is not None:
        if dp is not None:
            dp._pop_pending_event(server_round)  # nothing was released this round: nothing to account
        if poisson is not None:  # DP-FedAvg releases every round: the noise alone, as for an empty draw
            outcome.aggregated = _moved_model(arrays, keys, None, poisson.noise_std, config, server_round)
            poisson.accountant.compose(poisson.round_event)
            log.warning(
                "round %d: secure aggregation refused: %s; noise alone released",
                server_round,
                outcome.refused,
            )
            return outcome
        log.warning(
            "round %d: secure aggregation refused: %s; global model kept", server_round, outcome.refused
        )
        return outcome
    update, weight_sum = outcome.aggregated, outcome.clients_weight
    inner = dp.strategy if dp is not None else poisson.strategy if poisson is not None else strategy
    participants = [_aggregate_as_reply(update, weight_sum, outcome.metrics)]
    if server_reply is not None:
        participants.append(server_reply())
    outcome.aggregated, outcome.metrics = inner.aggregate_train(server_round, participants)
    if dp is not None:
        dp._compose_release(dp._pop_pending_event(server_round))  # the accountant's epsilon after this round
    if poisson is not None:
        poisson.accountant.compose(poisson.round_event)
    return outcome


def _configure(
    strategy: Strategy, server_round: int, arrays: ArrayRecord, grid, config: FederationConfig
) -> list[Message]:
    """The strategy's train messages for the clients `grid` offers (none when `grid` is None)."""
    if grid is None:
        return []
    if config.lazy_enrolment and isinstance(strategy, DifferentialPrivacyClientSideFixedClipping):
        # Flower checks the round's sample against a fixed size; a lazily enrolled round offers (and the
        # strategy takes) those of the drawn clients that train, fewer when some turn out to evaluate only.
        # The accountant claims no amplification, and the noise follows the survivors (_new_global_model).
        strategy.num_sampled_clients = len(list(grid.get_node_ids()))
    return list(strategy.configure_train(server_round, arrays, ConfigRecord(), grid))


def _run_stages(
    outcome: SecAggRound,
    exchange,
    train_messages: list[Message],
    server_round: int,
    arrays: ArrayRecord,
    config: FederationConfig,
    weights: dict[int, float],
    keys: list[str],
    poisson: PoissonDpFedAvg | None,
) -> None:
    """The four SecAgg+ stages, each timed into `outcome.stage_seconds`; a SecAggError refuses the round."""
    sampled = outcome.sampled
    params = _round_params(config, sampled, weights)
    graph = secagg.neighbourhoods(sampled, params.num_shares, seed=config.seed * 7919 + server_round)
    minimum = max(params.threshold, int(np.ceil(config.min_replies_fraction * len(sampled))))
    if releases_every_round(config):  # refusing for few replies would tell how many were drawn (dp_poisson)
        minimum = params.threshold
    clock = time.monotonic()
    public_keys, signatures = _setup_stage(exchange, sampled, params, graph, server_round)
    outcome.keys_signed = bool(public_keys) and set(signatures) == set(public_keys)
    outcome.stage_seconds["setup"], clock = time.monotonic() - clock, time.monotonic()
    shared_keys, inbox = _share_keys_stage(exchange, public_keys, signatures, params, graph)
    outcome.stage_seconds["share_keys"], clock = time.monotonic() - clock, time.monotonic()
    masked = _collect_stage(exchange, train_messages, inbox, params, graph, outcome, shared_keys, minimum)
    outcome.stage_seconds["collect"], clock = time.monotonic() - clock, time.monotonic()
    dropped = shared_keys - set(masked)
    average, weight_sum = _unmask_stage(exchange, masked, dropped, public_keys, params, graph)
    average, train_loss = secagg.split_loss(average, params)  # the weighted mean loss, from the masked sum
    outcome.stage_seconds["unmask"] = time.monotonic() - clock
    outcome.aggregated = _new_global_model(
        arrays, keys, average, len(masked), weight_sum, config, server_round, poisson
    )
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
    exchange, sampled: list[int], params: secagg.SecAggParams, graph: dict[int, set[int]], server_round: int
) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """Stage 1, setup: the round's parameters out, each client's two public keys back; (node -> (pk1, pk2),
    node -> (name, signature) of the clients that signed their keys: those holding a roster)."""
    content = RecordDict({secagg.PARAMS: ConfigRecord(params.to_config())})
    # The group id carries the round (metadata, as Flower's workflows set it): a client with a roster signs
    # its keys for this round, and refuses a round it signed keys for before.
    messages = [
        Message(content, message_type=secagg.SETUP, dst_node_id=n, group_id=str(server_round))
        for n in sampled
    ]
    public_keys, signatures = {}, {}
    for reply in exchange(messages, "secagg-setup"):
        keys = reply.content[secagg.KEYS]
        public_keys[reply.metadata.src_node_id] = (keys["pk1"], keys["pk2"])
        if secagg.SIGNATURE in keys:
            signatures[reply.metadata.src_node_id] = (keys[secagg.IDENTITY], keys[secagg.SIGNATURE])
    _check_neighbourhoods(graph, set(public_keys), params, "setup")
    return public_keys, signatures


def _share_keys_stage(
    exchange,
    public_keys: dict[int, tuple],
    signatures: dict[int, tuple],
    params: secagg.SecAggParams,
    graph: dict[int, set[int]],
) -> tuple[set[int], dict[int, dict[int, bytes]]]:
    """Stage 2, share keys: relay the live neighbours' public keys (with their names and signatures where
    signed), collect the encrypted shares; the clients that shared their keys, and each one's inbox (sender ->
    the ciphertext addressed to it)."""
    alive = set(public_keys)
    messages = []
    for node in sorted(alive):
        neighbours = sorted(graph[node] & alive)
        keys = ConfigRecord({str(m): [*public_keys[m], *signatures.get(m, ())] for m in neighbours})
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
    arrays: ArrayRecord,
    keys: list[str],
    average: np.ndarray,
    survivors: int,
    weight_sum: float,
    config: FederationConfig,
    server_round: int,
    poisson: PoissonDpFedAvg | None,
) -> ArrayRecord:
    """The global model's tensors `keys` moved by the unmasked average update (under central DP, with the
    server's noise); the other tensors (not trained by the clients) as they were."""
    std = 0.0
    if poisson is not None:
        # DP-FedAvg: the sum (uniform weights: average x survivors) over the expected cohort q N.
        average = average * weight_sum / poisson.expected_cohort
        std = poisson.noise_std
    elif config.dp_mode == "central":
        # The average of n updates clipped to C moves by at most C/n when one client changes.
        std = config.dp_noise_multiplier * config.dp_clipping_norm / survivors
    if std > 0:
        log.info("round %d: central DP noise std %.4g added after unmasking", server_round, std)
    return _moved_model(arrays, keys, average, std, config, server_round)


def _moved_model(
    arrays: ArrayRecord,
    keys: list[str],
    step: np.ndarray | None,
    std: float,
    config: FederationConfig,
    server_round: int,
) -> ArrayRecord:
    """The global model with its tensors `keys` moved by the flat `step` (None: by nothing) and, if std > 0,
    by Gaussian noise of that std drawn from fresh OS entropy (server/dp_noise.py); the rest unchanged."""
    shapes = [tuple(arrays[key].shape) for key in keys]
    if step is None:
        step = np.zeros(sum(int(np.prod(shape)) for shape in shapes))
    parts = secagg.split_update(step, shapes)
    if std > 0:
        # Fresh OS entropy, never the run seed every client knows (server/dp_noise.py).
        parts = add_gaussian_noise(parts, std, reproducible_seed(config), server_round)
    moved = dict(zip(keys, parts, strict=True))
    return ArrayRecord(
        {
            key: Array(
                (arrays[key].numpy().astype(np.float64) + moved[key]).astype(arrays[key].numpy().dtype)
            )
            if key in moved
            else arrays[key]
            for key in arrays.keys()
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
