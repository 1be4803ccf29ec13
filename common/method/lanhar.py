"""LanHAR's steps as plain functions, shared by the central pipeline and the federated server.

1. interpret: windows -> analysis features -> interpretation texts (rules or an LLM), optional re-generation
2. text space: label descriptions + stage-1 training of the text encoder on the labeled source
3. targets: Z = text encoder(interpretations), the sensor encoder's regression targets (stage 2)
4. label bank: label-description embeddings averaged into one prototype per label

`to_walking_frame` turns a data set's windows into each wearer's walking frame (CentralConfig.walking_frame),
so that the rules interpreter and the sensor encoder can read the body segment's inclination.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.data.features import analyze_windows
from common.data.labels import LabelVocabulary
from common.data.posture import walking_frame
from common.data.windows import WindowSet
from common.language.interpreter import Interpreter
from common.language.prompts import SensorContext
from common.language.regeneration import RegenerationConfig, RegenerationReport, regenerate
from common.language.rules import rhythmic_movement
from common.method.train import TextTrainConfig, train_text_encoder
from common.models.text_encoder import TextEncoder
from common.models.zero_shot import LabelBank, build_label_bank

log = logging.getLogger("fedlanhar")


def sensor_context(ws: WindowSet, candidate_activities: Sequence[str]) -> SensorContext:
    """Part (i) of the sensor prompt, from what the data set says about its recording."""
    return SensorContext(
        sampling_rate=ws.sampling_rate,
        position=ws.position,
        device=ws.device,
        candidate_activities=list(candidate_activities),
        has_gyro=ws.has_gyro,
    )


def to_walking_frame(ws: WindowSet) -> WindowSet:
    """`ws` with each user's windows turned so that the user's walking posture is the device's +z axis.

    The reference is the most common posture of the windows the rules interpreter words as rhythmic
    movement (`rhythmic_movement`); no label is read. Rotation-invariant quantities do not change; tilt_z
    becomes the segment's inclination.
    """
    features = analyze_windows(ws.X, sampling_rate=ws.sampling_rate, has_gyro=ws.has_gyro)
    return walking_frame(ws, features, rhythmic_movement(features))


@dataclass
class Interpretations:
    features: np.ndarray  # [N, F]
    texts: list[str]
    regeneration: RegenerationReport | None = None
    context: SensorContext | None = None


def interpret_windows(
    ws: WindowSet,
    interpreter: Interpreter,
    candidate_activities: Sequence[str],
    raw_prompt_mode: bool = False,
    features: np.ndarray | None = None,
) -> Interpretations:
    """Interpretation text per window. `features` may come precomputed (a client's uploaded summaries)."""
    if features is None:
        features = analyze_windows(ws.X, sampling_rate=ws.sampling_rate, has_gyro=ws.has_gyro)
    context = sensor_context(ws, candidate_activities)
    texts = interpreter.interpret(features, context, windows=ws.X if raw_prompt_mode else None)
    return Interpretations(features=features, texts=texts, context=context)


def regenerate_interpretations(
    interpretations: Interpretations,
    groups: np.ndarray,
    interpreter: Interpreter,
    encoder: TextEncoder,
    config: RegenerationConfig,
) -> Interpretations:
    """The paper's iterative re-generation, per activity group, in the encoder's embedding space."""
    texts, report = regenerate(
        interpretations.texts,
        groups,
        interpretations.features,
        interpretations.context,
        interpreter,
        embed=encoder.encode,
        config=config,
    )
    log.info("re-generation: %.1f%% of interpretations re-generated", 100 * report.fraction_regenerated)
    return Interpretations(interpretations.features, texts, report, interpretations.context)


def describe_labels(interpreter: Interpreter, labels: Sequence[str], per_label: int) -> dict[str, list[str]]:
    descriptions = interpreter.describe_labels(list(labels), per_label)
    missing = [label for label in labels if not descriptions.get(label)]
    if missing:
        raise ValueError(f"interpreter '{interpreter.name}' returned no description for labels {missing}")
    return descriptions


def train_text_space(
    encoder: TextEncoder,
    source_texts: list[str],
    source_labels: list[str],
    descriptions: dict[str, list[str]],
    vocabulary: LabelVocabulary,
    config: TextTrainConfig,
    progress: bool = True,
) -> dict:
    """Stage 1: align the source interpretations with their labels' descriptions (in place on `encoder`)."""
    return train_text_encoder(
        encoder,
        source_texts,
        source_labels,
        {label: descriptions[label] for label in sorted(set(source_labels))},
        vocabulary.category,
        config,
        progress=progress,
    )


def label_bank(encoder: TextEncoder, descriptions: dict[str, list[str]], labels: Sequence[str]) -> LabelBank:
    return build_label_bank(encoder, {label: descriptions[label] for label in labels})
