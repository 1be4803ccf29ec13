"""The FedLanHAR message protocol: message types, record keys and (un)packing shared by server and clients.

Phases, in order (the server always asks; Flower clients cannot start a conversation):
1. `query.summaries` server -> client: "send what you want interpreted", with the server's run config so that
   all clients work from one config (a simulation may give clients an empty one). Reply: the analysis
   features of the client's unlabeled training windows ("features") and of its evaluation windows
   ("eval-features"), each only if it has such windows (raw windows only in raw-prompt mode), its recording
   context and its role ("train", "evaluate" or "train+evaluate"; see common/federation/partition.py).
2. `query.targets` server -> client: the text-space targets Z (one row per training window, "z"), the
   text-space embedding of each evaluation window's interpretation ("z-eval": the text path, scored on the
   client so that no per-window label ever leaves it), the sensor encoder's architecture, optionally the
   interpretation texts, and with lazy enrolment (server/enrolment.py) the label bank of phase 3. The client
   keeps them in `context.state`.
3. `query.labels` server -> client: the label bank (names + embeddings), at the start and whenever the label
   set changes (new activities). Clients recognise new labels from then on without retraining.
4. `train` / `evaluate`: the standard Flower rounds, each sent only to the clients whose role includes it;
   train carries exactly one ArrayRecord (the sensor encoder) and one ConfigRecord, so Flower's DP clipping
   mods apply unchanged (with lean updates on, which excludes DP, the model may come as changes to the one
   the client holds: DOWNLINK below). Evaluate replies are counts: the sensor encoder's and the text path's
   confusion matrices and the number of windows on which the two agree.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from torch import nn

from common.models.sensor_encoder import SensorEncoderConfig
from common.models.zero_shot import LabelBank

SUMMARIES = "query.summaries"
TARGETS = "query.targets"
LABELS = "query.labels"

# record keys
RUN_CONFIG = "run-config"  # ConfigRecord: the server's resolved run config, kept by clients in context.state
# ArrayRecord {"features": [N, F], "eval-features": [M, F]} (+ "windows", "eval-windows" [., T, 6] in
# raw-prompt mode); a key is left out when the client has no such windows.
FEATURES = "features"
# ConfigRecord: sampling-rate, position, device, has-gyro, num-windows, num-eval-windows, role,
# raw-prompt-mode
CONTEXT = "context"
TARGET_ARRAYS = "targets"  # ArrayRecord {"z": [N, D], "z-eval": [M, D]} (each only when N, M > 0)
TARGET_TEXTS = "target-texts"  # ConfigRecord {"texts": [...]} only when send-target-text is on
MODEL_CONFIG = "model-config"  # ConfigRecord of SensorEncoderConfig fields
BANK_ARRAYS = "label-bank"  # ArrayRecord {"embeddings": [C, D]}
BANK_INFO = "label-info"  # ConfigRecord {"labels": [...], "new-labels": [...], "version": int}
ACK = "ack"
# interpret-on-client (client/local_interpretation.py): the summaries reply carries INTERPRETATIONS instead of
# FEATURES, ConfigRecord {"texts": [distinct texts of training windows], "eval-texts": [... of evaluation
# windows]}; the targets message carries TEXT_TABLE {"embeddings": [K, D]} and TEXT_TABLE_TEXTS {"texts": [K]}
# instead of per-window targets.
INTERPRETATIONS = "interpretations"
TEXT_TABLE = "text-table"
TEXT_TABLE_TEXTS = "text-table-texts"
# ConfigRecord a client answers phase 1 with INSTEAD of summaries when its preflight fails:
# {"reason": ..., "partition-id": int, "device-type": as the run config names it, when known}
# (common/federation/preflight.py). The server goes on without it, unless every client of a device type the
# run config names refused (server/federation.py, check_refusals): then the run stops.
REFUSED = "refused"
# ConfigRecord of an evaluate reply: {"group": data set / device type} for the per-device breakdown.
CLIENT_INFO = "client"
# Lean downlink (update-compression on, server/updates.py): train and evaluate messages carry DOWNLINK, a
# ConfigRecord {"version": the global model's version, "base": the version the changes in MODEL_DELTAS start
# from, or -1 when "arrays" holds the whole model (float16), "keep": whether the client keeps the model and
# its residual for next time}; a keeping client's reply echoes {"version": the one now held}.
DOWNLINK = "downlink"
MODEL_DELTAS = "model-deltas"  # ArrayRecord of compression.pack_deltas
# Train metric every client reports as 1: DP-FedAvg's sensitivity bound needs equal client weights.
UNIFORM_WEIGHT = "uniform-weight"


def model_arrays(model: nn.Module, names: list[str] | None = None) -> ArrayRecord:
    """A model's weights (only `names`, when given) as a message record, copied to the CPU whatever device
    the model trains on."""
    chosen = set(names) if names is not None else None
    return ArrayRecord(
        OrderedDict(
            (name, value.detach().cpu())
            for name, value in model.state_dict().items()
            if chosen is None or name in chosen
        )
    )


def array_record(**arrays: np.ndarray) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in arrays.items()})


def model_config_record(config: SensorEncoderConfig) -> ConfigRecord:
    return ConfigRecord(config.to_dict())


def model_config_from_record(record: ConfigRecord) -> SensorEncoderConfig:
    return SensorEncoderConfig.from_dict(dict(record.items()))


def label_bank_records(
    bank: LabelBank, new_labels: list[str], version: int, scoring_labels: list[str] | None = None
) -> RecordDict:
    """The bank push. `scoring_labels` (bank labels + merged names such as "stairs") index every client's
    confusion counts, so that clients scoring different label spaces add up (common/data/label_spaces.py)."""
    info = ConfigRecord(
        {
            "labels": list(bank.labels),
            "new-labels": list(new_labels),
            "version": version,
            "scoring-labels": list(scoring_labels or bank.labels),
        }
    )
    return RecordDict(
        {BANK_ARRAYS: array_record(embeddings=bank.embeddings.astype(np.float32)), BANK_INFO: info}
    )


def label_bank_from_records(records: RecordDict) -> tuple[LabelBank, list[str]]:
    info = records[BANK_INFO]
    bank = LabelBank(labels=list(info["labels"]), embeddings=records[BANK_ARRAYS]["embeddings"].numpy())
    return bank, list(info["new-labels"])


def scoring_labels_from_records(info: ConfigRecord) -> list[str]:
    return list(info["scoring-labels"]) if "scoring-labels" in info else list(info["labels"])


def record_nbytes(content: RecordDict) -> int:
    """Payload size of a message: array bytes plus the UTF-8 size of config/metric values."""
    total = 0
    for record in content.values():
        if isinstance(record, ArrayRecord):
            total += sum(len(array.data) for array in record.values())
        else:
            total += sum(len(str(key)) + len(str(value).encode()) for key, value in record.items())
    return total
