"""Server-side pieces of the protocol that need no simulation: evaluator sampling, pooled metrics, the
preflight of the device types the run config names, and when refused clients stop a run."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict

from common.data import devices
from common.data.errors import DataError
from common.federation import protocol
from common.federation.run_config import FederationConfig
from server import federation
from server.federation import (
    DeviceTypeRefused,
    check_device_types,
    check_refusals,
    refused_device_types,
    sample_evaluators,
    taking_part,
)

SHIPPED_DEVICES = devices.DEVICES_DIR


def test_evaluator_sample_keeps_64_bit_node_ids_as_python_ints():
    nodes = [2**63 + 7, 2**64 - 1, 12, 2**40]  # Flower node ids are unsigned 64-bit
    config = FederationConfig(num_server_rounds=3, fraction_evaluate=0.5)
    chosen = sample_evaluators(nodes, config, server_round=1, rng=np.random.default_rng(0))
    assert len(chosen) == 2 and set(chosen) <= set(nodes)
    assert all(type(node) is int for node in chosen)
    last_round = sample_evaluators(nodes, config, server_round=3, rng=np.random.default_rng(0))
    assert last_round == nodes  # everyone evaluates in the final round


def test_server_pretraining_gives_the_same_model_whether_stage_one_ran_or_was_loaded(tmp_path):
    """Stage 1 draws from the global RNG; pre-training is re-seeded so that a loaded text encoder
    (text-encoder-path, resume) gives the same starting model as training it: such runs compare."""
    import torch
    from models_fixtures import save_tiny_text_encoder

    from server.cloud import Cloud

    encoder_dir = save_tiny_text_encoder(tmp_path / "tiny")
    config = FederationConfig(
        text_encoder=str(encoder_dir),
        source_windows_per_activity=8,
        server_pretrain_epochs=1,
        sensor_width=16,
    )
    models = []
    for draws in (0, 1000):  # stage 1 (or anything else) consumed a different amount of randomness before
        cloud = Cloud(config, tmp_path / f"out-{draws}")
        torch.rand(draws)
        np.random.rand(draws)
        models.append(cloud.pretrain_sensor_encoder()[0].state_dict())
    assert models[0].keys() == models[1].keys()
    for name, value in models[0].items():
        assert torch.equal(value, models[1][name]), name


def test_a_second_run_with_the_same_stage_one_inputs_reuses_the_text_space_to_the_last_bit(tmp_path):
    """text-space-cache: the first run trains stage 1 and stores it; a run whose stage-1 inputs match loads
    it (its history says so) and has the same text encoder and the same pre-trained sensor encoder; a run
    with other stage-1 inputs trains its own."""
    import torch
    from models_fixtures import save_tiny_text_encoder

    from server.cloud import Cloud

    encoder_dir = save_tiny_text_encoder(tmp_path / "tiny")
    cache = tmp_path / "text-spaces"
    base = dict(
        text_encoder=str(encoder_dir),
        source_windows_per_activity=8,
        stage1_steps=2,
        server_pretrain_epochs=1,
        sensor_width=16,
        text_space_cache=str(cache),
    )
    runs = []
    for name, extra in [("first", {}), ("again", {"num_server_rounds": 7}), ("other", {"stage1_steps": 3})]:
        cloud = Cloud(FederationConfig(**(base | extra)), tmp_path / name)
        history = cloud.train_text_space()
        runs.append((history, cloud.encoder.state_dict(), cloud.pretrain_sensor_encoder()[0].state_dict()))
    (first, first_text, first_model), (again, again_text, again_model), (other, other_text, _) = runs
    assert "reused" not in first and again["reused"].startswith(str(cache)) and "reused" not in other
    assert len(list(cache.iterdir())) == 2  # one text space per set of stage-1 inputs
    for name, value in first_text.items():
        assert torch.equal(value, again_text[name]), name
    assert any(not torch.equal(value, other_text[name]) for name, value in first_text.items())
    for name, value in first_model.items():
        assert torch.equal(value, again_model[name]), name


# --- preflight of the device types the run config names ------------------------------------------------
@pytest.fixture
def devices_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """configs/devices with a user's new file: my_ring.toml, copied from waist_phone.toml with a placement the
    simulator does not know (issue #37: one that stays unknown when placements are added)."""
    folder = tmp_path / "devices"
    shutil.copytree(SHIPPED_DEVICES, folder)
    ring = (folder / "waist_phone.toml").read_text().replace('placement = "waist"', 'placement = "tail"')
    (folder / "my_ring.toml").write_text(ring)
    monkeypatch.setattr(devices, "DEVICES_DIR", folder)
    return folder


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("device-types", {"device_types": "my_ring,waist_phone"}),
        ("clients-data", {"clients_data": "synthetic:my_ring,synthetic:waist_phone"}),
        ("source-device", {"source_device": "my_ring"}),
    ],
)
def test_preflight_names_the_file_key_value_and_known_placements_before_stage_one(
    devices_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, values: dict
):
    """Issue #37: a device type whose placement the simulator cannot produce stops the run at the server's
    preflight, before stage 1, instead of its clients refusing after it and the run going on without them."""
    config = FederationConfig(**values)
    with pytest.raises(DataError) as raised:
        federation.preflight(config)
    message = str(raised.value)
    assert f"run config '{key}'" in message and str(devices_dir / "my_ring.toml") in message
    assert "key 'placement' = 'tail' is not simulated; known placements: [" in message
    assert "'waist'" in message and "'wrist'" in message  # what is allowed

    def stage_one(*args, **kwargs):
        raise AssertionError("the server's stage 1 started before the preflight failed")

    monkeypatch.setattr(federation, "Cloud", stage_one)
    run = federation.FederationRun(None, config, tmp_path / "out")
    with pytest.raises(DataError, match="'tail' is not simulated"):
        run.set_up_server()
    assert not (tmp_path / "out").exists()  # nothing written, nothing trained


def test_preflight_checks_placements_only_where_data_is_simulated_and_names_unknown_device_types(
    devices_dir: Path,
):
    # Applied to real recordings a placement is only a word for the prompts: nothing is simulated.
    check_device_types(FederationConfig(clients_data="uci", device_types="my_ring", data_dir="/data"))
    # Round-robin over both lists: clients 0, 2, ... hold uci with my_ring, the synthetic ones waist_phone.
    check_device_types(
        FederationConfig(clients_data="uci,synthetic", device_types="my_ring,waist_phone", data_dir="/data")
    )
    with pytest.raises(DataError, match="'device-types'.*'my_ring'.*'tail' is not simulated"):
        check_device_types(FederationConfig(clients_data="uci,synthetic", device_types="my_ring"))
    with pytest.raises(DataError, match="run config 'clients-data': device type 'hover_board': no file"):
        check_device_types(FederationConfig(clients_data="synthetic:hover_board"))
    with pytest.raises(DataError, match="'native' means real data as recorded"):
        check_device_types(FederationConfig(clients_data="synthetic", device_types="native"))


# --- refused clients --------------------------------------------------------------------------------------
def _summaries_replies(config: FederationConfig, num_partitions: int) -> list[Message]:
    """Phase 1 answered by the production ClientApp handler for each partition, in this process."""
    from client.client_app import send_summaries

    replies = []
    for partition in range(num_partitions):
        request = Message(
            RecordDict({protocol.RUN_CONFIG: ConfigRecord(config.as_dict())}),
            message_type=protocol.SUMMARIES,
            dst_node_id=100 + partition,
        )
        node_config = {"partition-id": partition, "num-partitions": num_partitions}
        context = Context(1, 100 + partition, node_config, RecordDict(), {})
        replies.append(send_summaries(request, context))
    return replies


def _exchange(replies: list[Message]) -> federation.Exchange:
    """The server's record of phase 1's replies, each from its node as the grid delivers them."""
    exchange = federation.Exchange(grid=None, timeout=1.0)
    delivered = [
        SimpleNamespace(content=reply.content, metadata=SimpleNamespace(src_node_id=100 + node))
        for node, reply in enumerate(replies)
    ]
    taking_part(exchange, delivered)
    return exchange


@pytest.mark.usefixtures("run_identity")
def test_a_run_stops_when_every_client_of_a_named_device_type_refused(monkeypatch: pytest.MonkeyPatch):
    """Clients refused for their data leave the run going on without them, unless all clients of a device type
    the run config names refused: then the ServerApp stops, naming the device type and the reasons."""
    import client.client_app as client_app

    def stuck_wrist(data):  # the wrist watches' sensors are stuck (common/federation/preflight.py)
        stuck = data.spec.device_type == "wrist_watch" and data.spec.partition_id in refusing
        return "training windows are constant: 12 of 12 windows do not move at all" if stuck else None

    monkeypatch.setattr(client_app, "client_data_problem", stuck_wrist)
    config = FederationConfig(device_types="waist_phone,wrist_watch", windows_per_client=24)
    refusing = {1}  # one of the two wrist watches (partitions 1 and 3): the run goes on without it
    exchange = _exchange(_summaries_replies(config, num_partitions=4))
    (refusal,) = exchange.refused
    assert refusal["device-type"] == "wrist_watch" and refusal["partition-id"] == 1
    assert "client 1 (synthetic:wrist_watch) refused: training windows are constant" in refusal["reason"]
    check_refusals(config, exchange)  # the other wrist watch takes part
    assert refused_device_types(config, exchange.refused, exchange.devices.values()) == {}

    refusing = {1, 3}  # every wrist watch: the results would hold none
    exchange = _exchange(_summaries_replies(config, num_partitions=4))
    assert sorted(exchange.devices.values()) == ["waist_phone", "waist_phone"]
    with pytest.raises(DeviceTypeRefused) as raised:
        check_refusals(config, exchange)
    message = str(raised.value)
    assert "device type 'wrist_watch': all 2 of its clients refused" in message
    assert "client 1 (synthetic:wrist_watch) refused" in message and "client 3 (synthetic" in message
    assert "waist_phone" not in message


def test_refusals_of_device_types_the_run_config_does_not_name_never_stop_a_run():
    config = FederationConfig(device_types="waist_phone")
    refused = [
        {"reason": "client 0 refused: no windows (empty data)", "device-type": "hover_board"},  # node config
        {"reason": "client 1 refused: no windows (empty data)"},  # a client that does not say its type
        {"reason": "client 2 (uci) refused: no windows (empty data)", "device-type": "native"},
    ]
    assert refused_device_types(config, refused, devices_taking_part=[]) == {}
    named = [*refused, {"reason": "client 3 (synthetic:waist_phone) refused", "device-type": "waist_phone"}]
    assert refused_device_types(config, named, devices_taking_part=[]) == {
        "waist_phone": ["client 3 (synthetic:waist_phone) refused"]
    }
    assert refused_device_types(config, named, devices_taking_part=["waist_phone"]) == {}


class SlowRepliesGrid:
    """A grid without Flower's in-memory `pull_interval` (as the HTTP grid of a deployment): node i's reply
    arrives at the (i + 1)-th pull, node 2 never replies, and the push to node 3 failed."""

    def __init__(self) -> None:
        self.pulls = 0

    def push_messages(self, messages):
        ids = [f"id-{message.metadata.dst_node_id}" for message in messages]
        return [*ids[:-1], ""]  # Flower's HTTP grid returns no id for a message it could not push

    def pull_messages(self, message_ids):
        self.pulls += 1
        node = self.pulls - 1
        if f"id-{node}" not in message_ids or node == 2:
            return []
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=f"id-{node}"))]


def test_the_exchange_polls_a_deployments_grid_every_half_second_and_stops_at_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
):
    sleeps: list[float] = []
    monkeypatch.setattr(federation.time, "sleep", sleeps.append)
    clock = iter(range(100))  # one second per reading
    monkeypatch.setattr(federation.time, "monotonic", lambda: float(next(clock)))
    grid = SlowRepliesGrid()
    exchange = federation.Exchange(grid=grid, timeout=3.0)
    messages = [SimpleNamespace(metadata=SimpleNamespace(dst_node_id=node)) for node in range(4)]

    replies = exchange._send_and_receive(messages)

    assert [reply.metadata.reply_to_message_id for reply in replies] == ["id-0", "id-1"]
    assert sleeps == [federation.REPLY_POLL_SECONDS] * 2 and federation.REPLY_POLL_SECONDS == 0.5
    assert grid.pulls == 3  # the 3-s timeout ends the wait for node 2; node 3's failed push is not awaited
