"""The client's side of lean updates (run config update-compression): encode the reply, keep the residual.

See common/federation/compression.py. The residual (what compression left out, fed back next time) is the
only extra state, kept in the node's `context.state` and only on clients that trained with compression on.
"""

from __future__ import annotations

from flwr.app import ArrayRecord, RecordDict

from common.federation.compression import encode_update
from common.federation.protocol import array_record, model_arrays
from common.federation.run_config import FederationConfig
from common.models.sensor_encoder import SensorEncoder

RESIDUAL = "update-residual"


def reply_arrays(
    model: SensorEncoder, received: ArrayRecord, state: RecordDict, config: FederationConfig
) -> ArrayRecord:
    """The train reply's one ArrayRecord: the weights, or with compression on the encoded update."""
    if config.update_compression == "none":
        return model_arrays(model)
    weights = {name: value.detach().cpu().numpy() for name, value in model.state_dict().items()}
    base = {name: array.numpy() for name, array in received.items()}
    residual = {name: a.numpy() for name, a in state[RESIDUAL].items()} if RESIDUAL in state else None
    sent, residual = encode_update(
        weights, base, residual, config.update_compression, config.update_topk_fraction
    )
    state[RESIDUAL] = array_record(**residual)
    return array_record(**sent)


__all__ = ["RESIDUAL", "reply_arrays"]
