"""Source-only supervised baselines on exactly LanHAR's split (`fedlanhar baseline`).

`transformer` is the sensor encoder itself (same size, same input normalisation) with a linear classifier;
`cnn` is a DCNN-style 1D CNN. Both train on the source's training users with cross-entropy, early-stop on the
source's validation users, and are scored on the target's held-out users (`simulations.central.load_pair`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.labels import load_vocabulary
from common.metrics import classification_metrics
from common.runtime import set_seed
from common.sensor_encoder import SensorEncoder, SensorEncoderConfig
from simulations.central import central_config, load_pair

EPOCHS = {"small": 8, "default": 30, "full": 60}
PATIENCE = 7


class TransformerClassifier(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.encoder = SensorEncoder(SensorEncoderConfig())
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
        scale = torch.tensor([9.80665] * 3 + [1.0] * 3, dtype=x.dtype)
        return self.head(self.features((x / scale).transpose(1, 2)))


def _predict(model: nn.Module, X: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [model(torch.from_numpy(X[i : i + 512])).argmax(1).numpy() for i in range(0, len(X), 512)]
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
) -> dict:
    config = central_config(budget, source=source, target=target, activities=activities, seed=seed)
    set_seed(seed)
    splits = load_pair(config, data_dir)
    labels = splits["source_train"].label_names
    classifier: nn.Module = (
        TransformerClassifier(len(labels)) if model == "transformer" else CNNClassifier(len(labels))
    )
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3 if model == "cnn" else 3e-4)
    X, y = splits["source_train"].X, splits["source_train"].y
    best, best_accuracy, waited = copy.deepcopy(classifier.state_dict()), -1.0, 0
    generator = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS[budget]):
        classifier.train()
        for batch in torch.randperm(len(X), generator=generator).split(64):
            loss = nn.functional.cross_entropy(
                classifier(torch.from_numpy(X[batch.numpy()])), torch.from_numpy(y[batch.numpy()])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy = float(np.mean(_predict(classifier, splits["source_val"].X) == splits["source_val"].y))
        if accuracy > best_accuracy:
            best, best_accuracy, waited = copy.deepcopy(classifier.state_dict()), accuracy, 0
        else:
            waited += 1
            if waited >= PATIENCE:
                break
    classifier.load_state_dict(best)
    held_out = splits["target_eval"]
    predicted = [labels[i] for i in _predict(classifier, held_out.X)]
    metrics = classification_metrics(held_out.labels(), predicted, labels, load_vocabulary().category)
    metrics.update(
        {
            "baseline": model,
            "source_val_accuracy": best_accuracy,
            "seed": seed,
            "config": config.resolved() | {"baseline": model, "epochs": EPOCHS[budget]},
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics
