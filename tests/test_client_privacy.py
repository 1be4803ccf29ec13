"""client/privacy.py's central-DP clipping: a zero update (a client whose windows fill no training pair) is
sent as it is instead of failing the round; any other update is clipped as Flower's fixedclipping_mod does."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from client.privacy import zero_safe_fixedclipping_mod

pytestmark = pytest.mark.usefixtures("run_identity")  # tests/conftest.py: messages need a run id

GLOBAL = {"weight": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3, dtype=np.float32)}


def _train_message() -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({key: Array(value) for key, value in GLOBAL.items()}),
            "config": ConfigRecord({KEY_CLIPPING_NORM: 0.1}),
        }
    )
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def _client(step: float):
    """A train handler that moves every weight by `step` (0: training changed nothing)."""

    def train(msg: Message, context: Context) -> Message:
        arrays = msg.content["arrays"]
        moved = ArrayRecord({key: Array(arrays[key].numpy() + step) for key in arrays.keys()})
        return Message(RecordDict({"arrays": moved}), reply_to=msg)

    return train


def _context() -> Context:
    return Context(1, 1, {}, RecordDict(), {})


def test_flower_fails_on_a_zero_update() -> None:
    # What the wrapper exists for: if Flower stops dividing by the update's norm, it can go.
    with pytest.raises(ZeroDivisionError):
        fixedclipping_mod(_train_message(), _context(), _client(0.0))


def test_a_zero_update_goes_out_unchanged() -> None:
    reply = zero_safe_fixedclipping_mod(_train_message(), _context(), _client(0.0))
    assert not reply.has_error()
    for key, value in GLOBAL.items():
        np.testing.assert_array_equal(reply.content["arrays"][key].numpy(), value)


def test_a_long_update_is_clipped_as_flower_clips_it() -> None:
    ours = zero_safe_fixedclipping_mod(_train_message(), _context(), _client(1.0))
    flowers = fixedclipping_mod(_train_message(), _context(), _client(1.0))
    update = {key: ours.content["arrays"][key].numpy() - value for key, value in GLOBAL.items()}
    norm = np.sqrt(sum(float(np.sum(u.astype(np.float64) ** 2)) for u in update.values()))
    assert norm == pytest.approx(0.1, rel=1e-5)
    for key in GLOBAL:
        np.testing.assert_array_equal(
            ours.content["arrays"][key].numpy(), flowers.content["arrays"][key].numpy()
        )
