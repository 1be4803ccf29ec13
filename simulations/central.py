"""Centralised LanHAR: both training stages in one process (`fedlanhar train` / `fedlanhar evaluate`).

Honest splits: the source is split 80/20 by user (stage-1 validation); the target is split by user into an
unlabeled training side (stage 2 sees its windows and their interpretations, never its labels) and a held-out
evaluation side. `split.json` in the model directory records the users, and `evaluate` on the same target
only ever scores the held-out users.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import Tensor

from common.base.device import resolve_device
from common.base.metrics import classification_metrics, plot_confusion
from common.base.runtime import set_seed
from common.base.serialise import jsonable
from common.data.errors import DataError
from common.data.label_spaces import rename_labels
from common.data.labels import load_vocabulary
from common.data.loading import load_dataset
from common.data.toml_files import read_toml
from common.data.windows import WindowSet, split_by_user
from common.language.factory import make_interpreter
from common.language.interpreter import Interpreter
from common.language.regeneration import RegenerationConfig
from common.language.rules import SIMPLE_CATEGORIES
from common.method.lanhar import (
    describe_labels,
    interpret_windows,
    label_bank,
    regenerate_interpretations,
    to_walking_frame,
)
from common.method.text_space_cache import train_or_reuse_text_space
from common.method.train import (
    SensorTrainConfig,
    TextTrainConfig,
    average_state_dicts,
    train_sensor_encoder,
    train_sensor_epochs,
)
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, encode_windows
from common.models.text_encoder import TextEncoder
from common.models.zero_shot import LabelBank

log = logging.getLogger("fedlanhar")

STAGE2_SCHEDULES = ("joint", "source-then-target-fedavg")
# Added to the seed of the target phase of "source-then-target-fedavg": its shuffles and dropout draws are not
# a replay of the source phase's.
TARGET_PHASE_SEED_OFFSET = 7919


@dataclass
class CentralConfig:
    """Everything a central run depends on; recorded whole in metrics.json."""

    source: str = "uci"
    target: str = "dsads_torso"
    activities: tuple[str, ...] = ("walking", "upstairs", "downstairs", "sitting")
    budget: str = "default"
    seed: int = 0
    interpreter: str = "rules"
    simple_prompt: bool = False  # rules interpreter: report SIMPLE_CATEGORIES only (ablation w/o IGP)
    text_encoder: str = "minilm"  # "minilm" (packaged) or any Hugging Face name / model directory
    descriptions_per_label: int = 6
    regeneration: bool = True
    # Labels renamed before the activities are selected, e.g. {"upstairs": "stairs", "downstairs": "stairs"}
    # for pairs with wisdm_phone, whose single "stairs" class mixes going up and going down.
    merge_labels: dict[str, str] = field(default_factory=dict)
    source_eval_fraction: float = 0.2  # source users held out for stage-1/2 validation
    target_eval_fraction: float = 0.5  # target users held out for evaluation (never trained on)
    max_windows_per_class: int = 0  # 0 = all; budgets cap it to bound interpretation + stage-2 time
    stage1_steps: int = 150  # 0 = no text-encoder training: the pretrained encoder as is (ablation w/o TTE)
    stage1_batch_size: int = 32
    stage1_lr: float = 2e-5
    text_alpha: float = 0.5  # weight of the category subtasks ca1 + ca2 + ca3 (0 and 0: ablation w/o STE)
    text_beta: float = 0.1  # weight of the reconstruction subtask
    stage2_epochs: int = 30
    stage2_batch_size: int = 64
    stage2_lr: float = 3e-4
    stage2_rotation_deg: float = 0.0  # random-rotation augmentation of stage-2 windows (SensorTrainConfig)
    # Stage 2's unlabeled target windows. True (default; docs/method.md, "How each default was chosen"):
    # every window of the target's training users, whatever its activity, as a device holds
    # them; no target label decides which windows train. False: only their windows of the pair's
    # activities, the paper's closed-set protocol, which picks those unlabeled windows by their label.
    # Scoring is the same either way.
    stage2_target_all_activities: bool = True
    # Stage 2's order. "joint": the source and target windows shuffled together for stage2_epochs.
    # "source-then-target-fedavg": the federation's schedule in one process: stage2_epochs on the labeled
    # source windows alone (the server's pre-training), then the target phase as the federation runs it,
    # FedAvg over the target's training users in stage2_target_rounds rounds of stage2_target_epochs / rounds
    # local epochs each (the real-data federation runs 5 rounds x 3 local epochs = 15). Kept as the central
    # reference that trains as the federation does (docs/results/federated-vs-central).
    stage2_schedule: str = "joint"
    stage2_target_epochs: int = 15
    stage2_target_rounds: int = 5
    sensor_input_frame: str = "gravity"  # SensorEncoderConfig.input_frame: "gravity" or "device"
    sensor_analysis_token: bool = True  # SensorEncoderConfig.analysis_token (signal analysis as a token)
    # Every data set's windows turned into each wearer's walking frame (common/data/posture.py, no label
    # read): the rules interpreter then words the body segment's inclination from its walking posture, the
    # label descriptions say how each activity inclines trunk and thigh (configs/label_knowledge.toml), and
    # the sensor encoder's analysis token reads it (SensorEncoderConfig.walking_frame). The gravity frame
    # makes sitting, standing and lying read alike; this gives the posture back without depending on how
    # the device is mounted (docs/results/posture-inclination). Off: a switch with an ablation row.
    walking_frame: bool = False
    temperature: float = 0.07
    # Where the models run: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N" (common/base/device.py).
    # Not part of what a result depends on beyond floating-point noise, so stage-1 reuse ignores it.
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.stage1_steps < 0 or self.stage2_epochs < 1:
            raise DataError(
                f"stage1_steps must be >= 0 and stage2_epochs >= 1, got {self.stage1_steps} and "
                f"{self.stage2_epochs}"
            )
        if self.stage2_schedule not in STAGE2_SCHEDULES:
            raise DataError(
                f"stage2_schedule must be one of {list(STAGE2_SCHEDULES)}, got '{self.stage2_schedule}'"
            )
        if self.stage2_target_epochs < 1:
            raise DataError(f"stage2_target_epochs must be >= 1, got {self.stage2_target_epochs}")
        if self.stage2_target_rounds < 1 or self.stage2_target_epochs % self.stage2_target_rounds:
            raise DataError(
                f"stage2_target_rounds must be >= 1 and divide stage2_target_epochs "
                f"({self.stage2_target_epochs}), got {self.stage2_target_rounds}"
            )
        if self.simple_prompt and self.interpreter != "rules":
            raise DataError(
                f"simple_prompt is implemented for the rules interpreter, not '{self.interpreter}'"
            )
        if self.walking_frame and (
            self.interpreter != "rules" or self.simple_prompt or self.stage2_rotation_deg != 0
        ):
            raise DataError(
                "walking_frame is implemented for the rules interpreter with its standard categories and no "
                "rotation augmentation (a rotation would move the walking frame): got interpreter "
                f"'{self.interpreter}', simple_prompt={self.simple_prompt}, "
                f"stage2_rotation_deg={self.stage2_rotation_deg}"
            )

    def resolved(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# Budgets scale the expensive knobs only. small: a few minutes on 2 cores (tests, smoke runs).
BUDGETS: dict[str, dict] = {
    "small": {"stage1_steps": 12, "stage2_epochs": 8, "max_windows_per_class": 60, "regeneration": False},
    "default": {"stage1_steps": 150, "stage2_epochs": 30, "max_windows_per_class": 0},
    "full": {"stage1_steps": 400, "stage2_epochs": 60, "max_windows_per_class": 0},
}


def central_config(budget: str = "default", config_file: Path | None = None, **overrides) -> CentralConfig:
    """Budget preset, then an optional TOML file (keys = CentralConfig fields), then explicit overrides."""
    if budget not in BUDGETS:
        raise DataError(f"--budget: unknown '{budget}', choose one of {sorted(BUDGETS)}")
    values: dict = {"budget": budget, **BUDGETS[budget]}
    if config_file is not None:
        file_values = read_toml(config_file, "central settings file")
        known = {f.name for f in dataclasses.fields(CentralConfig)}
        unknown = sorted(set(file_values) - known)
        if unknown:
            raise DataError(f"{config_file}: unknown keys {unknown}; known: {sorted(known)}")
        values.update(file_values)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "activities" in values:
        values["activities"] = tuple(values["activities"])
    return CentralConfig(**values)


def text_train_config(config: CentralConfig) -> TextTrainConfig | None:
    """Stage-1 settings of a run; None when the run keeps the pretrained text encoder (stage1_steps = 0)."""
    if config.stage1_steps == 0:
        return None
    return TextTrainConfig(
        max_steps=config.stage1_steps,
        batch_size=config.stage1_batch_size,
        lr=config.stage1_lr,
        temperature=config.temperature,
        alpha=config.text_alpha,
        beta=config.text_beta,
        seed=config.seed,
    )


def sensor_encoder_config(config: CentralConfig, out_dim: int) -> SensorEncoderConfig:
    """The stage-2 sensor encoder of a central run, mapping into a text space of width `out_dim`."""
    return SensorEncoderConfig(
        out_dim=out_dim,
        input_frame=config.sensor_input_frame,
        analysis_token=config.sensor_analysis_token,
        walking_frame=config.walking_frame,
    )


def central_interpreter(config: CentralConfig) -> Interpreter:
    return _run_interpreter(config.interpreter, config.simple_prompt, config.walking_frame)


def _run_interpreter(kind: str, simple_prompt: bool, walking_frame: bool) -> Interpreter:
    """The interpreter of a run's texts: training and evaluation build it alike from the run's switches."""
    if simple_prompt:
        return make_interpreter(kind, categories=SIMPLE_CATEGORIES)
    if walking_frame:
        return make_interpreter(kind, inclination=True)
    return make_interpreter(kind)


def _cap_per_class(ws: WindowSet, cap: int, seed: int) -> WindowSet:
    """Keep at most `cap` windows per class, taking whole recordings first-come (no random window picking)."""
    if cap <= 0:
        return ws
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in range(len(ws.label_names)):
        segments = rng.permutation(np.unique(ws.segment[ws.y == label]))
        taken: list[int] = []
        for segment in segments:
            if len(taken) >= cap:
                break
            taken.extend(np.flatnonzero((ws.segment == segment) & (ws.y == label)).tolist())
        keep.extend(taken[:cap])
    return ws.subset(np.sort(np.array(keep, dtype=np.int64)))


def _cap_recordings(ws: WindowSet, cap: int, seed: int) -> WindowSet:
    """Keep at most `cap` windows, whole recordings in random order, without reading any label."""
    if cap <= 0:
        return ws
    taken: list[int] = []
    for segment in np.random.default_rng(seed).permutation(np.unique(ws.segment)):
        if len(taken) >= cap:
            break
        taken.extend(np.flatnonzero(ws.segment == segment).tolist())
    return ws.subset(np.sort(np.array(taken[:cap], dtype=np.int64)))


def load_pair(config: CentralConfig, data_dir: Path) -> dict[str, WindowSet]:
    """Source train/val and target train/eval windows, split by user.

    The labeled source sides and the scored target side hold the run's activities (those both sets have);
    the unlabeled target-train side holds every window of its users by default (stage2_target_all_activities).
    """
    source = rename_labels(load_dataset(config.source, data_dir), config.merge_labels)
    target = rename_labels(load_dataset(config.target, data_dir), config.merge_labels)
    if config.walking_frame:  # each user's reference from all of the user's windows, before any selection
        source, target = to_walking_frame(source), to_walking_frame(target)
    activities = [a for a in config.activities if a in source.label_names and a in target.label_names]
    if len(activities) < 2:
        raise DataError(
            f"activities {list(config.activities)}: only {activities} are shared by '{config.source}' "
            f"({source.label_names}) and '{config.target}' ({target.label_names})"
        )
    source = _cap_per_class(source.select_activities(activities), config.max_windows_per_class, config.seed)
    source_train, source_val = split_by_user(source, config.source_eval_fraction, config.seed)
    target_all = target.select_activities(activities)
    target_train, target_eval = split_by_user(target_all, config.target_eval_fraction, config.seed)
    if config.stage2_target_all_activities:
        target_train = target.subset(np.flatnonzero(np.isin(target.user, np.unique(target_train.user))))
        # Unlabeled: a budget's cap must not read the labels either, so it takes whole recordings at random.
        cap = config.max_windows_per_class * len(activities)
        target_train = _cap_recordings(target_train, cap, config.seed)
    else:
        target_train = _cap_per_class(target_train, config.max_windows_per_class, config.seed)
    return {
        "source_train": source_train,
        "source_val": source_val,
        "target_train": target_train,
        "target_eval": target_eval,
    }


def stage2_windows(splits: dict[str, WindowSet]) -> np.ndarray:
    """Stage 2's windows: source-train, then target-train."""
    return np.concatenate([splits["source_train"].X, splits["target_train"].X])


def train_central(
    config: CentralConfig,
    data_dir: Path,
    out_dir: Path,
    progress: bool = True,
    text_space_cache: Path | None = None,
) -> dict:
    """Stage 1 + stage 2; writes the model directory `out_dir` (loadable by `evaluate_central`).

    With `text_space_cache`, the stage-1 text encoder is stored there under `stage1_key` and reused by any
    later run with the same stage-1 inputs (e.g. the other targets of the same source).
    """
    device = resolve_device(config.device)
    set_seed(config.seed)
    t0 = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = load_pair(config, data_dir)
    activities = splits["source_train"].label_names
    vocabulary = load_vocabulary()
    interpreter = central_interpreter(config)
    encoder = TextEncoder(config.text_encoder).to(device)

    source = interpret_windows(splits["source_train"], interpreter, activities)
    if config.regeneration:
        groups = splits["source_train"].y
        source = regenerate_interpretations(source, groups, interpreter, encoder, RegenerationConfig())
    descriptions = describe_labels(interpreter, activities, config.descriptions_per_label)
    t_interpret = time.monotonic() - t0

    encoder, stage1 = _train_stage1(
        encoder,
        text_train_config(config),
        source.texts,
        splits["source_train"].labels(),
        descriptions,
        vocabulary,
        text_space_cache,
        progress,
    )
    t_stage1 = time.monotonic() - t0 - t_interpret

    # Stage 2: every window with an interpretation, labeled or not; target labels are never read here.
    # Re-seeded so that stage 2 starts from the same state whether stage 1 ran or was reused.
    set_seed(config.seed)
    target = interpret_windows(splits["target_train"], interpreter, activities)
    model_config = sensor_encoder_config(config, encoder.dim)
    targets = encoder.encode(source.texts + target.texts, progress=progress)
    bank = label_bank(encoder, descriptions, activities)
    sensor_encoder = SensorEncoder(model_config).to(device)
    stage2 = _train_stage2(config, sensor_encoder, splits, targets, progress)
    t_stage2 = time.monotonic() - t0 - t_interpret - t_stage1

    source_val = splits["source_val"]
    source_val_embeddings = encode_windows(sensor_encoder, source_val.X)
    source_val_metrics, _ = _sensor_metrics(source_val, bank, source_val_embeddings, vocabulary)
    split = _save_model(out_dir, config, splits, encoder, sensor_encoder, bank, descriptions)
    metrics = {
        "config": config.resolved(),
        "seed": config.seed,
        "split": split,
        "windows": {name: len(ws) for name, ws in splits.items()},
        "distinct_interpretations": {"source": len(set(source.texts)), "target": len(set(target.texts))},
        "regeneration": None
        if source.regeneration is None
        else {"fraction_regenerated": source.regeneration.fraction_regenerated},
        "source_val": {k: v for k, v in source_val_metrics.items() if k != "confusion"},
        "stage1": _summarise_history(stage1),
        "stage2": _summarise_history(stage2),
        "seconds": {
            "interpret": t_interpret,
            "stage1": t_stage1,
            "stage2": t_stage2,
            "total": time.monotonic() - t0,
        },
    }
    (out_dir / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2))
    return metrics


def _train_stage1(
    encoder: TextEncoder,
    text_config: TextTrainConfig | None,
    texts: list[str],
    labels: list[str],
    descriptions: dict[str, list[str]],
    vocabulary,
    text_space_cache: Path | None,
    progress: bool,
) -> tuple[TextEncoder, dict]:
    """Stage 1 on the source's interpretations `texts` and their `labels`: the text encoder it leaves (the
    pretrained `encoder` as is without `text_config`, or the one reused from `text_space_cache`) and its
    history."""
    if text_config is None:
        return encoder, {"skipped": "stage1_steps = 0: the pretrained text encoder is used as is"}
    return train_or_reuse_text_space(
        encoder, texts, labels, descriptions, vocabulary, text_config, text_space_cache, progress
    )


def _train_stage2(
    config: CentralConfig,
    sensor_encoder: SensorEncoder,
    splits: dict[str, WindowSet],
    targets: np.ndarray,
    progress: bool,
) -> dict:
    """Stage 2 in place on `sensor_encoder`: the `stage2_windows` of `splits` aligned with their text
    `targets`, in the order config.stage2_schedule names; returns its history."""
    sensor_config = SensorTrainConfig(
        epochs=config.stage2_epochs,
        batch_size=config.stage2_batch_size,
        lr=config.stage2_lr,
        temperature=config.temperature,
        rotation_jitter_deg=config.stage2_rotation_deg,
        seed=config.seed,
    )
    windows = stage2_windows(splits)
    if config.stage2_schedule == "joint":
        return train_sensor_encoder(sensor_encoder, windows, targets, sensor_config, progress=progress)
    return _train_source_then_fedavg(
        sensor_encoder,
        windows,
        targets,
        len(splits["source_train"]),
        sensor_config,
        config.stage2_target_epochs,
        progress,
        target_users=splits["target_train"].user,
        target_rounds=config.stage2_target_rounds,
    )


def _save_model(
    out_dir: Path,
    config: CentralConfig,
    splits: dict[str, WindowSet],
    encoder: TextEncoder,
    sensor_encoder: SensorEncoder,
    bank: LabelBank,
    descriptions: dict[str, list[str]],
) -> dict:
    """Write the model directory that `evaluate_central` reads; returns its split.json (the run's users)."""
    encoder.save(out_dir / "text_encoder")
    sensor_encoder.save(out_dir / "sensor_encoder.pt")
    bank.save(out_dir / "label_bank.npz")
    (out_dir / "descriptions.json").write_text(json.dumps(descriptions, indent=2))
    split = {
        "source": config.source,
        "target": config.target,
        "activities": splits["source_train"].label_names,
        "merge_labels": config.merge_labels,
        "simple_prompt": config.simple_prompt,
        "walking_frame": config.walking_frame,
        "source_train_users": sorted(set(splits["source_train"].user.tolist())),
        "source_val_users": sorted(set(splits["source_val"].user.tolist())),
        "target_train_users": sorted(set(splits["target_train"].user.tolist())),
        "target_eval_users": sorted(set(splits["target_eval"].user.tolist())),
    }
    (out_dir / "split.json").write_text(json.dumps(split, indent=2))
    return split


def _train_source_then_fedavg(
    sensor_encoder: SensorEncoder,
    windows: np.ndarray,
    targets: np.ndarray,
    n_source: int,
    sensor_config: SensorTrainConfig,
    target_epochs: int,
    progress: bool,
    target_users: np.ndarray,
    target_rounds: int,
) -> dict:
    """Stage 2 in the federation's order ("source-then-target-fedavg"): the first `n_source` rows (source)
    alone, then the target rows as FedAvg over `target_users` (the user of each target row) in
    `target_rounds` rounds of `target_epochs` / `target_rounds` local epochs (`_train_by_user_average`)."""
    if len(target_users) != len(windows) - n_source:
        raise ValueError("source-then-target-fedavg needs the user of every target row (target_users)")
    target_config = dataclasses.replace(
        sensor_config, epochs=target_epochs, seed=sensor_config.seed + TARGET_PHASE_SEED_OFFSET
    )
    source_phase = train_sensor_encoder(
        sensor_encoder, windows[:n_source], targets[:n_source], sensor_config, progress=progress
    )
    target_phase = _train_by_user_average(
        sensor_encoder, windows[n_source:], targets[n_source:], target_users, target_config, target_rounds
    )
    return {"source_phase": _summarise_history(source_phase), "target_phase": target_phase}


def _train_by_user_average(
    sensor_encoder: SensorEncoder,
    windows: np.ndarray,
    targets: np.ndarray,
    users: np.ndarray,
    config: SensorTrainConfig,
    rounds: int,
) -> dict:
    """The real-data federation's rounds in one process, in place on `sensor_encoder`.

    Each of `rounds` rounds gives every user a copy of the model, trains it for config.epochs / rounds
    epochs on that user's rows alone (`train_sensor_epochs`, a client's local update, with a fresh
    optimiser) and replaces the model by the copies' mean weighted by window count (FedAvg). Every user
    trains in every round, as the federation's training clients do (fraction-train 1).
    """
    # CentralConfig checks that `rounds` divides config.epochs (stage2_target_rounds).
    local_config = dataclasses.replace(config, epochs=config.epochs // rounds)
    user_ids = np.unique(users)
    user_rows = [np.flatnonzero(users == user) for user in user_ids]
    sizes = [len(rows) for rows in user_rows]
    history: dict = {"rounds": rounds, "local_epochs": local_config.epochs, "users": len(user_ids)}
    history |= {"num_examples": len(windows), "loss": [], "config": dataclasses.asdict(local_config)}
    started = time.perf_counter()
    losses: list[float] = []  # each user's mean loss in the current round

    def trained_copies(round_index: int) -> Iterator[dict[str, Tensor]]:
        # One user's copy at a time: average_state_dicts adds it to its running sum before the next trains.
        for user_index, rows in enumerate(user_rows):
            local = copy.deepcopy(sensor_encoder)
            local_history = train_sensor_epochs(
                local,
                windows[rows],
                targets[rows],
                local_config,
                seed=config.seed + 1000 * round_index + user_index,
            )
            losses.append(local_history["loss"])
            yield local.state_dict()

    for round_index in range(rounds):
        losses.clear()
        sensor_encoder.load_state_dict(average_state_dicts(trained_copies(round_index), sizes))
        history["loss"].append(float(np.average(losses, weights=sizes)))
    sensor_encoder.eval()
    history["seconds"] = time.perf_counter() - started
    return _summarise_history(history)


def evaluate_central(
    model_dir: Path,
    data_dir: Path,
    target: str,
    out_dir: Path,
    new_activities: list[str] | None = None,
    interpreter_kind: str = "rules",
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """Score a trained model on a target's held-out windows; new activities by their descriptions only."""
    torch_device = resolve_device(device)
    set_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = json.loads((model_dir / "split.json").read_text())
    vocabulary = load_vocabulary()
    encoder = TextEncoder.load(model_dir / "text_encoder").to(torch_device)
    sensor_encoder = SensorEncoder.load(model_dir / "sensor_encoder.pt").to(torch_device)
    descriptions = json.loads((model_dir / "descriptions.json").read_text())
    known = list(split["activities"])
    new_activities = [vocabulary.canonical(a) for a in (new_activities or [])]

    data, evaluated_on = _evaluation_windows(split, target, data_dir)
    missing = [a for a in new_activities if a not in data.label_names]
    if missing:
        raise DataError(f"--new-activities: {missing} not among the labels of '{target}': {data.label_names}")

    # The text path must read the texts the model was trained on.
    interpreter = _run_interpreter(
        interpreter_kind, split.get("simple_prompt", False), split.get("walking_frame", False)
    )
    unseen = [a for a in new_activities if a not in descriptions]
    if unseen:
        descriptions.update(describe_labels(interpreter, unseen, len(next(iter(descriptions.values())))))
    known_present = [a for a in known if a in data.label_names]
    result: dict = {
        "model": str(model_dir),
        "target": target,
        "evaluated_on": evaluated_on,
        "seed": seed,
        "known_activities": known_present,
        "new_activities": new_activities,
    }

    known_windows = data.select_activities(known_present)
    bank = label_bank(encoder, descriptions, known_present)
    known_embeddings = encode_windows(sensor_encoder, known_windows.X)
    text_predicted = _text_path_predictions(known_windows, bank, encoder, interpreter)
    scored, text_scored, agreement = _score_both_paths(
        known_windows, bank, known_embeddings, text_predicted, vocabulary
    )
    result.update(scored)
    plot_confusion(np.asarray(scored["confusion"]), known_present, out_dir / "confusion.png")
    result["text_path_accuracy"] = text_scored["accuracy"]
    result["text_path"] = text_scored
    result["path_agreement"] = agreement

    if new_activities:
        new_windows = data.select_activities(new_activities)
        result |= _new_activity_scores(
            new_windows,
            known_present,
            new_activities,
            encoder,
            sensor_encoder,
            descriptions,
            interpreter,
            vocabulary,
        )
    (out_dir / "metrics.json").write_text(json.dumps(jsonable(result), indent=2))
    return result


def _evaluation_windows(split: dict, target: str, data_dir: Path) -> tuple[WindowSet, str]:
    """The windows a model is scored on for `target`, and which they are: the held-out users of the run's
    target, the validation users of its source, or all of any other data set; in each user's walking frame
    when the model was trained in it."""
    data = rename_labels(load_dataset(target, data_dir), split.get("merge_labels", {}))
    if target == split["target"]:
        data = data.subset(np.flatnonzero(np.isin(data.user, split["target_eval_users"])))
        evaluated_on = f"held-out users {split['target_eval_users']} of '{target}'"
    elif target == split["source"]:
        data = data.subset(np.flatnonzero(np.isin(data.user, split["source_val_users"])))
        evaluated_on = f"source validation users {split['source_val_users']} of '{target}'"
    else:
        evaluated_on = f"all windows of '{target}' (never seen in training)"
    if split.get("walking_frame", False):  # read as the model was trained: each user's walking frame
        data = to_walking_frame(data)
    return data, evaluated_on


def _new_activity_scores(
    windows: WindowSet,
    known: list[str],
    new_activities: list[str],
    encoder: TextEncoder,
    sensor_encoder: SensorEncoder,
    descriptions: dict[str, list[str]],
    interpreter: Interpreter,
    vocabulary,
) -> dict:
    """Scores on the `windows` of activities the model never trained on, named by their descriptions only:
    among the new labels (both paths, and the sensor encoder's top 3) and among `known` + new labels."""
    new_bank = label_bank(encoder, descriptions, new_activities)
    embeddings = encode_windows(sensor_encoder, windows.X)
    text_predicted = _text_path_predictions(windows, new_bank, encoder, interpreter)
    # The same diagnostics as for the known labels, among the new ones: which new labels each path names.
    scored, text_scored, agreement = _score_both_paths(
        windows, new_bank, embeddings, text_predicted, vocabulary
    )
    truth = np.array([new_activities.index(t) for t in windows.labels()])
    top3 = np.argsort(-new_bank.scores(embeddings), axis=1)[:, :3]
    full_bank = label_bank(encoder, descriptions, known + new_activities)
    predicted = full_bank.predict(embeddings)
    return {
        "new_activity_accuracy": scored["accuracy"],
        "new_activity_top3": float(np.mean((top3 == truth[:, None]).any(axis=1))),
        "new_activity_chance": 1.0 / len(new_activities),
        "new_activity_windows": len(windows),
        "new_activity_accuracy_full_bank": float(np.mean(np.array(predicted) == np.array(windows.labels()))),
        "new_activity_paths": {"sensor": scored, "text_path": text_scored, "agreement": agreement},
    }


def _text_path_predictions(
    windows: WindowSet, bank: LabelBank, encoder: TextEncoder, interpreter: Interpreter
) -> list[str]:
    """The text path (interpretation -> text encoder -> nearest label): what stage 2 can reach through its
    targets."""
    texts = interpret_windows(windows, interpreter, bank.labels).texts
    return bank.predict(encoder.encode(texts))


def _score_both_paths(
    windows: WindowSet,
    bank: LabelBank,
    embeddings: np.ndarray,
    text_predicted: list[str],
    vocabulary,
) -> tuple[dict, dict, float]:
    """Scores of the sensor encoder (its `embeddings`, scored against `bank`) and of the text path on the
    same windows, and the fraction of windows where both name the same label."""
    sensor, sensor_pred = _sensor_metrics(windows, bank, embeddings, vocabulary)
    text = classification_metrics(windows.labels(), text_predicted, bank.labels, vocabulary.category)
    text = {key: text[key] for key in ("accuracy", "macro_f1", "labels", "confusion", "per_class")}
    agreement = float(np.mean(np.asarray(sensor_pred) == np.asarray(text_predicted)))
    return sensor, text, agreement


def _sensor_metrics(
    windows: WindowSet, bank: LabelBank, embeddings: np.ndarray, vocabulary
) -> tuple[dict, list[str]]:
    """Scores of the sensor encoder's `embeddings` against `bank`, and the label it names for each window."""
    predicted = bank.predict(embeddings)
    return classification_metrics(windows.labels(), predicted, bank.labels, vocabulary.category), predicted


def _summarise_history(history: dict) -> dict:
    """Histories can be long per-step lists: keep the first/last values and the length."""
    summary = {}
    for key, value in history.items():
        if isinstance(value, list) and value and isinstance(value[0], int | float):
            summary[key] = {"first": value[0], "last": value[-1], "n": len(value)}
        else:
            summary[key] = value
    return summary
