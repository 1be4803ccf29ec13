"""Run one method on one source->target pair and return one uniform record.

Every method is scored on the same windows: the target's held-out users of `simulations.central.load_pair`
(LanHAR's stage 2 sees the other target users' windows, unlabeled; the baselines never see the target).

    record = run_method("lanhar", config, data_dir, out_dir)
    record["accuracy"], record["macro_f1"], record["category_accuracy"], record["seconds"], record["config"]

`confusion` (rows = true label, columns = predicted, in `labels` order) and `per_class` are the method's own;
LanHAR records add the text path's (`text_path`), its accuracy and the two paths' agreement.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from common.data.errors import DataError
from simulations.baselines import NLS_VARIANTS, train_nls, train_supervised
from simulations.central import CentralConfig, evaluate_central, train_central

SUPERVISED = ("transformer", "cnn")
NLS = tuple(f"nls-{variant}" for variant in NLS_VARIANTS)
METHODS = ("lanhar", *SUPERVISED, *NLS)
METHOD_NAMES = {
    "lanhar": "LanHAR",
    "transformer": "Transformer (supervised)",
    "cnn": "1D-CNN (supervised)",
    "nls-base": "NLS-HAR (template)",
    "nls-diverse": "NLS-HAR (diverse templates)",
    "nls-knowledge": "NLS-HAR (templates + knowledge)",
}
# Keys of classification_metrics (common/base/metrics.py) carried into every record.
SCORES = ("accuracy", "macro_f1", "category_accuracy", "n", "labels", "confusion", "per_class")


def check_methods(methods: tuple[str, ...] | list[str], where: str) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DataError(f"{where}: unknown methods {unknown}; known: {list(METHODS)}")


def run_method(
    method: str,
    config: CentralConfig,
    data_dir: Path,
    out_dir: Path,
    new_activities: list[str] | None = None,
    keep_models: bool = False,
    text_space_cache: Path | None = None,
) -> dict[str, Any]:
    """Train `method` on the pair of `config`, score it; `new_activities` also scores those target labels.

    `text_space_cache`: where LanHAR stores and reuses stage-1 text encoders (text_space_cache.py).
    """
    started = time.monotonic()
    if method == "lanhar":
        record = _run_lanhar(config, data_dir, out_dir, new_activities, keep_models, text_space_cache)
    elif method in SUPERVISED:
        metrics = train_supervised(config, data_dir, out_dir, method)
        record = {key: metrics[key] for key in (*SCORES, "source_val_accuracy")}
    elif method in NLS:
        metrics = train_nls(config, data_dir, out_dir, method.removeprefix("nls-"), new_activities)
        record = {key: metrics[key] for key in (*SCORES, "source_val_accuracy")}
        record["new_activities"] = metrics.get("new_activities")
    else:
        raise DataError(f"method '{method}' unknown; known: {list(METHODS)}")
    return {
        "method": method,
        "source": config.source,
        "target": config.target,
        **record,
        "seconds": time.monotonic() - started,
        "out_dir": str(out_dir),
        "config": config.resolved(),
    }


def _run_lanhar(
    config: CentralConfig,
    data_dir: Path,
    out_dir: Path,
    new_activities: list[str] | None,
    keep_models: bool,
    text_space_cache: Path | None,
) -> dict[str, Any]:
    model_dir = out_dir / "model"
    training = train_central(config, data_dir, model_dir, progress=False, text_space_cache=text_space_cache)
    evaluation = evaluate_central(
        model_dir,
        data_dir,
        config.target,
        out_dir / "eval",
        new_activities=new_activities,
        interpreter_kind=config.interpreter,
        seed=config.seed,
        device=config.device,
    )
    if not keep_models:  # the fine-tuned text encoder is ~90 MB per run; the sensor model and bank stay
        shutil.rmtree(model_dir / "text_encoder", ignore_errors=True)
    # Diagnostics on the same windows: the text path (rules interpretation -> fine-tuned text encoder ->
    # nearest label; its confusion and per-class scores) and its agreement with the sensor encoder (the
    # fraction of windows where both predict the same label).
    record = {key: evaluation[key] for key in (*SCORES, "text_path_accuracy", "text_path", "path_agreement")}
    record |= {
        "source_val_accuracy": training["source_val"]["accuracy"],
        "train_seconds": training["seconds"],
        "stage1_reused": training["stage1"].get("reused"),
        "distinct_interpretations": training["distinct_interpretations"],
        "regeneration": training["regeneration"],
        "windows": training["windows"],
    }
    if new_activities:
        paths = evaluation["new_activity_paths"]
        record["new_activities"] = {
            "labels": evaluation["new_activities"],
            "windows": evaluation["new_activity_windows"],
            "accuracy_among_new": evaluation["new_activity_accuracy"],
            "top3_among_new": evaluation["new_activity_top3"],
            "accuracy_full_bank": evaluation["new_activity_accuracy_full_bank"],
            "chance": evaluation["new_activity_chance"],
            # Diagnostics among the new labels, as for the known ones: the text path on the same windows, the
            # agreement of the two paths, and per-label confusions of both.
            "text_path_accuracy_among_new": paths["text_path"]["accuracy"],
            "path_agreement": paths["agreement"],
            "sensor": {key: paths["sensor"][key] for key in ("macro_f1", "confusion", "per_class")},
            "text_path": paths["text_path"],
        }
    return record
