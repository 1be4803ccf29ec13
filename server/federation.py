"""The federated LanHAR protocol, run by the ServerApp: targets, label pushes, rounds, evaluation, outputs.

See common/protocol.py for the phases. The strategy (FedAvg/FedProx/FedAdam) only configures and aggregates
the training half of each round; evaluation replies are confusion-matrix counts that are summed here, so the
federated accuracy and macro-F1 are exactly those of all clients' held-out windows pooled.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from common import protocol
from common.export import export_sensor_model
from common.metrics import classification_metrics, plot_curves
from common.prompts import SensorContext
from common.run_config import FederationConfig
from server.cloud import Cloud
from server.strategy import make_strategy

log = logging.getLogger("fedlanhar.server")


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
    """send_and_receive with byte accounting and error replies separated out (a failed client is logged)."""

    def __init__(self, grid: Grid, timeout: float) -> None:
        self.grid = grid
        self.timeout = timeout
        self.traffic = Traffic()
        self.failures: list[dict] = []
        # What left the clients, per phase: "record.field" -> array shape (or value type). The privacy
        # report in metrics.json and the tests read it: no raw window may appear unless raw-prompt mode is on.
        self.uploaded: dict[str, dict[str, object]] = defaultdict(dict)

    def __call__(self, messages: Iterable[Message], phase: str) -> list[Message]:
        messages = list(messages)
        for message in messages:
            self.traffic.down[message.metadata.dst_node_id] += protocol.record_nbytes(message.content)
        replies = list(self.grid.send_and_receive(messages, timeout=self.timeout))
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


def send_targets(cloud: Cloud, exchange: Exchange, nodes: list[int], config: FederationConfig) -> dict:
    """Phases 1 and 2: collect summaries, interpret them on the server, send Z and the model architecture."""
    request = RecordDict({protocol.RUN_CONFIG: ConfigRecord(config.as_dict())})
    replies = exchange(
        [Message(request, message_type=protocol.SUMMARIES, dst_node_id=node) for node in nodes], "summaries"
    )
    model_config = protocol.model_config_record(cloud.sensor_encoder_config())
    outgoing, interpreted = [], 0
    for reply in replies:
        info = reply.content[protocol.CONTEXT]
        features = reply.content[protocol.FEATURES]["features"].numpy()
        windows = None
        if info["raw-prompt-mode"]:
            windows = reply.content[protocol.FEATURES]["windows"].numpy()
            log.warning(
                "raw-prompt-mode: node %s uploaded %d raw windows", reply.metadata.src_node_id, len(windows)
            )
        context = SensorContext(
            sampling_rate=float(info["sampling-rate"]),
            position=str(info["position"]),
            device=str(info["device"]),
            candidate_activities=config.all_activities,
            has_gyro=bool(info["has-gyro"]),
        )
        targets, texts = cloud.targets_for(features, context, windows)
        interpreted += len(texts)
        content = RecordDict(
            {protocol.TARGET_ARRAYS: protocol.array_record(z=targets), protocol.MODEL_CONFIG: model_config}
        )
        if config.send_target_text:
            content[protocol.TARGET_TEXTS] = ConfigRecord({"texts": texts})
        outgoing.append(
            Message(content, message_type=protocol.TARGETS, dst_node_id=reply.metadata.src_node_id)
        )
    stored = exchange(outgoing, "targets")
    return {
        "nodes_with_targets": sorted(m.metadata.src_node_id for m in stored),
        "windows_interpreted": interpreted,
    }


def push_labels(
    cloud: Cloud, exchange: Exchange, nodes: list[int], labels: list[str], new: list[str], version: int
):
    bank = cloud.label_bank(labels)
    content = protocol.label_bank_records(bank, new, version)
    exchange([Message(content, message_type=protocol.LABELS, dst_node_id=node) for node in nodes], "labels")
    log.info("label push v%d to %d clients: %s (new: %s)", version, len(nodes), labels, new or "none")
    return bank


def sample_evaluators(nodes: list[int], config: FederationConfig, server_round: int, rng) -> list[int]:
    """A `fraction-evaluate` share of the clients each round; every client in the final round."""
    if server_round == config.num_server_rounds or config.fraction_evaluate >= 1.0:
        return nodes
    size = max(1, int(round(len(nodes) * config.fraction_evaluate)))
    return sorted(rng.choice(nodes, size=size, replace=False).tolist())


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
    truth = np.repeat(np.repeat(np.arange(n), n), confusion.ravel())
    predicted = np.repeat(np.tile(np.arange(n), n), confusion.ravel())
    names = np.array(labels)
    result = classification_metrics(names[truth].tolist(), names[predicted].tolist(), labels, category_of)
    result["num_windows"] = int(confusion.sum())
    result["num_unscored_windows"] = unscored
    if new_labels and new_windows:
        new_rows = [labels.index(label) for label in new_labels]
        result["new_activity_accuracy"] = new_correct / new_windows  # choosing among the new labels only
        result["new_activity_top3"] = new_top3 / new_windows
        result["new_activity_accuracy_full_bank"] = float(
            sum(confusion[i, i] for i in new_rows) / max(confusion[new_rows].sum(), 1)
        )
    return result


def run_federation(grid: Grid, config: FederationConfig, out_dir: Path) -> dict:
    t_start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    cloud = Cloud(config, out_dir)
    log.info("stage 1: text encoder on %d source windows (%s)", len(cloud.source), config.source)
    stage1 = cloud.train_text_space()
    model, pretrain = cloud.pretrain_sensor_encoder()
    t_setup = time.monotonic() - t_start

    exchange = Exchange(grid, config.round_timeout)
    nodes = wait_for_nodes(grid, config.min_available_nodes)
    targets_info = send_targets(cloud, exchange, nodes, config)
    nodes = targets_info["nodes_with_targets"]
    labels, new_labels = config.activity_list, []
    push_labels(cloud, exchange, nodes, labels, new_labels, version=1)

    strategy = make_strategy(config)
    rng = np.random.default_rng(config.seed)
    arrays = ArrayRecord(model.state_dict())
    rounds: list[dict] = []
    for server_round in range(1, config.num_server_rounds + 1):
        t_round = time.monotonic()
        if config.new_activity_list and server_round == config.new_activities_round:
            labels, new_labels = config.all_activities, config.new_activity_list
            push_labels(cloud, exchange, nodes, labels, new_labels, version=2)
        train_messages = [
            m
            for m in strategy.configure_train(server_round, arrays, ConfigRecord(), grid)
            if m.metadata.dst_node_id in nodes
        ]
        train_replies = exchange(train_messages, "train")
        aggregated, train_metrics = strategy.aggregate_train(server_round, train_replies)
        if aggregated is not None:
            arrays = aggregated
        evaluate_content = RecordDict(
            {"arrays": arrays, "config": ConfigRecord({"server-round": server_round})}
        )
        evaluators = sample_evaluators(nodes, config, server_round, rng)
        eval_replies = exchange(
            [Message(evaluate_content, message_type="evaluate", dst_node_id=node) for node in evaluators],
            "evaluate",
        )
        metrics = pooled_metrics(eval_replies, labels, new_labels, cloud.vocabulary.category)
        record = {
            "round": server_round,
            "labels": list(labels),
            "clients_trained": len(train_replies),
            "clients_evaluated": len(eval_replies),
            "train_loss": float(train_metrics["train-loss"]) if train_metrics else float("nan"),
            "seconds": time.monotonic() - t_round,
            **{k: v for k, v in metrics.items() if k != "confusion"},
            "confusion": metrics.get("confusion"),
        }
        rounds.append(record)
        log.info(round_summary(record))
        _write_json(out_dir / "rounds.json", rounds)

    model.load_state_dict(arrays.to_torch_state_dict())
    final_bank = cloud.label_bank(labels)
    export = export_sensor_model(model, final_bank, out_dir)
    final = rounds[-1]
    result = {
        "accuracy": final["accuracy"],
        "macro_f1": final["macro_f1"],
        "category_accuracy": final["category_accuracy"],
        "new_activity_accuracy": final.get("new_activity_accuracy"),
        "new_activity_top3": final.get("new_activity_top3"),
        "new_activity_accuracy_full_bank": final.get("new_activity_accuracy_full_bank"),
        "seed": config.seed,
        "config": config.as_dict(),
        "rounds": rounds,
        "traffic": exchange.traffic.summary(),
        "traffic_per_client": {
            str(node): {"up": exchange.traffic.up[node], "down": exchange.traffic.down[node]}
            for node in nodes
        },
        "failures": exchange.failures,
        "uploaded_fields": {phase: dict(fields) for phase, fields in exchange.uploaded.items()},
        "targets": {"windows_interpreted": targets_info["windows_interpreted"], "clients": len(nodes)},
        "stage1": _jsonable(stage1),
        "server_pretrain": _jsonable(pretrain),
        "export": export,
        "seconds": {"setup": t_setup, "total": time.monotonic() - t_start},
    }
    _write_json(out_dir / "metrics.json", result)
    plot_curves(
        {key: [r.get(key) for r in rounds] for key in ("accuracy", "macro_f1", "new_activity_accuracy")},
        out_dir / "metrics_over_rounds.png",
        xlabel="round",
        new_labels_round=config.new_activities_round if config.new_activity_list else None,
    )
    log.info(
        "FedLanHAR finished: accuracy %.3f, macro-F1 %.3f; outputs in %s",
        result["accuracy"],
        result["macro_f1"],
        out_dir,
    )
    return result


def round_summary(record: dict) -> str:
    line = (
        f"round {record['round']}: {record['clients_trained']} clients trained, "
        f"loss {record['train_loss']:.3f} | "
        f"accuracy {record['accuracy']:.3f}  macro-F1 {record['macro_f1']:.3f}  "
        f"category {record['category_accuracy']:.3f}"
    )
    if record.get("new_activity_accuracy") is not None:
        line += f"  new-activity {record['new_activity_accuracy']:.3f}"
    return line + f" | {len(record['labels'])} labels, {record['seconds']:.1f} s"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(path: Path, payload) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2))
    tmp.replace(path)  # atomic: a crash never leaves a half-written metrics file
