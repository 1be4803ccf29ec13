"""What the server does to client updates before aggregating them: decode lean updates, clip outliers.

Lean updates (run config update-compression, common/federation/compression.py) work both ways:
- up: replies carry a compressed update, decoded here against the round's global weights, so the strategy
  aggregates ordinary weights (weighted by each client's windows, "num-examples");
- down (`Downlink`): the global model changes only by compressed steps. After aggregating, the server encodes
  the change of the global model with the same compression and its own residual (error feedback, as on the
  clients: what one step leaves out goes into the next) and the new global model is the old one plus that
  decoded step. A client that holds an earlier version therefore needs only the steps since, not the model:
  it gets the whole model (float16) the first time it is addressed, then the chain of steps. The server keeps
  the recent steps (at most a float16 model's worth; older holders get the whole model again) and, per client,
  only the version number it last confirmed. The global model that is evaluated, checkpointed and exported is
  exactly what the clients hold (up to float16 rounding of their first copy).
  A client's copy (and its error-feedback residual) pays off only if it is addressed again while the chain
  still reaches its version. Where the run's sampling makes that less likely than not (cross-device runs that
  draw 1% of the clients a round), each message tells its client not to keep them: the stateless client of
  cross-device FL. In a simulation every virtual client's state lives in one process, so this is also what
  bounds a 10,000-client run's memory (docs/results/speed/README.md, goal 6).

Clipping (update-clip-factor): a mixed federation has devices whose updates differ in size by orders of
magnitude (a chest strap at 25 Hz beside a wrist watch); one outlier can drag the average. Each update (a
client's change of the global model) larger than `factor` x the round's median update norm is scaled down to
that norm before aggregation. Only the round's own updates are looked at: nothing is kept per client.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from common.federation import protocol
from common.federation.compression import (
    decode_arrays,
    encode_update,
    is_compressed,
    nbytes,
    pack_deltas,
)
from common.federation.run_config import FederationConfig

ARRAYS = "arrays"


def _numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in record.items()}


class Downlink:
    """The lean downlink: which version of the global model each client holds, and what it must be sent."""

    def __init__(
        self,
        config: FederationConfig,
        arrays: ArrayRecord,
        version: int = 0,
        trained: list[str] | None = None,
    ) -> None:
        self.mode, self.topk_fraction = config.update_compression, config.update_topk_fraction
        self.model = {name: value.copy() for name, value in _numpy(arrays).items()}
        # The tensors clients train (client-train-layers); the others never move, and averaging identical
        # copies of them may still change their last bits, which must not cost a step.
        self.trained = set(trained) if trained is not None else set(self.model)
        self.version = version  # the round whose aggregate made the model (0: server pre-training)
        self.residual: dict[str, np.ndarray] | None = None
        self.steps: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()  # version -> step to it
        self.held: dict[int, int] = {}  # node -> the version it confirmed holding: one counter per client
        self.config = config
        self.horizon = chain_horizon(self.model, self.trained, self.mode, self.topk_fraction)
        self._whole: tuple[int, ArrayRecord] | None = None
        self.sent = {"whole": [0, 0], "steps": [0, 0], "current": [0, 0]}  # kind -> [messages, bytes]

    def _whole_model(self) -> ArrayRecord:
        if self._whole is None or self._whole[0] != self.version:
            half = {n: v.astype(np.float16) if v.dtype == np.float32 else v for n, v in self.model.items()}
            self._whole = (self.version, ArrayRecord({name: Array(value) for name, value in half.items()}))
        return self._whole[1]

    def address(self, messages: list[Message]) -> list[Message]:
        """Each message with the model as its client needs it: whole, or the steps since the version held."""
        addressed = []
        for message in messages:
            node = message.metadata.dst_node_id
            content = RecordDict({key: record for key, record in message.content.items() if key != ARRAYS})
            held = self.held.get(node)
            if held is not None and (held == self.version or held + 1 in self.steps):
                steps = {version: step for version, step in self.steps.items() if version > held}
                if steps:
                    content[protocol.MODEL_DELTAS] = protocol.array_record(**pack_deltas(steps))
                kind, base = ("steps" if steps else "current"), held
            else:
                content[ARRAYS] = self._whole_model()
                kind, base = "whole", -1
            server_round = int(message.content["config"]["server-round"])
            again = readdress_probability(
                self.config, server_round, message.metadata.message_type, self.horizon
            )
            content[protocol.DOWNLINK] = ConfigRecord(
                {"version": self.version, "base": base, "keep": again >= 0.5}
            )
            self.sent[kind][0] += 1
            self.sent[kind][1] += protocol.record_nbytes(content)
            metadata = message.metadata
            addressed.append(
                Message(
                    content=content,
                    dst_node_id=node,
                    message_type=metadata.message_type,
                    group_id=metadata.group_id,
                )
            )
        return addressed

    def confirm(self, messages: list[Message], replies: list[Message]) -> None:
        """Learn what the replying clients now hold; a client that did not reply gets the whole model next."""
        for message in messages:
            self.held.pop(message.metadata.dst_node_id, None)
        for reply in replies:
            if protocol.DOWNLINK in reply.content:
                self.held[reply.metadata.src_node_id] = int(reply.content[protocol.DOWNLINK]["version"])

    def advance(self, aggregated: ArrayRecord, version: int) -> ArrayRecord:
        """The new global model: the current one plus the compressed step towards `aggregated`."""
        target = {name: value for name, value in _numpy(aggregated).items() if name in self.trained}
        step, self.residual = encode_update(target, self.model, self.residual, self.mode, self.topk_fraction)
        self.model = decode_arrays(step, self.model)
        self.version = version
        self.steps[version] = step
        # A chain longer than the whole float16 model is never sent: older steps are dropped.
        whole = float16_bytes(self.model)
        while sum(nbytes(s) for s in self.steps.values()) > whole:
            self.steps.popitem(last=False)
        return ArrayRecord({name: Array(value) for name, value in self.model.items()})

    def summary(self) -> dict:
        return {
            kind: {"messages": count, "bytes_per_message": total / count if count else None}
            for kind, (count, total) in self.sent.items()
        }


def float16_bytes(model: dict[str, np.ndarray]) -> int:
    """The bytes of the whole model as the downlink sends it: float32 tensors in float16."""
    return sum(v.size * (2 if v.dtype == np.float32 else v.itemsize) for v in model.values())


def chain_horizon(model: dict[str, np.ndarray], trained: set[str], mode: str, topk_fraction: float) -> int:
    """How many versions back the step chain reaches at least: a float16 model's bytes over the bytes of a
    step that changes every trained tensor (Downlink.advance drops older steps)."""
    changed = {
        name: value + 1 for name, value in model.items() if name in trained and value.dtype.kind == "f"
    }
    step, _ = encode_update(changed, model, None, mode, topk_fraction)
    return max(1, float16_bytes(model) // max(1, nbytes(step)))


def readdress_probability(config: FederationConfig, server_round: int, phase: str, horizon: int) -> float:
    """The chance that a client addressed in `phase` ("train"/"evaluate") of `server_round` is addressed
    again within `horizon` rounds, under the run's sampling (fraction-train or Poisson q, fraction-evaluate,
    every client in the final round), as if every client could be drawn in both phases. An estimate: floors
    such as min-train-nodes raise the true chance; clients that only train or only evaluate (held-out users)
    lower it, and then keep a copy that is used less often than this says."""
    last = min(config.num_server_rounds, server_round + horizon)
    if config.final_round_evaluate_all and last == config.num_server_rounds:
        if server_round < last or phase == "train":
            return 1.0
    train = config.sampling_probability if config.client_sampling == "poisson" else config.fraction_train
    missed = 1.0 - config.fraction_evaluate if phase == "train" else 1.0  # this round's evaluation
    missed *= ((1.0 - train) * (1.0 - config.fraction_evaluate)) ** (last - server_round)
    return 1.0 - missed


def decode_replies(replies: list[Message], global_arrays: ArrayRecord) -> list[Message]:
    """Every reply turned into full float32 weights in place: compressed ones decoded, and the tensors a
    client does not train (client-train-layers) taken from the global model."""
    base = _numpy(global_arrays)
    for reply in replies:
        record = reply.content[ARRAYS]
        if is_compressed(list(record.keys())):
            weights = decode_arrays(_numpy(record), base)
        elif set(record.keys()) != set(base):
            weights = {name: record[name].numpy() if name in record else v for name, v in base.items()}
        else:
            continue
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


__all__ = [
    "Downlink",
    "chain_horizon",
    "clip_updates",
    "decode_replies",
    "readdress_probability",
    "update_norms",
]
