"""Issue #13, lean downlink: the server sends a client only the compressed steps of the global model since the
version it holds (server/updates.py `Downlink`, client/updates.py `received_model`). Production code on both
ends, messages passed in-process; the end-to-end run is tests/test_mixed_federation.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from client.updates import RESIDUAL, held_version, received_model
from common.federation import protocol
from common.federation.run_config import FederationConfig
from server.updates import Downlink, chain_horizon, float16_bytes, readdress_probability

pytestmark = pytest.mark.usefixtures("run_identity")  # tests/conftest.py: messages need a run id
SHAPES = {"encoder.weight": (256, 128), "encoder.bias": (128,), "head.weight": (128, 64)}


def _weights(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (scale * rng.normal(size=shape)).astype(np.float32) for name, shape in SHAPES.items()}


def _numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in record.items()}


def _float32_bytes() -> int:
    return sum(4 * int(np.prod(shape)) for shape in SHAPES.values())


class Clients:
    """In-process clients: each keeps its own state, as a node's context.state does in a run."""

    def __init__(self, downlink: Downlink) -> None:
        self.downlink = downlink
        self.states: dict[int, RecordDict] = {}

    def evaluate(self, nodes: list[int], fail: set[int] = frozenset()) -> dict[int, tuple[str, int, dict]]:
        """One evaluate exchange: per replying node (kind of message, bytes down, the model it now holds)."""
        record = protocol.array_record(**self.downlink.model)
        content = RecordDict({"arrays": record, "config": ConfigRecord({"server-round": 1})})
        messages = self.downlink.address(
            [Message(content, message_type="evaluate", dst_node_id=node) for node in nodes]
        )
        replies, seen = [], {}
        for message in messages:
            node = message.metadata.dst_node_id
            if node in fail:
                continue
            model = received_model(message.content, self.states.setdefault(node, RecordDict()))
            kind = "whole" if "arrays" in message.content else "steps"
            seen[node] = (kind, protocol.record_nbytes(message.content), _numpy(model))
            reply = held_version(message.content)
            replies.append(SimpleNamespace(content=reply, metadata=SimpleNamespace(src_node_id=node)))
        self.downlink.confirm(messages, replies)
        return seen


def test_a_client_gets_the_whole_model_once_then_only_the_steps_it_lacks():
    config = FederationConfig.from_run_config({"update-compression": "sparse-int8"})
    start = _weights(0)
    downlink = Downlink(config, protocol.array_record(**start))
    clients = Clients(downlink)

    first = clients.evaluate([1, 2])
    for kind, nbytes, model in first.values():  # first contact: the whole model in float16
        assert kind == "whole" and nbytes < 0.51 * _float32_bytes()
        for name in start:
            np.testing.assert_allclose(model[name], start[name], rtol=1e-3, atol=1e-4)

    for version in (1, 2, 3):  # three aggregates; client 1 follows every one, client 2 none
        target = {k: v + 0.05 * _weights(10 + version)[k] for k, v in downlink.model.items()}
        global_model = _numpy(downlink.advance(protocol.array_record(**target), version))
        ((kind, nbytes, model),) = clients.evaluate([1]).values()
        assert kind == "steps" and nbytes < _float32_bytes() / 10  # one step: >10x less than float32
        # The client holds the server's model, offset only by the float16 rounding of its first copy.
        for name in start:
            offset = start[name] - start[name].astype(np.float16).astype(np.float32)
            np.testing.assert_allclose(model[name] + offset, global_model[name], atol=1e-6)

    ((kind, nbytes, model),) = clients.evaluate([2]).values()  # three versions behind: the chain of 3 steps
    assert kind == "steps" and nbytes < 3.1 * _float32_bytes() / 10
    np.testing.assert_allclose(model["head.weight"], clients.evaluate([1])[1][2]["head.weight"], atol=1e-6)
    ((kind, _, model),) = clients.evaluate([3]).values()  # never addressed: the whole current model
    np.testing.assert_allclose(model["encoder.bias"], global_model["encoder.bias"], rtol=1e-3, atol=1e-4)
    assert kind == "whole"
    sent = {kind: values["messages"] for kind, values in downlink.summary().items()}
    assert sent == {"whole": 3, "steps": 4, "current": 1}  # client 1 was current when asked the 2nd time


def test_a_client_that_lost_its_model_or_fell_too_far_behind_gets_the_whole_model_again():
    config = FederationConfig.from_run_config({"update-compression": "sparse-int8"})
    downlink = Downlink(config, protocol.array_record(**_weights(0)))
    clients = Clients(downlink)
    clients.evaluate([1, 2])
    downlink.advance(protocol.array_record(**_weights(1)), 1)
    clients.states[1] = RecordDict()  # client 1 lost its state (e.g. the device was reset)
    with pytest.raises(RuntimeError, match="holds model version None.*whole model next time"):
        clients.evaluate([1])
    clients.evaluate([1], fail={1})  # the failed exchange: the server forgets what client 1 held
    assert clients.evaluate([1])[1][0] == "whole"
    # Many versions later the chain would outweigh the whole float16 model: older steps are dropped (the
    # server keeps at most a model's worth) and client 2, still at version 0, gets the whole model.
    for version in range(2, 40):
        downlink.advance(protocol.array_record(**_weights(version)), version)
    kept = sum(v.nbytes for step in downlink.steps.values() for v in step.values())
    assert kept <= _float32_bytes() / 2 and min(downlink.steps) > 1
    assert clients.evaluate([2])[2][0] == "whole"


def test_what_one_step_leaves_out_is_sent_later_and_the_gap_stays_bounded():
    """Error feedback on the server: each round's aggregate is the held model plus that round's update; the
    model moves by compressed steps, and their sum tracks the sum of the true updates up to the residual,
    which stays the size of about one round's compression error instead of growing with the rounds."""
    config = FederationConfig.from_run_config(
        {"update-compression": "sparse-int8", "update-topk-fraction": 0.2}
    )
    start = _weights(0)
    downlink = Downlink(config, protocol.array_record(**start))
    true_total = {k: np.zeros_like(v) for k, v in start.items()}
    gaps = []
    for version in range(1, 41):
        update = _weights(100 + version, scale=0.01)
        aggregate = {k: downlink.model[k] + update[k] for k in start}
        model = _numpy(downlink.advance(protocol.array_record(**aggregate), version))
        for k in start:
            true_total[k] += update[k]
            np.testing.assert_allclose(model[k] + downlink.residual[k], start[k] + true_total[k], atol=1e-5)
        gaps.append(np.sqrt(sum(float(np.sum(downlink.residual[k] ** 2)) for k in start)))
    one_update = np.sqrt(sum(float(np.sum(v**2)) for v in update.values()))
    assert max(gaps[20:]) < 4 * one_update and max(gaps[20:]) < 1.5 * max(gaps[:20])


def test_a_client_that_trains_only_the_top_layer_sends_and_receives_only_that_part():
    """client-train-layers = 1: the frozen tensors keep their weights through local training, are left out
    of the reply, filled in from the global model by the server, and never appear in a downlink step."""
    import torch

    from client.updates import reply_arrays
    from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig
    from server.updates import decode_replies

    torch.manual_seed(0)
    model = SensorEncoder(SensorEncoderConfig(d_model=32, ff_dim=64, out_dim=16))
    top = model.top_layer_names(1)
    assert set(top) < set(model.state_dict()) and all(
        name.startswith(("encoder.layers.2.", "encoder.norm.", "output_projection.")) for name in top
    )
    assert model.top_layer_names(0) == list(model.state_dict())
    with pytest.raises(ValueError, match="4 asked, the encoder has 3"):
        model.top_layer_names(4)
    received = protocol.model_arrays(model)
    model.train_only(top)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    analysis = torch.randn(4, len(SensorEncoderConfig().analysis_features))
    model(torch.randn(4, 120, 6), analysis).sum().backward()
    optimizer.step()
    after = model.state_dict()
    for name, value in received.items():  # frozen tensors unchanged, the top layer trained
        assert torch.equal(after[name], torch.from_numpy(value.numpy())) == (name not in top), name

    for compression in ("none", "int8"):
        config = FederationConfig.from_run_config(
            {"update-compression": compression, "client-train-layers": 1}
        )
        reply = reply_arrays(model, received, RecordDict(), config, keep=True)
        dense = sum(value.numel() * 4 for value in after.values())
        sent = sum(len(array.data) for array in reply.values())
        assert sent < (0.45 if compression == "none" else 0.12) * dense  # about a third of the weights
        message = SimpleNamespace(content={"arrays": reply})
        (decoded,) = decode_replies([message], received)
        weights = {name: array.numpy() for name, array in decoded.content["arrays"].items()}
        assert list(weights) == list(received.keys())
        for name, value in received.items():
            if name not in top:
                np.testing.assert_array_equal(weights[name], value.numpy())
            else:
                np.testing.assert_allclose(weights[name], after[name].numpy(), atol=2e-2)
        if compression == "none":
            continue
        # The step towards the aggregate carries the top layer only, even where averaging the clients'
        # identical frozen copies changed their last bits.
        downlink = Downlink(config, received, trained=top)
        aggregate = {
            name: array.numpy() * np.float32(1 + 1e-7) for name, array in decoded.content["arrays"].items()
        }
        downlink.advance(protocol.array_record(**aggregate), 1)
        (step,) = downlink.steps.values()
        flags = np.unpackbits(step["update|t"], count=len(downlink.model)).astype(bool)
        assert {name for name, flag in zip(downlink.model, flags, strict=True) if flag} == set(top)


def test_the_server_tells_clients_to_keep_their_copy_only_when_it_is_likely_to_be_used():
    """A copy pays off only if its client is addressed again while the chain reaches it: every client of a
    fraction-1.0 run keeps it; a 1%-a-round cross-device client is stateless (no model, no residual), so a
    10,000-client simulation does not hold hundreds of model copies."""
    default = FederationConfig.from_run_config({"update-compression": "int8"})
    assert readdress_probability(default, 1, "train", horizon=1) == 1.0
    assert readdress_probability(default, 4, "evaluate", horizon=3) == 0.0  # the run's last message
    sparse = FederationConfig.from_run_config(
        {
            "update-compression": "int8",
            "num-server-rounds": 3,
            "fraction-train": 0.01,
            "fraction-evaluate": 0.01,
            "final-round-evaluate-all": False,
        }
    )
    # Addressed in round 1's training: this round's evaluation or two more rounds' training or evaluation.
    expected = 1 - 0.99 * (0.99 * 0.99) ** 2
    assert readdress_probability(sparse, 1, "train", horizon=5) == pytest.approx(expected)
    assert readdress_probability(sparse, 1, "train", horizon=1) < expected  # the chain reaches one round
    poisson = FederationConfig.from_run_config(
        {"client-sampling": "poisson", "sampling-probability": 0.3, "fraction-evaluate": 0.3}
    )
    assert 0.5 < readdress_probability(poisson, 1, "evaluate", horizon=2) < 1.0

    start = _weights(0)
    # The chain reaches as many versions back as a float16 model holds of full int8 steps.
    horizon = chain_horizon(start, set(start), "int8", 0.2)
    assert horizon == float16_bytes(start) // (sum(int(np.prod(s)) for s in SHAPES.values()) + 4 * 3) == 1
    assert chain_horizon(start, {"encoder.bias"}, "int8", 0.2) > 100  # one small trained tensor

    downlink = Downlink(sparse, protocol.array_record(**start))
    clients = Clients(downlink)
    assert {kind for kind, _, _ in clients.evaluate([1, 2]).values()} == {"whole"}
    assert all(len(state) == 0 for state in clients.states.values())  # nothing kept
    downlink.advance(protocol.array_record(**_weights(1)), 1)
    assert {kind for kind, _, _ in clients.evaluate([1]).values()} == {"whole"}  # so the whole model again
    assert downlink.held == {}

    keep = Downlink(default, protocol.array_record(**start))
    kept = Clients(keep)
    kept.evaluate([1])
    assert set(kept.states[1].keys()) == {"downlink-model", "downlink-version"} and keep.held == {1: 0}


def test_a_stateless_training_client_keeps_no_residual():
    import torch

    from client.updates import reply_arrays
    from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig

    torch.manual_seed(0)
    model = SensorEncoder(SensorEncoderConfig(d_model=32, ff_dim=64, out_dim=16))
    received = protocol.model_arrays(model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    config = FederationConfig.from_run_config({"update-compression": "int8"})
    state = RecordDict()
    reply_arrays(model, received, state, config, keep=True)
    assert RESIDUAL in state
    sent = reply_arrays(model, received, state, config, keep=False)
    assert RESIDUAL not in state and len(sent) > 0
