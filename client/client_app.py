"""FedLanHAR ClientApp: thin Flower wiring around client/device_client.py.

Each handler rebuilds the node's local data from its spec (deterministic; cached per process), reads what the
server sent earlier from `context.state`, and replies. See common/federation/protocol.py for the phases.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client.device_client import evaluate_locally, train_locally
from client.local_interpretation import distinct_texts_record, interpret_locally, targets_from_table
from client.privacy import maybe_fail, privacy_mod, uploaded_summaries
from client.secagg import drop_out_if_injected, handle_setup, handle_share_keys, handle_unmask, secagg_mod
from client.updates import held_version, keeps_state, received_model, reply_arrays
from common.base.device import resolve_device
from common.data.errors import DataError
from common.federation import protocol
from common.federation.mixed import client_group
from common.federation.partition import (
    ClientData,
    ClientSpec,
    client_spec_from_node_config,
    load_client_data,
)
from common.federation.preflight import client_data_problem
from common.federation.run_config import FederationConfig
from common.models.sensor_encoder import SensorEncoder
from common.models.zero_shot import LabelBank

log = logging.getLogger("fedlanhar.client")
app = ClientApp()
LOCAL_TEXTS = "local-texts"  # context.state: per-window interpretation texts (interpret-on-client only)


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
    return model.to(resolve_device(_config(context).device))


def _label_bank(context: Context) -> tuple[LabelBank, list[str]]:
    """The label bank last pushed to this node, and which of its labels are new."""
    return protocol.label_bank_from_records(
        RecordDict({key: context.state[key] for key in (protocol.BANK_ARRAYS, protocol.BANK_INFO)})
    )


@app.query("summaries")
def send_summaries(msg: Message, context: Context) -> Message:
    context.state[protocol.RUN_CONFIG] = msg.content[protocol.RUN_CONFIG]
    try:  # preflight: a client that cannot take part says why and the run goes on without it
        config, data = _setup(context)
        problem = client_data_problem(data)
    except DataError as error:
        data, problem = None, str(error)
    if problem:
        return _refusal(msg, context, data.spec if data else _spec_or_none(context), problem)
    info = _recording_context(data, config)
    if config.interpret_on_client:  # only distinct texts leave; per-window ones stay for the targets phase
        local_texts = interpret_locally(data, config)
        context.state[LOCAL_TEXTS] = ConfigRecord(local_texts)
        content = {protocol.INTERPRETATIONS: distinct_texts_record(local_texts), protocol.CONTEXT: info}
        return Message(RecordDict(content), reply_to=msg)
    arrays = uploaded_summaries(data, config)
    if config.raw_prompt_mode:
        log.warning("raw-prompt-mode is ON: client %s uploads its raw windows", data.spec.partition_id)
        if data.trains:
            arrays["windows"] = data.train.X
        if data.evaluates:
            arrays["eval-windows"] = data.eval.X
    content = {protocol.FEATURES: protocol.array_record(**arrays), protocol.CONTEXT: info}
    return Message(RecordDict(content), reply_to=msg)


def _spec_or_none(context: Context) -> ClientSpec | None:
    """The node's spec when its data could not be loaded (None when its node config is what is wrong)."""
    try:
        return client_spec_from_node_config(dict(context.node_config), _config(context))
    except DataError:
        return None


def _refusal(msg: Message, context: Context, spec: ClientSpec | None, problem: str) -> Message:
    """Why this client cannot take part, with its partition and device type: the server goes on without it,
    unless every client of a device type the run config names refused (server/federation.py)."""
    partition = context.node_config.get("partition-id", "?")
    where = f" ({client_group(spec.data_set, spec.device_type)})" if spec else ""
    reason = f"client {partition}{where} refused: {problem}"
    log.warning(reason)
    refusal = {"reason": reason, "partition-id": int(partition) if str(partition).isdigit() else -1}
    if spec:
        refusal["device-type"] = spec.device_type  # as the run config names it
    return Message(RecordDict({protocol.REFUSED: ConfigRecord(refusal)}), reply_to=msg)


def _recording_context(data: ClientData, config: FederationConfig) -> ConfigRecord:
    """How the client's windows were recorded, how many it holds and its role (protocol.CONTEXT)."""
    windows = data.train if data.trains else data.eval
    return ConfigRecord(
        {
            "sampling-rate": float(windows.sampling_rate),
            "position": windows.position,
            "device": windows.device,
            "has-gyro": bool(windows.has_gyro),
            "num-windows": len(data.train),
            "num-eval-windows": len(data.eval),
            "role": data.role,
            "raw-prompt-mode": bool(config.raw_prompt_mode),
        }
    )


@app.query("targets")
def store_targets(msg: Message, context: Context) -> Message:
    _, data = _setup(context)
    if protocol.TEXT_TABLE in msg.content:  # interpret-on-client: look the own texts up in the table
        local_texts = {key: list(values) for key, values in context.state[LOCAL_TEXTS].items()}
        table_targets = targets_from_table(msg.content, local_texts)
        msg.content[protocol.TARGET_ARRAYS] = table_targets[protocol.TARGET_ARRAYS]
    targets = msg.content[protocol.TARGET_ARRAYS]
    for key, windows in (("z", data.train), ("z-eval", data.eval)):
        rows = targets[key].shape[0] if key in targets else 0
        if rows != len(windows):
            raise ValueError(f"targets: '{key}' has {rows} rows for {len(windows)} local windows")
    context.state[protocol.TARGET_ARRAYS] = targets
    context.state[protocol.MODEL_CONFIG] = msg.content[protocol.MODEL_CONFIG]
    if protocol.BANK_INFO in msg.content:  # lazy enrolment: the label bank comes with the targets
        context.state[protocol.BANK_ARRAYS] = msg.content[protocol.BANK_ARRAYS]
        context.state[protocol.BANK_INFO] = msg.content[protocol.BANK_INFO]
    return Message(RecordDict({protocol.ACK: MetricRecord({"stored": len(data.train)})}), reply_to=msg)


@app.query("labels")
def store_labels(msg: Message, context: Context) -> Message:
    context.state[protocol.BANK_ARRAYS] = msg.content[protocol.BANK_ARRAYS]
    context.state[protocol.BANK_INFO] = msg.content[protocol.BANK_INFO]
    acknowledgement = MetricRecord({"labels": len(msg.content[protocol.BANK_INFO]["labels"])})
    return Message(RecordDict({protocol.ACK: acknowledgement}), reply_to=msg)


def _secagg_stage(stage: str, handler):
    """A SecAgg+ stage's handler behind the run config's injected dropouts (secagg-drop)."""

    def answer(msg: Message, context: Context) -> Message:
        drop_out_if_injected(_config(context), context.node_config, stage)
        return handler(msg, context)

    return answer


# SecAgg+ stages 1, 2 and 4 (client/secagg.py); stage 3 is the train message, masked by secagg_mod.
app.query("secagg_setup")(_secagg_stage("setup", handle_setup))
app.query("secagg_share_keys")(_secagg_stage("share-keys", handle_share_keys))
app.query("secagg_unmask")(_secagg_stage("unmask", handle_unmask))


# secagg_mod first = outermost: it masks what the DP mods (clipping, local noise) have already produced.
@app.train(
    mods=[
        lambda msg, context, call_next: secagg_mod(msg, context, call_next, _config(context)),
        lambda msg, context, call_next: privacy_mod(_config, msg, context, call_next),
    ]
)
def train(msg: Message, context: Context) -> Message:
    config, data = _setup(context)
    if not data.trains:
        raise RuntimeError(
            f"client {data.spec.partition_id} holds only held-out users (role '{data.role}'): it never trains"
        )
    round_config = msg.content["config"]
    maybe_fail(config, "train", int(round_config.get("server-round", 0)), data.spec.partition_id)
    received = received_model(msg.content, context.state)  # whole, or steps to the model held (lean downlink)
    model = _model(context, received)
    model.train_only(model.top_layer_names(config.client_train_layers))  # the rest stays as pre-trained
    train_config = config.sensor_train_config(
        config.local_epochs,
        seed=config.seed * 1000 + int(round_config.get("server-round", 0)) * 7919 + data.spec.partition_id,
    )
    targets = context.state[protocol.TARGET_ARRAYS]["z"].numpy()
    history = train_locally(
        model, data.train, targets, train_config, float(round_config.get("proximal-mu", 0.0))
    )
    metrics = MetricRecord(
        {"num-examples": len(data.train), protocol.UNIFORM_WEIGHT: 1, "train-loss": float(history["loss"])}
    )
    arrays = reply_arrays(model, received, context.state, config, keeps_state(msg.content))
    content = RecordDict({"arrays": arrays, "metrics": metrics, **held_version(msg.content)})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    config, data = _setup(context)
    if not data.evaluates:
        raise RuntimeError(f"client {data.spec.partition_id} has no evaluation windows (role '{data.role}')")
    maybe_fail(config, "evaluate", int(msg.content["config"].get("server-round", 0)), data.spec.partition_id)
    model = _model(context, received_model(msg.content, context.state))
    bank, new_labels = _label_bank(context)
    targets = context.state[protocol.TARGET_ARRAYS]
    text_targets = targets["z-eval"].numpy() if "z-eval" in targets else None
    scoring_labels = protocol.scoring_labels_from_records(context.state[protocol.BANK_INFO])
    counts = evaluate_locally(model, data.eval, bank, new_labels, text_targets, scoring_labels)
    values = {
        "num-examples": counts["num-scored"],
        "confusion": counts["confusion"].ravel().tolist(),
        "initial-confusion": counts["initial-confusion"].ravel().tolist(),
        "num-unscored": counts["num-unscored"],
        "new-windows": counts["new-windows"],
        "new-correct-among-new": counts["new-correct-among-new"],
        "new-top3-among-new": counts["new-top3-among-new"],
        "bank-version": int(context.state[protocol.BANK_INFO]["version"]),
    }
    if "text-confusion" in counts:
        values["text-confusion"] = counts["text-confusion"].ravel().tolist()
        values["agreement"] = counts["agreement"]
    metrics = MetricRecord(values)
    group = ConfigRecord({"group": client_group(data.spec.data_set, data.spec.device_type)})
    content = RecordDict({"metrics": metrics, protocol.CLIENT_INFO: group, **held_version(msg.content)})
    return Message(content, reply_to=msg)
