"""What the server does to client updates before aggregating them: decode lean updates, clip outliers.

Lean updates (run config update-compression, common/federation/compression.py): the global model goes down
as float16 and replies carry a compressed update, decoded here against the round's float32 global weights, so
the strategy aggregates ordinary weights (weighted by each client's windows, "num-examples").

Clipping (update-clip-factor): a mixed federation has devices whose updates differ in size by orders of
magnitude (a chest strap at 25 Hz beside a wrist watch); one outlier can drag the average. Each update (a
client's change of the global model) larger than `factor` x the round's median update norm is scaled down to
that norm before aggregation. Only the round's own updates are looked at: nothing is kept per client.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, Message

from common.federation.compression import decode_arrays, is_compressed
from common.federation.run_config import FederationConfig

ARRAYS = "arrays"


def _numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in record.items()}


def downlink_arrays(arrays: ArrayRecord, config: FederationConfig) -> ArrayRecord:
    """The global model as sent to clients: float16 with lean updates on, else unchanged."""
    if config.update_compression == "none":
        return arrays
    return ArrayRecord(
        {
            name: Array(value.astype(np.float16) if value.dtype == np.float32 else value)
            for name, value in _numpy(arrays).items()
        }
    )


def make_lean(messages: list[Message], config: FederationConfig) -> list[Message]:
    """Train messages with the global model in float16 (one conversion shared by all of them)."""
    if config.update_compression == "none" or not messages:
        return messages
    lean = downlink_arrays(messages[0].content[ARRAYS], config)
    for message in messages:
        message.content[ARRAYS] = lean
    return messages


def decode_replies(replies: list[Message], global_arrays: ArrayRecord) -> list[Message]:
    """Compressed replies turned into full float32 weights in place (others are left as they are)."""
    base = None
    for reply in replies:
        record = reply.content[ARRAYS]
        if is_compressed(list(record.keys())):
            base = base if base is not None else _numpy(global_arrays)
            weights = decode_arrays(_numpy(record), base)
            reply.content[ARRAYS] = ArrayRecord({name: Array(value) for name, value in weights.items()})
    return replies


def update_norms(replies: list[Message], global_arrays: ArrayRecord) -> np.ndarray:
    base = _numpy(global_arrays)
    norms = []
    for reply in replies:
        total = 0.0
        for name, value in _numpy(reply.content[ARRAYS]).items():
            if value.dtype.kind == "f":
                delta = value.astype(np.float64) - base[name].astype(np.float64)
                total += float(np.sum(delta * delta))
        norms.append(total**0.5)
    return np.asarray(norms)


def clip_updates(replies: list[Message], global_arrays: ArrayRecord, factor: float) -> dict:
    """Scale every update whose norm exceeds factor x the median norm down to that bound, in place."""
    if factor <= 0 or len(replies) < 2:
        return {"clipped": 0}
    norms = update_norms(replies, global_arrays)
    bound = factor * float(np.median(norms))
    base = _numpy(global_arrays)
    clipped = 0
    for reply, norm in zip(replies, norms, strict=True):
        if norm <= bound or norm == 0:
            continue
        shrink = bound / norm
        weights = {
            name: (base[name] + shrink * (value - base[name])).astype(value.dtype)
            if value.dtype.kind == "f"
            else value
            for name, value in _numpy(reply.content[ARRAYS]).items()
        }
        reply.content[ARRAYS] = ArrayRecord({name: Array(value) for name, value in weights.items()})
        clipped += 1
    return {
        "clipped": clipped,
        "bound": bound,
        "median_norm": float(np.median(norms)),
        "max_norm": float(norms.max()),
    }


__all__ = ["clip_updates", "decode_replies", "downlink_arrays", "make_lean", "update_norms"]
