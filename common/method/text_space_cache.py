"""Stage 1 trained once per set of inputs: a directory of text spaces keyed by everything they depend on.

Stage 1 reads the source side only (its interpretations, labels and label descriptions), so every target of
one source, every protocol with the same stage-1 settings, and every federation that differs only in what the
clients do (privacy, sampling, device mix) trains the same text space. A cache directory holds each trained
text encoder under its `stage1_key`; a later run with the same key loads it instead of training it again, and
gets the same encoder to the last bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

from common.base.device import module_device
from common.base.serialise import jsonable
from common.data.labels import LabelVocabulary
from common.method.lanhar import train_text_space
from common.method.train import TextTrainConfig
from common.models.text_encoder import TextEncoder

log = logging.getLogger("fedlanhar.method")


def stage1_key(
    encoder: TextEncoder,
    texts: list[str],
    labels: list[str],
    descriptions: dict[str, list[str]],
    text_config: TextTrainConfig,
) -> str:
    """Content key of a stage-1 run: everything the trained text encoder depends on, and nothing else."""
    inputs = {
        # What the encoder is, not where it is installed: a checkout with its own .venv reuses the cache.
        "encoder": encoder.content_digest(),
        "max_length": encoder.max_length,
        "texts": texts,
        "labels": labels,
        "descriptions": descriptions,
        "config": dataclasses.asdict(text_config),
    }
    if encoder.device.type == "cuda":  # trained under bf16 autocast (common/base/device.py): not the CPU's
        inputs["training_precision"] = "bf16"
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "stage1-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def _save(encoder: TextEncoder, history: dict, directory: Path) -> None:
    """Write the trained text encoder whole or not at all (a crash mid-save must not look like a hit)."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    encoder.save(partial / "text_encoder")
    (partial / "stage1.json").write_text(json.dumps(jsonable(history), indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)


def train_or_reuse_text_space(
    encoder: TextEncoder,
    texts: list[str],
    labels: list[str],
    descriptions: dict[str, list[str]],
    vocabulary: LabelVocabulary,
    text_config: TextTrainConfig,
    cache: Path | None,
    progress: bool = False,
) -> tuple[TextEncoder, dict]:
    """Stage 1 (common.method.lanhar.train_text_space) on these inputs, or the text encoder that a run with
    the same inputs left in `cache`: (the trained encoder, its history; "reused" names the entry on a hit).
    Without `cache` it always trains. `encoder` is trained in place on a miss."""
    entry = cache / stage1_key(encoder, texts, labels, descriptions, text_config) if cache else None
    if entry is not None and (entry / "stage1.json").exists():
        log.info("stage 1: reusing the text space trained on the same inputs in %s", entry)
        reused = TextEncoder.load(entry / "text_encoder").to(module_device(encoder))
        return reused, json.loads((entry / "stage1.json").read_text()) | {"reused": str(entry)}
    history = train_text_space(
        encoder, texts, labels, descriptions, vocabulary, text_config, progress=progress
    )
    if entry is not None:
        _save(encoder, history, entry)
    return encoder, history


__all__ = ["stage1_key", "train_or_reuse_text_space"]
