"""FedLanHAR ClientApp: thin Flower wiring around client/device_client.py.

Each handler rebuilds the node's local data from its spec (deterministic; cached per process), reads what the
server sent earlier from `context.state`, and replies. See common/protocol.py for the phases.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client.device_client import evaluate_locally, train_locally, window_summaries
from client.privacy import maybe_fail, perturb_summaries, privacy_mod
from common import protocol
from common.run_config import FederationConfig
from common.sensor_encoder import SensorEncoder
from common.train import SensorTrainConfig
from simulations.partition import ClientData, client_spec_from_node_config, load_client_data

log = logging.getLogger("fedlanhar.client")
app = ClientApp()


@lru_cache(maxsize=64)
def _client_data(node_items: tuple, config: FederationConfig) -> ClientData:
    """Deterministic per (node, config), so rebuilt cheaply instead of kept in the node's state."""
    return load_client_data(client_spec_from_node_config(dict(node_items), config), config)


def _config(context: Context) -> FederationConfig:
    """The run config the server sent (kept in state) wins over the node's own: all clients share one."""
    run_config = (
        context.state[protocol.RUN_CONFIG] if protocol.RUN_CONFIG in context.state else context.run_config
    )
    return FederationConfig.from_run_config(dict(run_config))


def _setup(context: Context) -> tuple[FederationConfig, ClientData]:
    torch.set_num_threads(1)  # simulated clients share the machine's cores
    config = _config(context)
    return config, _client_data(tuple(sorted(context.node_config.items())), config)


def _model(context: Context, arrays: ArrayRecord) -> SensorEncoder:
    model = SensorEncoder(protocol.model_config_from_record(context.state[protocol.MODEL_CONFIG]))
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


@app.query("summaries")
def send_summaries(msg: Message, context: Context) -> Message:
    context.state[protocol.RUN_CONFIG] = msg.content[protocol.RUN_CONFIG]
    config, data = _setup(context)
    features = window_summaries(data.train)
    arrays = {
        "features": perturb_summaries(
            features, config.summary_noise, seed=config.seed + data.spec.partition_id
        )
    }
    if config.raw_prompt_mode:
        log.warning("raw-prompt-mode is ON: client %s uploads its raw windows", data.spec.partition_id)
        arrays["windows"] = data.train.X
    info = ConfigRecord(
        {
            "sampling-rate": float(data.train.sampling_rate),
            "position": data.train.position,
            "device": data.train.device,
            "has-gyro": bool(data.train.has_gyro),
            "num-windows": len(data.train),
            "raw-prompt-mode": bool(config.raw_prompt_mode),
        }
    )
    content = RecordDict({protocol.FEATURES: protocol.array_record(**arrays), protocol.CONTEXT: info})
    return Message(content, reply_to=msg)


@app.query("targets")
def store_targets(msg: Message, context: Context) -> Message:
    _, data = _setup(context)
    targets = msg.content[protocol.TARGET_ARRAYS]
    if targets["z"].shape[0] != len(data.train):
        raise ValueError(
            f"targets: {targets['z'].shape[0]} rows for {len(data.train)} local training windows"
        )
    context.state[protocol.TARGET_ARRAYS] = targets
    context.state[protocol.MODEL_CONFIG] = msg.content[protocol.MODEL_CONFIG]
    return Message(RecordDict({protocol.ACK: MetricRecord({"stored": len(data.train)})}), reply_to=msg)


@app.query("labels")
def store_labels(msg: Message, context: Context) -> Message:
    context.state[protocol.BANK_ARRAYS] = msg.content[protocol.BANK_ARRAYS]
    context.state[protocol.BANK_INFO] = msg.content[protocol.BANK_INFO]
    return Message(
        RecordDict({protocol.ACK: MetricRecord({"labels": len(msg.content[protocol.BANK_INFO]["labels"])})}),
        reply_to=msg,
    )


@app.train(mods=[lambda msg, context, call_next: privacy_mod(_config, msg, context, call_next)])
def train(msg: Message, context: Context) -> Message:
    config, data = _setup(context)
    round_config = msg.content["config"]
    maybe_fail(config, "train", int(round_config.get("server-round", 0)), data.spec.partition_id)
    model = _model(context, msg.content["arrays"])
    train_config = SensorTrainConfig(
        epochs=config.local_epochs,
        batch_size=config.batch_size,
        lr=config.learning_rate,
        temperature=config.temperature,
        seed=config.seed * 1000 + int(round_config.get("server-round", 0)) * 7919 + data.spec.partition_id,
    )
    targets = context.state[protocol.TARGET_ARRAYS]["z"].numpy()
    history = train_locally(
        model, data.train, targets, train_config, float(round_config.get("proximal-mu", 0.0))
    )
    metrics = MetricRecord(
        {"num-examples": len(data.train), protocol.UNIFORM_WEIGHT: 1, "train-loss": float(history["loss"])}
    )
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    config, data = _setup(context)
    maybe_fail(config, "evaluate", int(msg.content["config"].get("server-round", 0)), data.spec.partition_id)
    model = _model(context, msg.content["arrays"])
    bank, new_labels = protocol.label_bank_from_records(
        RecordDict({key: context.state[key] for key in (protocol.BANK_ARRAYS, protocol.BANK_INFO)})
    )
    counts = evaluate_locally(model, data.eval, bank, new_labels)
    metrics = MetricRecord(
        {
            "num-examples": counts["num-scored"],
            "confusion": counts["confusion"].ravel().tolist(),
            "num-unscored": counts["num-unscored"],
            "new-windows": counts["new-windows"],
            "new-correct-among-new": counts["new-correct-among-new"],
            "new-top3-among-new": counts["new-top3-among-new"],
            "bank-version": int(context.state[protocol.BANK_INFO]["version"]),
        }
    )
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
