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

Signed round keys (common/federation/secagg_identity.py, issue #36): a client whose SuperNode names a roster
and an identity key in its own `--node-config` (`secagg-roster`, `secagg-identity-key`) or, in simulation,
whose environment names a directory holding both ($FEDLANHAR_SECAGG_IDENTITY_DIR: roster.json and
client-<partition-id>.key) signs its round keys at setup and refuses every neighbour entry the roster does not
vouch for at share-keys. Neither comes from the run config or a message: the server writes those. Without a
roster nothing is signed or checked (the honest-but-curious model).

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

from common.federation import secagg, secagg_identity
from common.federation.run_config import FederationConfig

log = logging.getLogger("fedlanhar.client")
# TESTS ONLY: a client whose environment names a directory writes its plain update there (_dump_plain_update).
TEST_DUMP_DIR_ENV = "FEDLANHAR_SECAGG_TEST_DUMP_DIR"
# Signed round keys: a directory of roster.json and client-<partition-id>.key, in a simulated client's own
# environment; a SuperNode names its files in its own --node-config (these two keys) instead.
IDENTITY_DIR_ENV = "FEDLANHAR_SECAGG_IDENTITY_DIR"
ROSTER_NODE_CONFIG = "secagg-roster"
IDENTITY_KEY_NODE_CONFIG = "secagg-identity-key"
# context.state: {"round": the last round this node signed keys for}; kept across rounds, never sent.
SIGNED_ROUND = "secagg-signed-round"


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
    """Stage 1: check the round's parameters, make fresh key pairs; reply with the two public keys (signed,
    with this node's name, when it holds a roster)."""
    params = secagg.SecAggParams.from_config(dict(msg.content[secagg.PARAMS].items()))
    secagg.check_params(params, msg.metadata.dst_node_id, announced_params(context))
    secrets = secagg.client_setup(msg.metadata.dst_node_id, params)
    keys = {"pk1": secrets.pk1, "pk2": secrets.pk2}
    identity = node_identity(context)
    if identity is not None:
        keys.update(_signed_round_keys(msg, context, identity, secrets))
    _keep(context, secrets)
    return Message(RecordDict({secagg.KEYS: ConfigRecord(keys)}), reply_to=msg)


@leaves_round_on_refusal
def handle_share_keys(msg: Message, context: Context) -> Message:
    """Stage 2: encrypted shares of the mask seed and private key for each live neighbour.

    With a roster, every relayed entry (pk1, pk2, name, signature) is checked against it first."""
    secrets = _secrets(context)
    record = msg.content[secagg.KEYS]
    nodes = secagg.node_ids(list(record.keys()), secrets.node_id, "neighbour list")
    entries = {node: tuple(values) for node, values in zip(nodes, record.values(), strict=True)}
    identity = node_identity(context)
    if identity is not None:
        if SIGNED_ROUND not in context.state:
            raise secagg_identity.IdentityError(
                f"node {secrets.node_id}: signed no keys at this round's setup"
            )
        server_round = int(context.state[SIGNED_ROUND]["round"])  # the round its own keys were signed for
        secagg_identity.check_signed_keys(identity, secrets.node_id, context.run_id, server_round, entries)
    keys = {node: (entry[0], entry[1]) for node, entry in entries.items()}
    ciphertexts = secagg.client_share_keys(secrets, keys)
    _keep(context, secrets)
    reply = ConfigRecord(
        {"destinations": [str(node) for node in ciphertexts], "ciphertexts": list(ciphertexts.values())}
    )
    return Message(RecordDict({secagg.SHARES: reply}), reply_to=msg)


def node_identity(context: Context) -> secagg_identity.Identity | None:
    """This node's identity and roster, from its own node config or (simulation) environment; None: none.

    Never from the run config or a message: the server writes both, and a roster it chose vouches for
    nothing. A file named but unusable raises IdentityError (the node leaves the round, logged).
    """
    roster = context.node_config.get(ROSTER_NODE_CONFIG)
    key = context.node_config.get(IDENTITY_KEY_NODE_CONFIG)
    if roster is not None or key is not None:
        if roster is None or key is None:
            raise secagg_identity.IdentityError(
                f"node config: name both {ROSTER_NODE_CONFIG!r} and {IDENTITY_KEY_NODE_CONFIG!r}, or neither"
            )
        return secagg_identity.load_identity(Path(str(key)), Path(str(roster)))
    directory = os.environ.get(IDENTITY_DIR_ENV)
    if not directory:
        return None
    partition = context.node_config.get("partition-id")
    if partition is None:
        raise secagg_identity.IdentityError(
            f"${IDENTITY_DIR_ENV} is set but the node config has no partition-id to choose a key file by"
        )
    return secagg_identity.load_identity(
        Path(directory) / secagg_identity.key_file_name(str(partition)),
        Path(directory) / secagg_identity.ROSTER_FILE,
    )


def _signed_round_keys(
    msg: Message, context: Context, identity: secagg_identity.Identity, secrets: secagg.ClientSecrets
) -> dict[str, bytes]:
    """Setup with a roster: this node's name and its signature over the round's keys (run, round, node id).

    The round is the setup message's group id (the server's round number, as Flower's workflows set it). It
    must exceed every round this node signed keys for before in this run: a round announced again would let
    the server replay that round's signed neighbour keys to it.
    """
    node = secrets.node_id
    try:
        server_round = int(msg.metadata.group_id)
    except ValueError:
        server_round = 0
    last = int(context.state[SIGNED_ROUND]["round"]) if SIGNED_ROUND in context.state else 0
    if server_round <= last:
        raise secagg.SecAggRefused(
            node,
            "round",
            msg.metadata.group_id,
            f"a round above {last}, the last this node signed keys for",
            "a round number again, or none",
        )
    context.state[SIGNED_ROUND] = ConfigRecord({"round": server_round})
    signature = secagg_identity.sign_keys(
        identity, context.run_id, server_round, node, secrets.pk1, secrets.pk2
    )
    return {secagg.IDENTITY: identity.name.encode("utf-8"), secagg.SIGNATURE: signature}


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
