"""The federated LanHAR protocol, run by the ServerApp: targets, label pushes, rounds, evaluation, outputs.

See common/federation/protocol.py for the phases; `run_federation` calls them in order, each a method of
`FederationRun` (docs/architecture.md lists them). The strategy (FedAvg/FedProx/FedAdam) only configures and
aggregates the training half of each round; evaluation replies are confusion-matrix counts that are summed
here, so the federated accuracy and macro-F1 are exactly those of all clients' held-out windows pooled.

Which clients train and which evaluate comes from their role (common/federation/partition.py, run config
`client-eval`): with held-out users, evaluation-only clients are never offered to the strategy's train
sampling (it sees a view of the grid with the training clients only), so they send no update and weigh
nothing in the aggregate; training-only clients are never asked to evaluate. Next to the sensor encoder's
accuracy every round also scores the text path on the same windows (interpretation -> text encoder ->
nearest label; the server sends each evaluation window's text-space embedding, the client returns counts)
and how often the two agree.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from common.base.metrics import classification_metrics, plot_curves
from common.base.paths import PROJECT_ROOT
from common.base.runtime import set_seed
from common.base.serialise import jsonable
from common.data.device_data import device_recordings
from common.data.devices import device_type_path, load_device_type
from common.data.errors import DataError
from common.data.labels import load_vocabulary
from common.data.synthetic import simulated_segment
from common.federation import protocol
from common.federation.local_dp import local_noise_std
from common.federation.mixed import parse_clients_data, real_data_sets, run_scoring_labels
from common.federation.partition import (
    EVALUATE,
    NATIVE_DEVICE,
    TRAIN,
    evaluation_plan,
    synthetic_device_types,
)
from common.federation.run_config import FederationConfig
from common.language.prompts import SensorContext
from common.models.export import export_sensor_model
from common.models.sensor_encoder import SensorEncoder
from server.breakdown import breakdown_summary, client_distribution, per_group, plot_group_accuracy
from server.checkpoint import (
    ServerState,
    load_checkpoint,
    restore_strategy_state,
    save_checkpoint,
    strategy_state,
)
from server.cloud import Cloud
from server.dp_noise import privacy_guarantee
from server.dp_poisson import poisson_cohort, releases_every_round, sampling_seed
from server.enrolment import Enrolment
from server.local_interpretation import text_table_records
from server.secagg import SecAggRound, secagg_train_round
from server.strategy import make_strategy
from server.updates import Downlink, clip_updates, decode_replies

log = logging.getLogger("fedlanhar.server")
REPLY_POLL_SECONDS = 0.5  # between pulls for replies from a deployment's SuperLink (Flower's HTTP grid: 3 s)


@dataclass
class Traffic:
    """Payload bytes per node and direction ("up" = client -> server)."""

    up: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    down: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def summary(self) -> dict[str, float]:
        nodes = set(self.up) | set(self.down)
        n = max(len(nodes), 1)
        return {
            "clients": len(nodes),
            "bytes_up_total": int(sum(self.up.values())),
            "bytes_down_total": int(sum(self.down.values())),
            "bytes_up_per_client_mean": sum(self.up.values()) / n,
            "bytes_down_per_client_mean": sum(self.down.values()) / n,
        }


class Exchange:
    """Send and receive with byte accounting and error replies separated out (a failed client is logged)."""

    def __init__(self, grid: Grid, timeout: float) -> None:
        self.grid = grid
        self.timeout = timeout
        self.traffic = Traffic()
        self.failures: list[dict] = []
        # What left the clients, per phase: "record.field" -> array shape (or value type). The privacy
        # report in metrics.json and the tests read it: no raw window may appear unless raw-prompt mode is on.
        self.uploaded: dict[str, dict[str, object]] = defaultdict(dict)
        self.refused: list[dict] = []  # clients whose preflight failed: node, partition and their reason
        self.devices: dict[int, str] = {}  # node -> its device's name, for every client that sent summaries

    def __call__(self, messages: Iterable[Message], phase: str) -> list[Message]:
        messages = list(messages)
        for message in messages:
            self.traffic.down[message.metadata.dst_node_id] += protocol.record_nbytes(message.content)
        replies = self._send_and_receive(messages)
        ok = []
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                self.failures.append({"phase": phase, "node": node, "reason": reply.error.reason})
                log.warning("%s: node %s failed: %s", phase, node, reply.error.reason)
                continue
            self.traffic.up[node] += protocol.record_nbytes(reply.content)
            self._log_upload(phase, reply.content)
            ok.append(reply)
        missing = len(messages) - len(replies)
        if missing:
            self.failures.append(
                {"phase": phase, "node": None, "reason": f"{missing} replies missing (timeout)"}
            )
            log.warning("%s: %d of %d nodes did not reply in time", phase, missing, len(messages))
        return ok

    def _send_and_receive(self, messages: list[Message]) -> list[Message]:
        """Grid.send_and_receive with a shorter wait between pulls. Flower's HTTP grid (a deployment) sleeps
        3 s, which every phase of every round pays, 1.5 s on average; a simulation's in-memory grid keeps its
        own interval. A message whose push failed is not waited for."""
        pending = {message_id for message_id in self.grid.push_messages(messages) if message_id}
        interval = getattr(self.grid, "pull_interval", REPLY_POLL_SECONDS)
        deadline = time.monotonic() + self.timeout
        replies: list[Message] = []
        while pending:
            arrived = list(self.grid.pull_messages(pending))
            replies.extend(arrived)
            pending -= {reply.metadata.reply_to_message_id for reply in arrived}
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(interval)
        return replies

    def _log_upload(self, phase: str, content: RecordDict) -> None:
        for record_key, record in content.items():
            for field_name, value in record.items():
                described = list(value.shape) if isinstance(record, ArrayRecord) else type(value).__name__
                self.uploaded[phase][f"{record_key}.{field_name}"] = described


def wait_for_nodes(grid: Grid, minimum: int, timeout: float = 300.0) -> list[int]:
    start = time.monotonic()
    while len(nodes := list(grid.get_node_ids())) < minimum:
        if time.monotonic() - start > timeout:
            raise TimeoutError(
                f"only {len(nodes)} of the required {minimum} nodes connected in {timeout:.0f} s"
            )
        time.sleep(0.5)
    return sorted(nodes)


class NodeSubset:
    """A view of the grid that offers only `nodes` to a strategy's sampling (and nothing else changes)."""

    def __init__(self, grid: Grid, nodes: list[int]) -> None:
        self._grid = grid
        self._nodes = list(nodes)

    def get_node_ids(self) -> list[int]:
        return list(self._nodes)

    def __getattr__(self, name: str):
        return getattr(self._grid, name)


def send_targets(
    cloud: Cloud,
    exchange: Exchange,
    nodes: list[int],
    config: FederationConfig,
    bank: RecordDict | None = None,
) -> dict:
    """Phases 1 and 2: collect summaries, interpret them on the server, send Z and the model architecture.

    With `bank` (label-bank records, lazy enrolment) the targets message carries the label bank as well,
    saving the separate phase-3 push.

    Training windows' summaries become the targets Z; evaluation windows' summaries become their text-path
    embeddings ("z-eval"), which the client compares with the label bank itself (no label comes back).
    """
    request = RecordDict({protocol.RUN_CONFIG: ConfigRecord(config.as_dict())})
    replies = exchange(
        [Message(request, message_type=protocol.SUMMARIES, dst_node_id=node) for node in nodes], "summaries"
    )
    model_config = protocol.model_config_record(cloud.sensor_encoder_config())
    outgoing, roles, interpreted, eval_interpreted = [], {}, 0, 0
    num_windows: dict[int, int] = {}
    for reply in taking_part(exchange, replies):
        node = reply.metadata.src_node_id
        info = reply.content[protocol.CONTEXT]
        roles[node] = str(info["role"])
        num_windows[node] = int(info["num-windows"])  # SecAgg+ scales the masked weights by the largest
        if protocol.INTERPRETATIONS in reply.content:  # interpret-on-client: only distinct texts came up
            content = text_table_records(cloud, reply.content[protocol.INTERPRETATIONS], model_config)
            outgoing.append(Message(content, message_type=protocol.TARGETS, dst_node_id=node))
            continue
        uploaded = reply.content[protocol.FEATURES]
        context = SensorContext(
            sampling_rate=float(info["sampling-rate"]),
            position=str(info["position"]),
            device=str(info["device"]),
            candidate_activities=config.all_activities,
            has_gyro=bool(info["has-gyro"]),
        )
        arrays, texts = {}, []
        for features_key, windows_key, target_key in (
            ("features", "windows", "z"),
            ("eval-features", "eval-windows", "z-eval"),
        ):
            if features_key not in uploaded:
                continue
            windows = None
            if info["raw-prompt-mode"]:
                windows = uploaded[windows_key].numpy()
                log.warning("raw-prompt-mode: node %s uploaded %d raw windows", node, len(windows))
            z, window_texts = cloud.targets_for(uploaded[features_key].numpy(), context, windows)
            arrays[target_key] = z
            if target_key == "z":
                texts, interpreted = window_texts, interpreted + len(window_texts)
            else:
                eval_interpreted += len(window_texts)
        content = RecordDict(
            {protocol.TARGET_ARRAYS: protocol.array_record(**arrays), protocol.MODEL_CONFIG: model_config}
        )
        if config.send_target_text:
            content[protocol.TARGET_TEXTS] = ConfigRecord({"texts": texts})
        for key, record in (bank or {}).items():
            content[key] = record
        roles[node] = str(info["role"])
        outgoing.append(Message(content, message_type=protocol.TARGETS, dst_node_id=node))
    stored = sorted(m.metadata.src_node_id for m in exchange(outgoing, "targets"))
    return {
        "nodes_with_targets": stored,
        "roles": {node: roles[node] for node in stored},
        "num_windows": {node: num_windows[node] for node in stored},
        "windows_interpreted": interpreted,
        "eval_windows_interpreted": eval_interpreted,
    }


def taking_part(exchange: Exchange, replies: list[Message]) -> list[Message]:
    """The summaries of the clients taking part. A refusal (the client's preflight failed) goes to
    exchange.refused and the run goes on without it; the device of each client taking part goes to
    exchange.devices (check_refusals reads both)."""
    kept = []
    for reply in replies:
        node = reply.metadata.src_node_id
        if protocol.REFUSED in reply.content:
            refusal = reply.content[protocol.REFUSED]
            exchange.refused.append({"node": node, **dict(refusal.items())})
            log.warning("node %s: %s", node, refusal["reason"])
            continue
        exchange.devices[node] = str(reply.content[protocol.CONTEXT]["device"])
        kept.append(reply)
    return kept


def push_labels(
    cloud: Cloud,
    exchange: Exchange,
    nodes: list[int],
    labels: list[str],
    new: list[str],
    version: int,
    scoring: list[str] | None = None,
):
    bank = cloud.label_bank(labels)
    content = protocol.label_bank_records(bank, new, version, scoring)
    exchange([Message(content, message_type=protocol.LABELS, dst_node_id=node) for node in nodes], "labels")
    log.info("label push v%d to %d clients: %s (new: %s)", version, len(nodes), labels, new or "none")
    return bank


def evaluate_global(
    exchange: Exchange, arrays: ArrayRecord, nodes: list[int], server_round: int, downlink: Downlink | None
):
    """Send the global model to `nodes` for scoring; the replies that came back."""
    content = RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": server_round})})
    messages = [Message(content, message_type="evaluate", dst_node_id=node) for node in nodes]
    return send_models(exchange, messages, "evaluate", downlink)


def send_models(
    exchange: Exchange, messages: list[Message], phase: str, downlink: Downlink | None
) -> tuple[list[Message], list[Message]]:
    """(messages as sent, replies): with the lean downlink each client gets only the model steps it lacks."""
    if downlink is None:
        return messages, exchange(messages, phase)
    messages = downlink.address(messages)
    replies = exchange(messages, phase)
    downlink.confirm(messages, replies)
    return messages, replies


def sample_evaluators(nodes: list[int], config: FederationConfig, server_round: int, rng) -> list[int]:
    """A `fraction-evaluate` share of the clients each round; every client in the final round."""
    last = server_round == config.num_server_rounds and config.final_round_evaluate_all
    if last or config.fraction_evaluate >= 1.0:
        return nodes
    size = max(1, int(round(len(nodes) * config.fraction_evaluate)))
    # Index the list: node ids are unsigned 64-bit and must stay Python ints (numpy would cast them).
    return [nodes[i] for i in sorted(rng.choice(len(nodes), size=size, replace=False))]


def server_update(cloud: Cloud, arrays: ArrayRecord, server_round: int) -> Message:
    """The server's own round update on its labeled source, shaped like a client's train reply."""
    model = SensorEncoder(cloud.sensor_encoder_config())
    model.load_state_dict(arrays.to_torch_state_dict())
    model.train_only(model.top_layer_names(cloud.config.client_train_layers))  # as the clients do
    history = cloud.train_round(model.to(cloud.device), server_round)
    metrics = MetricRecord(
        {
            "num-examples": len(cloud.source),
            protocol.UNIFORM_WEIGHT: 1,
            "train-loss": float(history["loss"]),
        }
    )
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    return Message(RecordDict({"arrays": protocol.model_arrays(model), "metrics": metrics}), reply_to=request)


def pooled_metrics(replies: list[Message], labels: list[str], new_labels: list[str], category_of) -> dict:
    """Sum the clients' confusion matrices and score the pooled held-out windows."""
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    new_windows = new_correct = new_top3 = unscored = 0
    for reply in replies:
        metrics = reply.content["metrics"]
        confusion += np.asarray(metrics["confusion"], dtype=np.int64).reshape(n, n)
        new_windows += int(metrics["new-windows"])
        new_correct += int(metrics["new-correct-among-new"])
        new_top3 += int(metrics["new-top3-among-new"])
        unscored += int(metrics["num-unscored"])
    result = _confusion_metrics(confusion, labels, category_of)
    result["num_windows"] = int(confusion.sum())
    result["num_unscored_windows"] = unscored
    # The text path on the same windows, and how often it and the sensor encoder name the same label.
    with_text = [
        reply.content["metrics"] for reply in replies if "text-confusion" in reply.content["metrics"]
    ]
    if with_text and len(with_text) == len(replies):
        text_confusion = sum(np.asarray(m["text-confusion"], dtype=np.int64).reshape(n, n) for m in with_text)
        text = _confusion_metrics(text_confusion, labels, category_of)
        result["text_path_accuracy"] = text["accuracy"]
        result["text_path_macro_f1"] = text["macro_f1"]
        result["text_path_category_accuracy"] = text["category_accuracy"]
        result["sensor_text_agreement"] = sum(int(m["agreement"]) for m in with_text) / max(
            int(confusion.sum()), 1
        )
        result["text_path_per_class"] = text["per_class"]
        result["text_path_confusion"] = text["confusion"]
    # The initial activities, choosing among them only: comparable with the central run of the same labels.
    initial = [label for label in labels if label not in new_labels]
    k = len(initial)
    if all("initial-confusion" in reply.content["metrics"] for reply in replies):
        initial_confusion = sum(
            (np.asarray(reply.content["metrics"]["initial-confusion"], dtype=np.int64).reshape(k, k))
            for reply in replies
        )
        scores = _confusion_metrics(np.asarray(initial_confusion), initial, category_of)
        result["initial_activities"] = {
            "labels": initial,
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            "windows": int(np.asarray(initial_confusion).sum()),
        }
    if new_labels and new_windows:
        new_rows = [labels.index(label) for label in new_labels]
        result["new_activity_windows"] = new_windows
        result["new_activity_accuracy"] = new_correct / new_windows  # choosing among the new labels only
        result["new_activity_top3"] = new_top3 / new_windows
        result["new_activity_accuracy_full_bank"] = float(
            sum(confusion[i, i] for i in new_rows) / max(confusion[new_rows].sum(), 1)
        )
    return result


def _confusion_metrics(confusion: np.ndarray, labels: list[str], category_of) -> dict:
    """classification_metrics of the windows a confusion matrix counts (rows truth, columns prediction)."""
    n = len(labels)
    truth = np.repeat(np.repeat(np.arange(n), n), confusion.ravel())
    predicted = np.repeat(np.tile(np.arange(n), n), confusion.ravel())
    names = np.array(labels)
    return classification_metrics(names[truth].tolist(), names[predicted].tolist(), labels, category_of)


class InjectedCrash(RuntimeError):
    """The server stopping abruptly after a round (run config `crash-after-round`), for resume studies."""


def preflight(config: FederationConfig) -> None:
    """Fail before any work on what can be checked up front: label names, device types, data, paths."""
    vocabulary = load_vocabulary()
    for label in config.all_activities:
        vocabulary.canonical(label)  # DataError naming the unknown label
    check_device_types(config)
    for name in {config.source, *real_data_sets(config)} - {"synthetic"}:
        if (
            not (Path(config.data_dir) / f"{name}.npz").exists()
            and not (Path(config.data_dir) / name).is_dir()
        ):
            raise FileNotFoundError(
                f"run config: data set '{name}' not found in data-dir '{config.data_dir}'"
            )
    if config.text_encoder_path and not Path(config.text_encoder_path).is_dir():
        raise FileNotFoundError(
            f"run config: text-encoder-path '{config.text_encoder_path}' is not a directory"
        )


def named_device_types(config: FederationConfig) -> list[tuple[str, str]]:
    """(run-config key, device type) for every device type the run config names, "native" (no file) aside:
    the server's synthetic source (`source-device`), the clients' (`device-types`, "synthetic:<device>"
    entries of `clients-data`)."""
    named = [("source-device", config.source_device)]
    named += [("device-types", name) for name in config.device_type_list if name != NATIVE_DEVICE]
    named += [
        ("clients-data", source.device_type) for source in parse_clients_data(config) if source.device_type
    ]
    return list(dict.fromkeys(named))


def check_device_types(config: FederationConfig) -> None:
    """Every device type the run config names loads as its clients load it (load_device_type: the same name
    or path, file and fields; a `data` file's recordings), and the simulator can produce the placement of
    each one that generates data (synthetic clients without recordings, the synthetic source). Raises
    DataError naming the key, the file, the value and what is allowed: a client would otherwise refuse only
    after the server's stage 1, and the run go on without it.
    """
    synthetic = synthetic_device_types(config)
    if NATIVE_DEVICE in synthetic:
        raise DataError(
            "run config: device type 'native' means real data as recorded; synthetic clients need a file"
        )
    generating = {*synthetic, config.source_device} if config.source == "synthetic" else set(synthetic)
    for key, name in named_device_types(config):
        try:
            device = load_device_type(name)
            if device.data:  # its own recordings: arrays, units, rate (common/data/device_data.py)
                device_recordings(device)
        except DataError as error:  # no such file, or a field of it (or of its recordings) is wrong
            raise DataError(f"run config '{key}': {error}") from error
        if name in generating and not (device.data and key != "source-device"):  # clients use recordings
            where = (
                f"run config '{key}', device type '{name}' (synthetic data): {_shown(device_type_path(name))}"
            )
            simulated_segment(device.placement, source=f"{where}: key 'placement' =")


def _shown(path: Path) -> str:
    """A project file relative to the project root (the ServerApp runs from a copy of the app elsewhere)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


class DeviceTypeRefused(RuntimeError):
    """Every client of a device type the run config names refused: the results would hold none of it."""


def refused_device_types(
    config: FederationConfig, refused: list[dict], devices_taking_part: Iterable[str]
) -> dict[str, list[str]]:
    """The named device types (named_device_types) whose every client refused: device type -> the reasons.

    A refusal names its device type as the run config does (client/client_app.py); a client that took part
    tells only its device's name (protocol.CONTEXT "device", a file's `name` field or else its file name), so
    each refused type is matched to the clients taking part by the name its file gives it.
    """
    named = {name for key, name in named_device_types(config) if key != "source-device"}
    reasons: dict[str, list[str]] = defaultdict(list)
    for refusal in refused:
        device_type = str(refusal.get("device-type", ""))
        if device_type in named:
            reasons[device_type].append(str(refusal["reason"]))
    taking_part = set(devices_taking_part)
    return {name: why for name, why in reasons.items() if load_device_type(name).name not in taking_part}


def check_refusals(config: FederationConfig, exchange: Exchange) -> None:
    """Clients refused for their data leave the run going on without them, unless every client of a device
    type the run config names refused: then the run stops, naming the device type and the clients' reasons.
    Made once every client has answered phase 1 (eager set-up; lazily enrolled ones answer when sampled)."""
    missing = refused_device_types(config, exchange.refused, exchange.devices.values())
    if missing:
        lines = [
            f"device type '{name}': all {len(reasons)} of its clients refused: "
            + "; ".join(reasons[:5])
            + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
            for name, reasons in missing.items()
        ]
        raise DeviceTypeRefused(
            "every client of a device type the run config names refused at its preflight "
            "(common/federation/preflight.py), so the results would hold none of it: " + " | ".join(lines)
        )


def run_federation(grid: Grid, config: FederationConfig, out_dir: Path) -> dict:
    """The protocol (common/federation/protocol.py) phase by phase; returns what it writes to metrics.json."""
    run = FederationRun(grid, config, out_dir)
    run.set_up()  # the server's stage 1 and pre-training, then phases 1-2 with every client (or lazily)
    run.push_label_bank()  # phase 3
    run.evaluate_pretrained()  # "round 0", not after a resume
    for server_round in range(run.first_round, config.num_server_rounds + 1):
        started = time.monotonic()
        run.add_new_activities(server_round)  # phase 3 again, in the round the new activities arrive
        trained = run.train_round(server_round)  # phase 4: train
        evaluated = run.evaluate_round(server_round)  # phase 4: evaluate
        run.record_round(server_round, started, trained, evaluated)
    return run.finish()


@dataclass
class TrainedRound:
    """What a round's training half did, as its record reports it."""

    clients_sampled: int
    clients_trained: int
    server_trained: bool
    bytes_down: int
    bytes_up: int
    updates_clipped: int
    traffic_before: dict[str, float]  # the exchange's traffic summary when the round's training began
    secure: SecAggRound | None  # the SecAgg+ round (secagg on)
    # Set by train_round once the replies are aggregated (or not: too few, or SecAgg+ refused the round).
    aggregated: bool = False
    update_norm: float = 0.0
    train_loss: float = float("nan")


@dataclass
class EvaluatedRound:
    """A round's evaluation: the messages sent, the replies, their pooled scores and per-group scores."""

    messages: list[Message]
    replies: list[Message]
    metrics: dict
    groups: dict[str, dict]


class FederationRun:
    """One federated run's state across the protocol's phases (run_federation calls them in order).

    Set-up fills it: the cloud (server/cloud.py) and the sensor encoder, the exchange with the clients, their
    roles, the strategy; then the global model, label set and sampling RNG, fresh or from the checkpoint.
    """

    # set_up_server
    resumed: ServerState | None  # the checkpoint resumed from (run config `resume`)
    cloud: Cloud
    model: SensorEncoder
    stage1: dict
    pretrain: dict
    # set_up_clients
    exchange: Exchange
    nodes: list[int]  # every connected node; eagerly, those that stored their targets
    roles: dict[int, str]  # node -> TRAIN, EVALUATE or both (lazily: the clients enrolled so far)
    strategy: Strategy
    # start_or_resume, then the rounds
    arrays: ArrayRecord  # the global model
    labels: list[str]
    new_labels: list[str]
    bank_version: int
    scoring: list[str]  # the labels clients score among (run_scoring_labels)
    rng: np.random.Generator  # samples the evaluating clients (and lazily or by Poisson, the training ones)
    rounds: list[dict]  # each round's record, as rounds.json holds them
    first_round: int
    downlink: Downlink | None  # lean downlink (update-compression)

    def __init__(self, grid: Grid, config: FederationConfig, out_dir: Path) -> None:
        self.grid, self.config, self.out_dir = grid, config, out_dir
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}  # "setup" (the server's), "client_setup" (up to round 1)
        self.enrolment: Enrolment | None = None  # lazy enrolment only
        self.targets_info: dict = {}  # send_targets' report, eager set-up only
        self.train_grid: NodeSubset | None = None  # the training clients, eager set-up only
        self.train_nodes: list[int] = []
        self.eval_nodes: list[int] = []
        self.train_size = self.eval_size = 0  # lazy enrolment: clients sampled per round
        self.nodes_trained: set[int] = set()
        self.pretrained: dict | None = None  # round 0's scores

    # --- set-up -------------------------------------------------------------------------------------

    def set_up(self) -> None:
        """Set-up: the server's side, then the clients', then the run's starting (or resumed) state."""
        self.set_up_server()
        self.set_up_clients()
        self.start_or_resume()

    def set_up_server(self) -> None:
        """Check the config; stage 1 (text space) and the sensor encoder's pre-training, or a checkpoint."""
        config, out_dir = self.config, self.out_dir
        preflight(config)
        set_seed(config.seed)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.resumed = load_checkpoint(out_dir) if config.resume else None
        self.cloud = Cloud(
            config, out_dir, text_encoder_dir=out_dir / "text_encoder" if self.resumed else None
        )
        if self.resumed:
            log.info("resuming after round %d from %s", self.resumed.completed_round, out_dir / "checkpoint")
            self.stage1, self.pretrain = {"loaded-from": str(out_dir / "text_encoder")}, {}
            self.model = SensorEncoder(self.cloud.sensor_encoder_config())
        else:
            if not self.cloud.stage1_done:
                log.info(
                    "stage 1: text encoder on %d source windows (%s)", len(self.cloud.source), config.source
                )
            self.stage1 = self.cloud.train_text_space()
            self.model, self.pretrain = self.cloud.pretrain_sensor_encoder()
        self.seconds["setup"] = time.monotonic() - self.started

    def set_up_clients(self) -> None:
        """Phases 1-2 (summaries -> targets) with every connected client, or lazy enrolment; the strategy."""
        config = self.config
        self.exchange = Exchange(self.grid, config.round_timeout)
        self.nodes = wait_for_nodes(self.grid, config.min_available_nodes)
        if config.lazy_enrolment:  # clients are set up when first sampled (server/enrolment.py)
            self.enrolment = Enrolment(
                self.nodes,
                setup=lambda fresh, bank: send_targets(
                    self.cloud,
                    self.exchange,
                    fresh,
                    config,
                    protocol.label_bank_records(self.cloud.label_bank(bank[0]), *bank[1:]),
                ),
                push=lambda fresh, labels, new, version, scoring: push_labels(
                    self.cloud, self.exchange, fresh, labels, new, version=version, scoring=scoring
                ),
            )
            self.roles = self.enrolment.roles
            self.train_size = self.enrolment.sample_size(config.fraction_train, config.min_train_nodes)
            self.eval_size = self.enrolment.sample_size(config.fraction_evaluate)
            # The enrolment samples; the strategy takes every client it is offered.
            self.strategy = make_strategy(
                dataclasses.replace(config, fraction_train=1.0, min_train_nodes=1, min_available_nodes=1),
                self.train_size,
            )
            return
        self.targets_info = send_targets(self.cloud, self.exchange, self.nodes, config)
        check_refusals(config, self.exchange)  # every client of a named device type refused: stop here
        self.nodes, self.roles = self.targets_info["nodes_with_targets"], self.targets_info["roles"]
        self.train_nodes = [node for node in self.nodes if self.roles[node] != EVALUATE]
        self.eval_nodes = [node for node in self.nodes if self.roles[node] != TRAIN]
        if not self.train_nodes or not self.eval_nodes:
            raise RuntimeError(
                f"{len(self.train_nodes)} training and {len(self.eval_nodes)} evaluating clients replied: "
                "need at least one of each (see client-eval in common/federation/run_config.py)"
            )
        log.info(
            "%d clients train, %d evaluate (client-eval %s)",
            len(self.train_nodes),
            len(self.eval_nodes),
            config.client_eval,
        )
        self.strategy = make_strategy(config, len(self.train_nodes))
        # Evaluation-only clients are never sampled for training.
        self.train_grid = NodeSubset(self.grid, self.train_nodes)

    def start_or_resume(self) -> None:
        """The global model, label set, sampling RNG and rounds so far: fresh, or from the checkpoint."""
        config, resumed = self.config, self.resumed
        if resumed:
            self.arrays = ArrayRecord({k: Array(v) for k, v in resumed.arrays.items()})
            self.labels, self.new_labels = resumed.labels, resumed.new_labels
            self.bank_version = resumed.bank_version
            self.rng = np.random.default_rng()
            self.rng.bit_generator.state = resumed.rng_state
            restore_strategy_state(self.strategy, resumed.strategy_state)
            self.rounds, self.exchange.failures = resumed.rounds, resumed.failures
            self.first_round = resumed.completed_round + 1
        else:
            self.arrays = protocol.model_arrays(self.model)
            self.labels, self.new_labels, self.bank_version = config.activity_list, [], 1
            self.rng = np.random.default_rng(sampling_seed(config))  # the seed, or OS entropy (dp_poisson)
            self.rounds, self.first_round = [], 1
        self.scoring = run_scoring_labels(config, self.labels)
        # Lean downlink (server/updates.py); after a resume every client first gets the whole model again.
        self.downlink = None
        if config.update_compression != "none":
            trained = self.model.top_layer_names(config.client_train_layers)
            self.downlink = Downlink(config, self.arrays, self.first_round - 1, trained)

    # --- label push ---------------------------------------------------------------------------------

    def push_label_bank(self) -> None:
        """Phase 3: the current label bank to the clients set up (lazily: also to each one enrolled later)."""
        if self.enrolment:
            self.enrolment.set_labels(self.labels, self.new_labels, self.bank_version, self.scoring)
        else:
            push_labels(
                self.cloud,
                self.exchange,
                self.nodes,
                self.labels,
                self.new_labels,
                version=self.bank_version,
                scoring=self.scoring,
            )

    def add_new_activities(self, server_round: int) -> None:
        """In round new-activities-round, the label set grows by the new activities and is pushed again."""
        config = self.config
        if config.new_activity_list and server_round == config.new_activities_round:
            self.labels, self.new_labels = config.all_activities, config.new_activity_list
            self.bank_version = 2
            self.scoring = run_scoring_labels(config, self.labels)
            self.push_label_bank()

    # --- rounds -------------------------------------------------------------------------------------

    def evaluate_pretrained(self) -> None:
        """Round 0: the server-pretrained model (source only) on the same evaluation windows as the rounds."""
        if not self.resumed:
            enrolment = self.enrolment
            round0 = enrolment.sample(self.rng, self.eval_size, EVALUATE) if enrolment else self.eval_nodes
            _, replies = evaluate_global(self.exchange, self.arrays, round0, 0, self.downlink)
            if replies:
                pretrained = pooled_metrics(
                    replies, self.scoring, self.new_labels, self.cloud.vocabulary.category
                )
                pretrained["clients_evaluated"] = len(replies)
                log.info(
                    "round 0 (server pre-training only): accuracy %.3f | text path %.3f, agreement %.3f",
                    pretrained["accuracy"],
                    pretrained.get("text_path_accuracy", float("nan")),
                    pretrained.get("sensor_text_agreement", float("nan")),
                )
                self.pretrained = pretrained
        # The clients' set-up: summaries, targets, label push, round 0.
        self.seconds["client_setup"] = time.monotonic() - self.started - self.seconds["setup"]

    def train_round(self, server_round: int) -> TrainedRound:
        """Phase 4, train: sample, send the global model, aggregate the replies into the next global model."""
        traffic_before = self.exchange.traffic.summary()
        # SecAgg+ (server/secagg.py): the server sees only masked updates and their sum.
        if self.config.secagg:
            trained, aggregated, train_metrics = self._train_securely(server_round, traffic_before)
        else:
            trained, aggregated, train_metrics = self._train_in_clear(server_round, traffic_before)
        if aggregated is not None and self.downlink:  # the global model moves by one compressed step
            aggregated = self.downlink.advance(aggregated, server_round)
        trained.update_norm = _update_norm(self.arrays, aggregated) if aggregated is not None else 0.0
        if aggregated is not None:
            self.arrays = aggregated
        trained.aggregated = aggregated is not None
        trained.train_loss = float(train_metrics["train-loss"]) if train_metrics else float("nan")
        return trained

    def _train_securely(
        self, server_round: int, traffic_before: dict[str, float]
    ) -> tuple[TrainedRound, ArrayRecord | None, MetricRecord | None]:
        """The four SecAgg+ stages with the strategy's sample; (what it did, the aggregate, its metrics)."""
        config, cloud, arrays = self.config, self.cloud, self.arrays
        round_grid = self._round_grid(server_round)  # key agreement runs over the clients sampled
        weights = self.enrolment.num_windows if self.enrolment else self.targets_info["num_windows"]
        secure = secagg_train_round(
            self.exchange,
            self.strategy,
            server_round,
            arrays,
            round_grid,
            config,
            weights,
            partial(server_update, cloud, arrays, server_round) if config.server_train_epochs else None,
            trained=self.model.top_layer_names(config.client_train_layers),
        )
        self.nodes_trained.update(secure.survivors)
        enough = secure.refused is None
        traffic_now = self.exchange.traffic.summary()
        trained = TrainedRound(
            clients_sampled=len(secure.sampled),
            clients_trained=len(secure.survivors),
            server_trained=bool(enough and config.server_train_epochs > 0),
            bytes_down=traffic_now["bytes_down_total"] - traffic_before["bytes_down_total"],
            bytes_up=traffic_now["bytes_up_total"] - traffic_before["bytes_up_total"],
            updates_clipped=0,
            traffic_before=traffic_before,
            secure=secure,
        )
        return trained, secure.aggregated, secure.metrics

    def _train_in_clear(
        self, server_round: int, traffic_before: dict[str, float]
    ) -> tuple[TrainedRound, ArrayRecord | None, MetricRecord | None]:
        """A plain round: the models out, the updates back (decoded, clipped), aggregated by the strategy
        when enough replied; (what it did, the aggregate or None, its metrics)."""
        config, arrays = self.config, self.arrays
        round_grid = self._round_grid(server_round)
        train_messages = (
            list(self.strategy.configure_train(server_round, arrays, ConfigRecord(), round_grid))
            if round_grid
            else []
        )
        train_messages, train_replies = send_models(self.exchange, train_messages, "train", self.downlink)
        bytes_down = sum(protocol.record_nbytes(m.content) for m in train_messages)
        bytes_up = sum(protocol.record_nbytes(r.content) for r in train_replies)
        decode_replies(train_replies, arrays)  # lean updates back to float32 weights
        clipping = clip_updates(train_replies, arrays, config.update_clip_factor)
        self.nodes_trained.update(reply.metadata.src_node_id for reply in train_replies)
        enough = len(train_replies) >= config.min_replies_fraction * len(train_messages)
        enough = enough or releases_every_round(config)  # refusing would reveal the cohort (dp_poisson)
        aggregated, train_metrics = None, None
        if enough:
            participants = train_replies
            if config.server_train_epochs > 0:
                participants = [*train_replies, server_update(self.cloud, arrays, server_round)]
            aggregated, train_metrics = self.strategy.aggregate_train(server_round, participants)
        else:
            log.warning(
                "round %d: only %d of %d clients replied (< min-replies-fraction %.2f): global model kept",
                server_round,
                len(train_replies),
                len(train_messages),
                config.min_replies_fraction,
            )
        trained = TrainedRound(
            clients_sampled=len(train_messages),
            clients_trained=len(train_replies),
            server_trained=bool(enough and config.server_train_epochs > 0),
            bytes_down=bytes_down,
            bytes_up=bytes_up,
            updates_clipped=clipping["clipped"],
            traffic_before=traffic_before,
            secure=None,
        )
        return trained, aggregated, train_metrics

    def _round_grid(self, server_round: int) -> NodeSubset | None:
        """The clients the strategy may sample this round: those lazy enrolment drew and enrolled, the
        Poisson cohort, or every training client (fixed sampling); None when there is nobody."""
        if self.enrolment:
            trainers = self.enrolment.sample(self.rng, self.train_size, TRAIN)
            return NodeSubset(self.grid, trainers) if trainers else None
        if self.config.client_sampling == "poisson":
            return self._poisson_round_grid(server_round)
        return self.train_grid

    def _poisson_round_grid(self, server_round: int) -> NodeSubset | None:
        """This round's Poisson cohort of the training clients (server/dp_poisson.py) as the strategy's grid;
        None when nobody was drawn and no model is released."""
        config = self.config
        cohort = poisson_cohort(self.train_nodes, config.sampling_probability, self.rng)
        log.info(
            "round %d: Poisson draw of %d of %d training clients (q = %.3g)",
            server_round,
            len(cohort),
            len(self.train_nodes),
            config.sampling_probability,
        )
        if cohort:
            return NodeSubset(self.grid, cohort)
        if releases_every_round(config):  # even now: an unchanged model would reveal the empty draw
            log.warning(
                "round %d: nobody drawn: no training, the release is the DP noise alone", server_round
            )
            return NodeSubset(self.grid, [])
        log.warning("round %d: nobody drawn: no training, global model kept", server_round)
        return None

    def evaluate_round(self, server_round: int) -> EvaluatedRound:
        """Phase 4, evaluate: the new global model to a sample of the evaluating clients; pooled scores."""
        if self.enrolment:
            evaluators = self.enrolment.sample(self.rng, self.eval_size, EVALUATE)
        else:
            evaluators = sample_evaluators(self.eval_nodes, self.config, server_round, self.rng)
        messages, replies = evaluate_global(
            self.exchange, self.arrays, evaluators, server_round, self.downlink
        )
        category = self.cloud.vocabulary.category
        if replies:
            metrics = pooled_metrics(replies, self.scoring, self.new_labels, category)
        else:  # no evaluating client replied (all sampled ones failed): the round is not scored
            log.warning("round %d: no evaluation replies", server_round)
            nan = float("nan")
            metrics = {"accuracy": nan, "macro_f1": nan, "category_accuracy": nan, "num_windows": 0}
        groups = per_group(
            replies,
            functools.partial(
                pooled_metrics, labels=self.scoring, new_labels=self.new_labels, category_of=category
            ),
        )
        return EvaluatedRound(messages, replies, metrics, groups)

    def record_round(
        self, server_round: int, started: float, trained: TrainedRound, evaluated: EvaluatedRound
    ) -> None:
        """The round's record: logged, appended to rounds.json, checkpointed (and the injected crash)."""
        config, exchange, metrics = self.config, self.exchange, evaluated.metrics
        eval_messages, traffic = evaluated.messages, exchange.traffic.summary()
        record = {
            "round": server_round,
            "labels": list(self.labels),
            "clients_trained": trained.clients_trained,
            "server_trained": trained.server_trained,
            "clients_sampled": trained.clients_sampled,
            "clients_evaluated": len(evaluated.replies),
            "aggregated": trained.aggregated,
            "update_norm": trained.update_norm,
            "train_loss": trained.train_loss,
            "train_bytes_down_per_client": trained.bytes_down / max(trained.clients_sampled, 1),
            "train_bytes_up_per_client": trained.bytes_up / max(trained.clients_trained, 1),
            "eval_bytes_down_per_client": sum(protocol.record_nbytes(m.content) for m in eval_messages)
            / max(len(eval_messages), 1),
            "updates_clipped": trained.updates_clipped,
            "per_group": evaluated.groups,
            "client_accuracy": client_distribution(evaluated.replies),
            "seconds": time.monotonic() - started,
            "bytes_up": traffic["bytes_up_total"] - trained.traffic_before["bytes_up_total"],
            "bytes_down": traffic["bytes_down_total"] - trained.traffic_before["bytes_down_total"],
            **{k: v for k, v in metrics.items() if k not in ("confusion", "text_path_confusion")},
            "confusion": metrics.get("confusion"),
            "text_path_confusion": metrics.get("text_path_confusion"),
        }
        secure = trained.secure
        if secure is not None:
            record["secagg"] = secure.summary()
            if secure.refused is not None:
                exchange.failures.append({"phase": "secagg", "node": None, "reason": secure.refused})
        spent = getattr(self.strategy, "privacy_spent", lambda: None)()
        if spent is not None:
            record["dp_epsilon"], record["dp_delta"] = float(spent.epsilon), float(spent.delta)
        without_amplification = getattr(self.strategy, "epsilon_without_amplification", None)  # Poisson
        if without_amplification is not None:
            record["dp_epsilon_without_amplification"] = float(without_amplification())
        self.rounds.append(record)
        log.info(round_summary(record))
        _write_json(self.out_dir / "rounds.json", self.rounds)
        if config.checkpoint:
            self.save_checkpoint(server_round)
        if server_round == config.crash_after_round:
            raise InjectedCrash(f"crash-after-round {server_round}: stopping abruptly (checkpoint written)")

    def save_checkpoint(self, completed_round: int) -> None:
        save_checkpoint(
            self.out_dir,
            ServerState(
                completed_round=completed_round,
                arrays={k: v.numpy() for k, v in self.arrays.items()},
                labels=list(self.labels),
                new_labels=list(self.new_labels),
                bank_version=self.bank_version,
                rng_state=self.rng.bit_generator.state,
                rounds=self.rounds,
                failures=self.exchange.failures,
                strategy_state=strategy_state(self.strategy),
            ),
        )

    # --- finish -------------------------------------------------------------------------------------

    def finish(self) -> dict:
        """Export the final model with the label bank, write metrics.json and the plots; the metrics."""
        config, out_dir, rounds = self.config, self.out_dir, self.rounds
        self.model.load_state_dict(self.arrays.to_torch_state_dict())
        final_bank = self.cloud.label_bank(self.labels)
        export = export_sensor_model(self.model, final_bank, out_dir)
        result = self.result(export)
        _write_json(out_dir / "metrics.json", result)
        new_labels_round = config.new_activities_round if config.new_activity_list else None
        plot_curves(
            {key: [r.get(key) for r in rounds] for key in ("accuracy", "macro_f1", "new_activity_accuracy")},
            out_dir / "metrics_over_rounds.png",
            xlabel="round",
            new_labels_round=new_labels_round,
        )
        plot_group_accuracy(rounds, out_dir / "accuracy_per_device.png", new_labels_round=new_labels_round)
        log.info(
            "FedLanHAR finished: accuracy %.3f, macro-F1 %.3f; outputs in %s",
            result["accuracy"],
            result["macro_f1"],
            out_dir,
        )
        return result

    def result(self, export: dict) -> dict:
        """metrics.json: the final round's scores, how the run was evaluated, traffic, privacy, set-up."""
        config, exchange, roles, rounds = self.config, self.exchange, self.roles, self.rounds
        if self.enrolment:  # the clients that took part: what the result describes
            nodes = sorted(roles)
            interpreted = self.enrolment.windows_interpreted, self.enrolment.eval_windows_interpreted
        else:
            nodes = self.nodes
            interpreted = (
                self.targets_info["windows_interpreted"],
                self.targets_info["eval_windows_interpreted"],
            )
        final = rounds[-1]
        return {
            "accuracy": final["accuracy"],
            "macro_f1": final["macro_f1"],
            "category_accuracy": final["category_accuracy"],
            **{key: final.get(key) for key in FINAL_ROUND_KEYS},
            "evaluation": {
                "client_eval": config.client_eval,
                "data_sets": evaluation_plan(config),  # per client data set: the split, the held-out users
                "labels": final["labels"],
                "windows": final["num_windows"],
                "train_clients": sum(1 for node in nodes if roles[node] != EVALUATE),
                "eval_clients": sum(1 for node in nodes if roles[node] != TRAIN),
                "roles": {str(node): roles[node] for node in nodes},
                # Evaluation-only clients that sent an update (never: they are not offered to sampling).
                "eval_only_clients_that_trained": sorted(
                    str(node) for node in self.nodes_trained if roles[node] == EVALUATE
                ),
            },
            "seed": config.seed,
            "config": config.as_dict(),
            "resumed_after_round": self.resumed.completed_round if self.resumed else None,
            "rounds": rounds,
            "traffic": exchange.traffic.summary(),
            "traffic_per_client": {
                str(node): {"up": exchange.traffic.up[node], "down": exchange.traffic.down[node]}
                for node in nodes
            },
            "failures": exchange.failures,
            "refused_clients": exchange.refused,
            # Per device type / data set, and over clients, in the final round (every client evaluates then).
            "per_group": final.get("per_group"),
            "client_accuracy": final.get("client_accuracy"),
            "scoring_labels": self.scoring,
            "update_bytes": update_bytes_report(config, rounds, self.arrays, self.downlink),
            "uploaded_fields": {phase: dict(fields) for phase, fields in exchange.uploaded.items()},
            "privacy": privacy_report(config, exchange, rounds),
            "targets": {
                "windows_interpreted": interpreted[0],
                "eval_windows_interpreted": interpreted[1],
                "clients": len(nodes),
            },
            "stage1": jsonable(self.stage1),
            "server_pretrain": jsonable(self.pretrain),
            # The server-pretrained model scored before round 1 (None on resume), as the rounds are.
            "server_pretrain_evaluation": self.pretrained,
            "export": export,
            "seconds": {**self.seconds, "total": time.monotonic() - self.started},
        }


# The final round's scores metrics.json repeats at its top (None when the run did not compute them).
FINAL_ROUND_KEYS = (
    "initial_activities",
    "new_activity_accuracy",
    "new_activity_top3",
    "new_activity_accuracy_full_bank",
    "text_path_accuracy",
    "text_path_macro_f1",
    "sensor_text_agreement",
    "confusion",
    "text_path_confusion",
    "per_class",
)


def update_bytes_report(
    config: FederationConfig, rounds: list[dict], arrays: ArrayRecord, downlink: Downlink | None
) -> dict:
    """Bytes per training client per round, both ways, next to what float32 weights would take; with the lean
    downlink also how the models went down: whole (a client's first copy), as steps, or already current."""
    ups = [r["train_bytes_up_per_client"] for r in rounds if r.get("clients_trained")]
    downs = [r["train_bytes_down_per_client"] for r in rounds if r.get("clients_sampled")]
    eval_downs = [r["eval_bytes_down_per_client"] for r in rounds if r.get("clients_evaluated")]
    dense = int(sum(array.numpy().astype(np.float32).nbytes for array in arrays.values()))
    up = float(np.mean(ups)) if ups else float("nan")
    down = float(np.mean(downs)) if downs else float("nan")
    return {
        "compression": config.update_compression,
        "topk_fraction": config.update_topk_fraction if config.update_compression == "sparse-int8" else None,
        "up_per_client_per_round": up,
        "down_per_client_per_round": down,
        "float32_model_bytes": dense,
        "up_reduction_vs_float32": dense / up if up else None,
        "down_reduction_vs_float32": dense / down if down else None,
        "eval_down_per_client_per_round": float(np.mean(eval_downs)) if eval_downs else float("nan"),
        # train and evaluate messages together, rounds 0..N: "whole", "steps", "current" -> count, mean bytes
        "downlink_messages": downlink.summary() if downlink else None,
    }


def secagg_keys_signed(rounds: list[dict]) -> bool:
    """Whether every client of every secure round that reached setup signed its keys (docs/privacy.md)."""
    signed = [
        r["secagg"]["keys_signed"] for r in rounds if (r.get("secagg") or {}).get("keys_signed") is not None
    ]
    return bool(signed) and all(signed)


def privacy_report(config: FederationConfig, exchange: Exchange, rounds: list[dict]) -> dict:
    """What left the clients, and under which protection: the record researchers cite."""
    report = {
        "raw_windows_uploaded": config.raw_prompt_mode,
        "summary_noise_relative_std": config.summary_noise,
        "dp_mode": config.dp_mode,
        "client_sampling": config.client_sampling,  # "fixed" or "poisson" (sampling-probability)
        "uploaded_fields": {phase: sorted(fields) for phase, fields in exchange.uploaded.items()},
        "bytes_up_per_client_mean": exchange.traffic.summary()["bytes_up_per_client_mean"],
        # Which protections were on, and what the server could see of a client's update and windows.
        "protections": {
            "secagg": config.secagg,
            "dp": config.dp_mode,
            "summary_noise": config.summary_noise > 0,
            "local_interpretation": config.interpret_on_client,
        },
        "server_sees_individual_updates": not config.secagg,
        # A per-window upload: any array whose first axis counts this client's windows (summaries, windows).
        "per_window_arrays_uploaded": sorted(
            f"{phase}:{name}"
            for phase, fields in exchange.uploaded.items()
            for name, shape in fields.items()
            if phase == "summaries" and isinstance(shape, list)
        ),
        "epsilon_spent": rounds[-1].get("dp_epsilon") if rounds else None,
        # `delta` is the target; this is the delta the guarantee holds with (server/dp_poisson.py raises it
        # for SecAgg+ draws too small to serve).
        "delta_spent": rounds[-1].get("dp_delta") if rounds else None,
    }
    if config.secagg:
        report["secagg"] = {
            "num_shares": config.secagg_num_shares,
            "reconstruction_threshold": config.secagg_reconstruction_threshold,
            "clipping_range": config.secagg_clipping_range,
            "quantization_range": config.secagg_quantization_range,
            "rounds_refused": sum(1 for r in rounds if (r.get("secagg") or {}).get("refused")),
            # True: every client signed its round keys (it holds a roster out of band and refuses keys the
            # roster does not vouch for): the malicious-server model. False: the honest-but-curious model.
            "keys_signed": secagg_keys_signed(rounds),
        }
        report["secagg"]["threat_model"] = (
            "malicious-server" if report["secagg"]["keys_signed"] else "honest-but-curious-server"
        )
    if config.dp_mode != "none":
        report.update(clipping_norm=config.dp_clipping_norm, delta=config.dp_delta)
    if config.dp_mode == "central":
        report["noise_multiplier"] = config.dp_noise_multiplier
        report["dp_reproducible_noise"] = config.dp_reproducible_noise
        report.update(privacy_guarantee(config))  # false when the noise came from the public run seed
        report.update(dp_accounting_report(config, rounds))
    if config.dp_mode == "local":
        report["local_epsilon_per_round"] = config.dp_epsilon
        # Each release is (epsilon, delta)-DP for any two local data sets: sensitivity 2 C, analytic scale.
        std = local_noise_std(config.dp_epsilon, config.dp_delta, config.dp_clipping_norm)
        report["local_noise_std"] = std
    return report


def dp_accounting_report(config: FederationConfig, rounds: list[dict]) -> dict:
    """Central DP's accounting: the sampling it assumed, epsilon after each round and, with Poisson sampling,
    what the same rounds would cost without its amplification (server/dp_poisson.py)."""
    poisson = config.client_sampling == "poisson"
    report = {
        "accounting": {
            "accountant": "rdp",
            "sampling_method": "poisson" if poisson else "no-amplification",
            "neighboring_relation": "add-or-remove-one",
            "sampling_probability": config.sampling_probability if poisson else None,
        },
        "epsilon_per_round": [r.get("dp_epsilon") for r in rounds],  # cumulative, after each round
    }
    if poisson:
        report["epsilon_without_amplification"] = (
            rounds[-1].get("dp_epsilon_without_amplification") if rounds else None
        )
    return report


def _update_norm(before: ArrayRecord, after: ArrayRecord) -> float:
    """L2 norm of the change of the global model in one round (what DP clipping and noise act on)."""
    total = 0.0
    for key, array in after.items():
        delta = array.numpy().astype(np.float64) - before[key].numpy().astype(np.float64)
        total += float(np.sum(delta * delta))
    return total**0.5


def round_summary(record: dict) -> str:
    line = (
        f"round {record['round']}: {record['clients_trained']} clients trained, "
        f"loss {record['train_loss']:.3f} | "
        f"accuracy {record['accuracy']:.3f}  macro-F1 {record['macro_f1']:.3f}  "
        f"category {record['category_accuracy']:.3f}"
    )
    if record.get("new_activity_accuracy") is not None:
        initial = record.get("initial_activities")
        if initial is not None:
            line += f"  initial {len(initial['labels'])} labels {initial['accuracy']:.3f}"
        line += f"  new-activity {record['new_activity_accuracy']:.3f}"
    if record.get("text_path_accuracy") is not None:
        line += (
            f" | text path {record['text_path_accuracy']:.3f}, "
            f"agreement {record['sensor_text_agreement']:.3f}"
        )
    line += breakdown_summary(record)
    return line + f" | {len(record['labels'])} labels, {record['seconds']:.1f} s"


def _write_json(path: Path, payload) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jsonable(payload), indent=2))
    tmp.replace(path)  # atomic: a crash never leaves a half-written metrics file
