"""The client's side of lean updates (run config update-compression): rebuild the model, encode the reply.

See common/federation/compression.py and server/updates.py. Two things are kept in the node's `context.state`,
only with compression on and only while the server's messages say "keep" (it says not to where the run's
sampling makes this client unlikely to be addressed again in time): the global model the client holds with
its version (the downlink sends only the steps since), and on training clients the residual (what
compression left out, fed back next time).
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from common.federation import protocol
from common.federation.compression import apply_deltas, encode_update, unpack_deltas
from common.federation.protocol import array_record, model_arrays
from common.federation.run_config import FederationConfig
from common.models.sensor_encoder import SensorEncoder

RESIDUAL = "update-residual"
HELD_MODEL, HELD_VERSION = "downlink-model", "downlink-version"


def received_model(content: RecordDict, state: RecordDict) -> ArrayRecord:
    """The float32 global model a train/evaluate message stands for: sent whole, or steps to the one held."""
    if protocol.DOWNLINK not in content:  # lean updates off: the whole float32 model
        return content["arrays"]
    version, base = int(content[protocol.DOWNLINK]["version"]), int(content[protocol.DOWNLINK]["base"])
    if "arrays" in content:  # the whole model, float16 on the wire
        weights = {}
        for name, array in content["arrays"].items():
            value = array.numpy()
            weights[name] = value.astype(np.float32) if value.dtype == np.float16 else value
    else:
        held = int(state[HELD_VERSION]["version"]) if HELD_VERSION in state else None
        if held is None or held < base:
            raise RuntimeError(
                f"downlink: this client holds model version {held}, the server sent the steps from version "
                f"{base}; it gets the whole model next time"
            )
        steps = unpack_deltas(
            {name: array.numpy() for name, array in content[protocol.MODEL_DELTAS].items()}
            if protocol.MODEL_DELTAS in content
            else {}
        )
        weights, held = apply_deltas({n: a.numpy() for n, a in state[HELD_MODEL].items()}, held, steps)
        if held != version:
            raise RuntimeError(f"downlink: the steps sent end at version {held}, not at {version}")
    model = array_record(**weights)
    if keeps_state(content):
        state[HELD_MODEL], state[HELD_VERSION] = model, ConfigRecord({"version": version})
    else:
        for key in (HELD_MODEL, HELD_VERSION):
            state.pop(key, None)
    return model


def keeps_state(content: RecordDict) -> bool:
    """Whether the server asks this client to keep its model copy and residual (lean downlink)."""
    return protocol.DOWNLINK in content and bool(content[protocol.DOWNLINK].get("keep", True))


def held_version(content: RecordDict) -> dict[str, ConfigRecord]:
    """What a reply adds so the server knows which model version this client now holds (lean downlink)."""
    if not keeps_state(content):
        return {}
    return {protocol.DOWNLINK: ConfigRecord({"version": int(content[protocol.DOWNLINK]["version"])})}


def reply_arrays(
    model: SensorEncoder, received: ArrayRecord, state: RecordDict, config: FederationConfig, keep: bool
) -> ArrayRecord:
    """The train reply's one ArrayRecord: the weights the client trains (client-train-layers), or with
    compression on their encoded update. The server fills in what was not sent from the global model.
    `keep`: the residual is kept for next time (keeps_state)."""
    trained = model_arrays(model, model.top_layer_names(config.client_train_layers))
    if config.update_compression == "none":
        return trained
    weights = {name: array.numpy() for name, array in trained.items()}
    base = {name: array.numpy() for name, array in received.items()}
    residual = {name: a.numpy() for name, a in state[RESIDUAL].items()} if RESIDUAL in state else None
    sent, residual = encode_update(
        weights, base, residual, config.update_compression, config.update_topk_fraction
    )
    if keep:
        state[RESIDUAL] = array_record(**residual)
    else:
        state.pop(RESIDUAL, None)
    return array_record(**sent)


__all__ = [
    "HELD_MODEL",
    "HELD_VERSION",
    "RESIDUAL",
    "held_version",
    "keeps_state",
    "received_model",
    "reply_arrays",
]
