"""The device's side of SecAgg+ (stages: common/federation/secagg.py): three query handlers and a mod.

`secagg_mod` wraps the train handler OUTSIDE the DP mods: it lets training (and, under central DP, the
update's clipping) run unchanged, then replaces the reply's model with the masked vector of the update
(trained - global) over the tensors the reply holds: all of them, or with client-train-layers the trained
ones only (the frozen rest is not sent, so the vector is shorter). The reply then holds the masked vector and
nothing else: the weight and the train loss are coordinates of that vector, so the server learns only their
sums.

Injected dropouts (run config `secagg-drop`, for robustness studies): a client named there raises
`InjectedDropout` instead of answering its stage, so Flower returns an error reply with no content over the
transport and the server gets nothing of that stage from it, as from a device that died.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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


def handle_setup(msg: Message, context: Context) -> Message:
    """Stage 1: fresh key pairs for the round; reply with the two public keys."""
    params = secagg.SecAggParams.from_config(dict(msg.content[secagg.PARAMS].items()))
    secrets = secagg.client_setup(msg.metadata.dst_node_id, params)
    _keep(context, secrets)
    return Message(
        RecordDict({secagg.KEYS: ConfigRecord({"pk1": secrets.pk1, "pk2": secrets.pk2})}), reply_to=msg
    )


def handle_share_keys(msg: Message, context: Context) -> Message:
    """Stage 2: encrypted shares of the mask seed and private key for each live neighbour."""
    secrets = _secrets(context)
    keys = {int(node): (pair[0], pair[1]) for node, pair in msg.content[secagg.KEYS].items()}
    ciphertexts = secagg.client_share_keys(secrets, keys)
    _keep(context, secrets)
    reply = ConfigRecord(
        {"destinations": [str(node) for node in ciphertexts], "ciphertexts": list(ciphertexts.values())}
    )
    return Message(RecordDict({secagg.SHARES: reply}), reply_to=msg)


def handle_unmask(msg: Message, context: Context) -> Message:
    """Stage 4: the shares the server needs to remove the masks of survivors and of dropped neighbours."""
    secrets = _secrets(context)
    lists = msg.content[secagg.NEIGHBOURS]
    shares = secagg.client_unmask_shares(
        secrets, [int(n) for n in lists["active"]], [int(n) for n in lists["dropped"]]
    )
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
    secrets = _secrets(context)
    sources = (int(n) for n in round_config[secagg.SOURCES])
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
