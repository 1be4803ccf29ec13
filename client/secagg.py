"""The device's side of SecAgg+ (stages: common/federation/secagg.py): three query handlers and a mod.

`secagg_mod` wraps the train handler OUTSIDE the DP mods: it lets training (and, under central DP, the
update's clipping by Flower's `fixedclipping_mod`) run unchanged, then replaces the reply's model with the
masked vector of the update (trained - global). The reply then holds the masked vector and nothing else:
the weight and the train loss are coordinates of that vector, so the server learns only their sums.
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from common.federation import secagg

log = logging.getLogger("fedlanhar.client")


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


def secagg_mod(msg: Message, context: Context, call_next) -> Message:
    """Stage 3 around the train handler: mask the weighted update (train messages without SecAgg+ pass)."""
    config = msg.content["config"] if "config" in msg.content else None
    if config is None or secagg.SOURCES not in config:
        return call_next(msg, context)
    secrets = _secrets(context)
    ciphertexts = dict(zip((int(n) for n in config[secagg.SOURCES]), config[secagg.CIPHERTEXTS], strict=True))
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    sent, trained = msg.content["arrays"], reply.content["arrays"]
    update = [trained[key].numpy().astype(np.float64) - sent[key].numpy().astype(np.float64) for key in sent]
    metrics = reply.content["metrics"]
    vector, clipped = secagg.client_masked_vector(
        secrets,
        ciphertexts,
        update,
        float(metrics[secrets.params.weight_key]),
        loss=float(metrics["train-loss"]),
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
