"""Source-only baselines on exactly LanHAR's split (`fedlanhar baseline`, `fedlanhar experiment baselines`).

Supervised: `transformer` is the sensor encoder itself (same size, same input normalisation) with a linear
classifier; `cnn` is a DCNN-style 1D CNN. Both train on the source's training users with cross-entropy.
Language-supervised: NLS-HAR (`train_nls`), the same sensor encoder trained against activity sentences.
All of them early-stop on the source's validation users and are scored on the target's held-out users
(`simulations.central.load_pair`), the windows LanHAR is scored on.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.base.device import module_device, resolve_device
from common.base.metrics import classification_metrics
from common.base.runtime import set_seed
from common.data.errors import DataError
from common.data.label_spaces import rename_labels
from common.data.labels import load_vocabulary
from common.data.loading import load_dataset
from common.data.windows import WindowSet
from common.language.knowledge import describe_label
from common.models.losses import InfoNCELoss, same_group_mask
from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig, encode_windows
from common.models.text_encoder import TextEncoder
from common.models.zero_shot import build_label_bank
from simulations.central import CentralConfig, central_config, load_pair

EPOCHS = {"small": 8, "default": 30, "full": 60}
PATIENCE = 7


class TransformerClassifier(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        # The supervised baseline reads the raw window only, as in the papers' Transformer baseline.
        self.encoder = SensorEncoder(SensorEncoderConfig(analysis_token=False))
        self.head = nn.Linear(self.encoder.config.out_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class CNNClassifier(nn.Module):
    """Three conv blocks over time (DCNN-style), acc scaled to g like the sensor encoder's input."""

    def __init__(self, num_classes: int, channels: int = 6, width: int = 64) -> None:
        super().__init__()
        blocks, in_channels = [], channels
        for _ in range(3):
            blocks += [
                nn.Conv1d(in_channels, width, 5, padding=2),
                nn.BatchNorm1d(width),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
            in_channels = width
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.tensor([9.80665] * 3 + [1.0] * 3, dtype=x.dtype, device=x.device)
        return self.head(self.features((x / scale).transpose(1, 2)))


def _predict(model: nn.Module, X: np.ndarray) -> np.ndarray:
    model.eval()
    device = module_device(model)
    with torch.no_grad():
        return np.concatenate(
            [
                model(torch.from_numpy(X[i : i + 512]).to(device)).argmax(1).cpu().numpy()
                for i in range(0, len(X), 512)
            ]
        )


def run_supervised_baseline(
    data_dir: Path,
    source: str,
    target: str,
    activities: list[str],
    budget: str,
    out_dir: Path,
    seed: int = 0,
    model: str = "transformer",
    device: str = "auto",
) -> dict:
    config = central_config(
        budget, source=source, target=target, activities=activities, seed=seed, device=device
    )
    return train_supervised(config, data_dir, out_dir, model)


def train_supervised(
    config: CentralConfig, data_dir: Path, out_dir: Path, model: str = "transformer"
) -> dict:
    """Cross-entropy on the source's labeled training users; scored on the target's held-out users."""
    if model not in ("transformer", "cnn"):
        raise DataError(f"supervised baseline '{model}' unknown; use transformer or cnn")
    seed, budget = config.seed, config.budget
    set_seed(seed)
    started = time.monotonic()
    splits = load_pair(config, data_dir)
    labels = splits["source_train"].label_names
    device = resolve_device(config.device)
    classifier: nn.Module = (
        TransformerClassifier(len(labels)) if model == "transformer" else CNNClassifier(len(labels))
    ).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3 if model == "cnn" else 3e-4)
    X, y = splits["source_train"].X, splits["source_train"].y
    stopping = EarlyStopping(classifier)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS[budget]):
        classifier.train()
        for batch in torch.randperm(len(X), generator=generator).split(64):
            windows = torch.from_numpy(X[batch.numpy()]).to(device)
            loss = nn.functional.cross_entropy(
                classifier(windows), torch.from_numpy(y[batch.numpy()]).to(device)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy = float(np.mean(_predict(classifier, splits["source_val"].X) == splits["source_val"].y))
        if stopping.stop(accuracy):
            break
    classifier.load_state_dict(stopping.best_state)
    held_out = splits["target_eval"]
    predicted = [labels[i] for i in _predict(classifier, held_out.X)]
    metrics = classification_metrics(held_out.labels(), predicted, labels, load_vocabulary().category)
    metrics |= {
        "baseline": model,
        "source_val_accuracy": stopping.best_accuracy,
        "seed": seed,
        "seconds": time.monotonic() - started,
        "config": config.resolved() | {"baseline": model, "epochs": EPOCHS[budget]},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


class EarlyStopping:
    """Keeps the best validation accuracy's weights; stop() says when PATIENCE epochs brought none better."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.best_accuracy, self.waited = model, -1.0, 0
        self.best_state = copy.deepcopy(model.state_dict())

    def stop(self, accuracy: float) -> bool:
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.waited = accuracy, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.waited += 1
        return self.waited >= PATIENCE


# ------------------------------------------------------------------------------------------------------------
# NLS-HAR (Haresamudram et al., natural language supervision for HAR)
#
# CLIP-style training of the same sensor encoder against the frozen text encoder's embeddings of activity
# sentences, on the source's labels only; zero-shot by cosine similarity to each label's mean sentence
# embedding. The paper's three ways to write the sentences (NLS_VARIANTS):
#   base       its one template, NLS_BASE_TEMPLATE
#   diverse    eight differently worded templates (the paper has an LLM write them; here they are fixed)
#   knowledge  the diverse templates, each followed by one of the activity's common.language.knowledge texts
# Windows of the same label are positives of each other (the paper's plain CLIP batches count them as
# negatives; this only helps the baseline). The temperature is fixed at LanHAR's instead of learned, and the
# text side has no projection head: the sensor encoder maps into the text space, like LanHAR's stage 2.

NLS_VARIANTS = ("base", "diverse", "knowledge")
NLS_BASE_TEMPLATE = "This is wearable sensor data for a person engaged in {activity}"
NLS_TEMPLATES = (
    NLS_BASE_TEMPLATE,
    "A person is {activity} while wearing a motion sensor.",
    "The accelerometer and gyroscope recorded someone {activity}.",
    "Inertial measurements captured while a person was {activity}.",
    "Body-worn sensor readings of a human {activity}.",
    "A wearable device measured the movement of a person {activity}.",
    "IMU signals of an individual who is {activity}.",
    "Motion data of a subject during the activity: {activity}.",
)
# Label names that do not read as an activity inside a sentence.
NLS_ACTIVITY_PHRASES = {
    "upstairs": "walking upstairs",
    "downstairs": "walking downstairs",
    "stairs": "walking up and down stairs",
}
NLS_LR = 3e-4
NLS_BATCH_SIZE = 64


def nls_sentences(labels: list[str], variant: str) -> dict[str, list[str]]:
    """The activity sentences of each label for an NLS-HAR variant."""
    if variant not in NLS_VARIANTS:
        raise DataError(f"NLS-HAR variant '{variant}' unknown; use one of {NLS_VARIANTS}")
    sentences: dict[str, list[str]] = {}
    for label in labels:
        activity = NLS_ACTIVITY_PHRASES.get(label, label)
        if variant == "base":
            sentences[label] = [NLS_BASE_TEMPLATE.format(activity=activity)]
        elif variant == "diverse":
            sentences[label] = [template.format(activity=activity) for template in NLS_TEMPLATES]
        else:
            knowledge = describe_label(label, len(NLS_TEMPLATES))
            sentences[label] = [
                f"{template.format(activity=activity).rstrip('.')}. {description}"
                for template, description in zip(NLS_TEMPLATES, knowledge, strict=True)
            ]
    return sentences


def train_nls(
    config: CentralConfig,
    data_dir: Path,
    out_dir: Path,
    variant: str = "knowledge",
    new_activities: list[str] | None = None,
) -> dict:
    """NLS-HAR on the source's labeled training users, zero-shot on the target's held-out users.

    With `new_activities`, the held-out users' windows of those target activities are also scored among the
    new labels only (their sentences are written the same way; the model never saw them).
    """
    set_seed(config.seed)
    started = time.monotonic()
    splits = load_pair(config, data_dir)
    labels = splits["source_train"].label_names
    vocabulary = load_vocabulary()
    device = resolve_device(config.device)
    encoder = TextEncoder(config.text_encoder).to(device)
    sentences = nls_sentences(labels, variant)
    # All sentences in one matrix, label after label: label c owns rows first[c] .. first[c] + counts[c] - 1.
    all_sentences = [sentence for label in labels for sentence in sentences[label]]
    embeddings = torch.from_numpy(encoder.encode(all_sentences)).to(device)
    counts = torch.tensor([len(sentences[label]) for label in labels], device=device)
    first = torch.cumsum(counts, 0) - counts
    bank = build_label_bank(encoder, sentences)

    # NLS-HAR's sensor encoder reads the raw window only (its paper): no LanHAR analysis token.
    model = SensorEncoder(SensorEncoderConfig(out_dim=encoder.dim, analysis_token=False)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=NLS_LR, weight_decay=0.01)
    criterion = InfoNCELoss(config.temperature)
    X = torch.from_numpy(splits["source_train"].X).to(device)
    y = torch.from_numpy(splits["source_train"].y).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    stopping, epochs_run = EarlyStopping(model), 0
    for _ in range(EPOCHS[config.budget]):
        model.train()
        for batch in torch.randperm(len(X), generator=generator).split(NLS_BATCH_SIZE):
            if len(batch) < 2:
                continue
            # A fresh sentence of its label for every window (the text-side augmentation of NLS-HAR).
            c = y[batch]
            pick = first[c] + (torch.rand(len(batch), generator=generator).to(device) * counts[c]).long()
            loss = criterion(model(X[batch]), embeddings[pick], same_group_mask(c))["loss"]
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        epochs_run += 1
        val = splits["source_val"]
        if stopping.stop(float(np.mean(bank.classify(encode_windows(model, val.X)) == val.y))):
            break
    model.load_state_dict(stopping.best_state)

    held_out = splits["target_eval"]
    predicted = bank.predict(encode_windows(model, held_out.X))
    metrics = classification_metrics(held_out.labels(), predicted, labels, vocabulary.category)
    if new_activities:
        metrics["new_activities"] = _score_new_activities(
            model, encoder, config, data_dir, held_out, new_activities, variant
        )
    metrics |= {
        "baseline": f"nls-{variant}",
        "source_val_accuracy": stopping.best_accuracy,
        "epochs_run": epochs_run,
        "sentences": sentences,
        "seed": config.seed,
        "seconds": time.monotonic() - started,
        "config": config.resolved()
        | {"baseline": f"nls-{variant}", "epochs": EPOCHS[config.budget], "lr": NLS_LR},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def _score_new_activities(
    model: SensorEncoder,
    encoder: TextEncoder,
    config: CentralConfig,
    data_dir: Path,
    held_out: WindowSet,
    new_activities: list[str],
    variant: str,
) -> dict:
    """Accuracy and top-3 among the new labels on the held-out users' windows of those activities."""
    target = rename_labels(load_dataset(config.target, data_dir), config.merge_labels)
    users = np.unique(held_out.user)
    windows = target.subset(np.isin(target.user, users)).select_activities(new_activities)
    bank = build_label_bank(encoder, nls_sentences(windows.label_names, variant))
    scores = bank.scores(encode_windows(model, windows.X))
    truth = windows.y  # an index into windows.label_names, the bank's label order
    top3 = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    return {
        "labels": windows.label_names,
        "windows": len(windows),
        "accuracy_among_new": float(np.mean(scores.argmax(axis=1) == truth)),
        "top3_among_new": float(np.mean((top3 == truth[:, None]).any(axis=1))),
        "chance": 1.0 / len(new_activities),
    }
