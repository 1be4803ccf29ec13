"""The device's side of SecAgg+ (stages: common/federation/secagg.py): three query handlers and a mod.

`secagg_mod` wraps the train handler OUTSIDE the DP mods: it lets training (and, under central DP, the
update's clipping) run unchanged, then replaces the reply's model with the masked vector of the update
(trained - global) over the tensors the reply holds: all of them, or with client-train-layers the trained
ones only (the frozen rest is not sent, so the vector is shorter). The reply then holds the masked vector and
nothing else: the weight and the train loss are coordinates of that vector, so the server learns only their
sums.

What the server sends is checked (common/federation/secagg.py, issue #36): the round's parameters against
this node's own run config (`context.run_config`, never the copy the server restates in the summaries phase)
and the protocol's floors, the neighbour list, the ciphertexts' senders and the unmask lists. A refusal raises
SecAggRefused naming the parameter, the value received and the value expected; the node then leaves the round
(its secrets are dropped) and the server sees it as a dropout, so the threshold logic refuses the round.

Injected dropouts (run config `secagg-drop`, for robustness studies): a client named there raises
`InjectedDropout` instead of answering its stage, so Flower returns an error reply with no content over the
transport and the server gets nothing of that stage from it, as from a device that died.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from common.federation import secagg
from common.federation.run_config import FederationConfig

log = logging.getLogger("fedlanhar.client")
# TESTS ONLY: a client whose environment names a directory writes its plain update there (_dump_plain_update).
TEST_DUMP_DIR_ENV = "FEDLANHAR_SECAGG_TEST_DUMP_DIR"


class InjectedDropout(RuntimeError):
    """A client leaving a SecAgg+ round on purpose at one stage (run config `secagg-drop`)."""


def drop_out_if_injected(config: FederationConfig, node_config: Mapping, stage: str) -> None:
    """Raise InjectedDropout if secagg-drop names this node's partition with `stage`."""
    partition = node_config.get("partition-id")
    if partition is not None and config.secagg_drop_plan.get(int(partition)) == stage:
        raise InjectedDropout(f"secagg-drop: partition {partition} drops out at the {stage} stage")


def _secrets(context: Context) -> secagg.ClientSecrets:
    if secagg.STATE not in context.state:
        raise secagg.SecAggError("secure aggregation: a later stage arrived before setup on this node")
    return secagg.ClientSecrets.from_config(dict(context.state[secagg.STATE].items()))


def _keep(context: Context, secrets: secagg.ClientSecrets) -> None:
    context.state[secagg.STATE] = ConfigRecord(secrets.to_config())


def announced_params(context: Context) -> secagg.Announced:
    """The round's parameters as this node's own run config announces them.

    `context.run_config` is the run's config, in simulation and deployment alike; the copy the server sends in
    the summaries phase (which client_app.py otherwise prefers) is the server's word, so it checks nothing.
    """
    config = FederationConfig.from_run_config(dict(context.run_config))
    return secagg.Announced(
        num_shares=config.secagg_num_shares,
        threshold=config.secagg_reconstruction_threshold,
        clipping_range=config.secagg_clipping_range,
        quantization_range=config.secagg_quantization_range,
        weight_key=secagg.weight_key(config.dp_mode),
    )


def _leave_round(context: Context, error: secagg.SecAggError) -> None:
    """A refused stage: forget the round's secrets, so that the node answers no later stage of it."""
    # A server caught deviating gets nothing more this round: a retry of the stage with other values finds
    # no secrets, as at a node that dropped out.
    if secagg.STATE in context.state:
        del context.state[secagg.STATE]
    log.warning("secagg: %s; this node leaves the round", error)


def leaves_round_on_refusal(
    handler: Callable[[Message, Context], Message],
) -> Callable[[Message, Context], Message]:
    """A stage handler that, on a SecAggError, forgets the round and raises (Flower: no answer)."""

    @functools.wraps(handler)
    def answer(msg: Message, context: Context) -> Message:
        try:
            return handler(msg, context)
        except secagg.SecAggError as error:
            _leave_round(context, error)
            raise

    return answer


@leaves_round_on_refusal
def handle_setup(msg: Message, context: Context) -> Message:
    """Stage 1: check the round's parameters, make fresh key pairs; reply with the two public keys."""
    params = secagg.SecAggParams.from_config(dict(msg.content[secagg.PARAMS].items()))
    secagg.check_params(params, msg.metadata.dst_node_id, announced_params(context))
    secrets = secagg.client_setup(msg.metadata.dst_node_id, params)
    _keep(context, secrets)
    return Message(
        RecordDict({secagg.KEYS: ConfigRecord({"pk1": secrets.pk1, "pk2": secrets.pk2})}), reply_to=msg
    )


@leaves_round_on_refusal
def handle_share_keys(msg: Message, context: Context) -> Message:
    """Stage 2: encrypted shares of the mask seed and private key for each live neighbour."""
    secrets = _secrets(context)
    record = msg.content[secagg.KEYS]
    nodes = secagg.node_ids(list(record.keys()), secrets.node_id, "neighbour list")
    keys = {node: (pair[0], pair[1]) for node, pair in zip(nodes, record.values(), strict=True)}
    ciphertexts = secagg.client_share_keys(secrets, keys)
    _keep(context, secrets)
    reply = ConfigRecord(
        {"destinations": [str(node) for node in ciphertexts], "ciphertexts": list(ciphertexts.values())}
    )
    return Message(RecordDict({secagg.SHARES: reply}), reply_to=msg)


@leaves_round_on_refusal
def handle_unmask(msg: Message, context: Context) -> Message:
    """Stage 4: the shares the server needs to remove the masks of survivors and of dropped neighbours."""
    secrets = _secrets(context)
    lists = msg.content[secagg.NEIGHBOURS]
    active = secagg.node_ids(lists["active"], secrets.node_id, "active set")
    dropped = secagg.node_ids(lists["dropped"], secrets.node_id, "dropped set")
    shares = secagg.client_unmask_shares(secrets, active, dropped)
    del context.state[secagg.STATE]  # the round is over: its secrets are not kept
    reply = ConfigRecord({"owners": [str(node) for node in shares], "shares": list(shares.values())})
    return Message(RecordDict({secagg.SHARES: reply}), reply_to=msg)


def secagg_mod(msg: Message, context: Context, call_next, config: FederationConfig | None = None) -> Message:
    """Stage 3 around the train handler: mask the weighted update (train messages without SecAgg+ pass).

    `config`: the run config, for its injected dropouts (secagg-drop).
    """
    round_config = msg.content["config"] if "config" in msg.content else None
    if round_config is None or secagg.SOURCES not in round_config:
        return call_next(msg, context)
    if config is not None:
        drop_out_if_injected(config, context.node_config, "collect")
    try:
        return _masked_reply(msg, context, call_next, round_config)
    except secagg.SecAggError as error:
        _leave_round(context, error)
        raise


def _masked_reply(msg: Message, context: Context, call_next, round_config: ConfigRecord) -> Message:
    """secagg_mod's work: train, then reply with the masked vector of the update, weight and loss."""
    secrets = _secrets(context)
    sources = secagg.node_ids(round_config[secagg.SOURCES], secrets.node_id, "ciphertext senders")
    ciphertexts = dict(zip(sources, round_config[secagg.CIPHERTEXTS], strict=True))
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    sent, trained = msg.content["arrays"], reply.content["arrays"]
    keys = [key for key in sent.keys() if key in trained]  # the global model's order, as the server's
    update = [trained[key].numpy().astype(np.float64) - sent[key].numpy().astype(np.float64) for key in keys]
    metrics = reply.content["metrics"]
    weight = float(metrics[secrets.params.weight_key])
    dump_dir = os.environ.get(TEST_DUMP_DIR_ENV)
    if dump_dir:
        _dump_plain_update(dump_dir, msg, context, sent, dict(zip(keys, update, strict=True)), weight)
    vector, clipped = secagg.client_masked_vector(
        secrets, ciphertexts, update, weight, loss=float(metrics["train-loss"])
    )
    if clipped:
        log.warning(
            "secagg: %d update coordinates beyond secagg-clipping-range %.3g were clipped",
            clipped,
            secrets.params.clipping_range,
        )
    _keep(context, secrets)
    # Only the masked vector: no MetricRecord, no ConfigRecord (the server needs nothing else to unmask). The
    # weight (num-examples) is masked as element 0 because the weighted sum needs it, but it hides little: the
    # server already knows each client's window count from the summaries phase (it sends one target per
    # window, and announces max-weight from those counts). Nothing else of this client is in clear here.
    return Message(RecordDict({secagg.MASKED: ArrayRecord({"vector": Array(vector)})}), reply_to=msg)


def _dump_plain_update(
    directory: str,
    msg: Message,
    context: Context,
    sent: ArrayRecord,
    update: dict[str, np.ndarray],
    weight: float,
) -> None:
    """TESTS ONLY ($FEDLANHAR_SECAGG_TEST_DUMP_DIR): the model received, the plain update and the weight.

    This writes on the client what SecAgg+ hides from the server, so that a test can compare the server's
    unmasked aggregate with the plain weighted mean. It is the client's own environment, not the run config:
    the server must not be able to switch it on, nor choose where a client writes.
    """
    server_round = int(msg.content["config"].get("server-round", 0))
    partition = context.node_config.get("partition-id", msg.metadata.dst_node_id)
    arrays = {f"global:{key}": sent[key].numpy() for key in sent.keys()}
    arrays.update({f"update:{key}": value for key, value in update.items()})
    path = Path(directory) / f"round-{server_round}-partition-{partition}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, weight=np.float64(weight), **arrays)
