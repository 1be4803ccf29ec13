"""Clipping a model update to an L2 norm: the one computation central DP (both sides) and local DP share."""

from __future__ import annotations

import numpy as np


def clip_update(update: dict[str, np.ndarray], clipping_norm: float) -> dict[str, np.ndarray]:
    """`update` (float64 arrays) scaled down to L2 norm `clipping_norm` over all its tensors if longer; a zero
    update stays zero."""
    norm = float(np.sqrt(sum(float(np.sum(part * part)) for part in update.values())))
    scale = min(1.0, clipping_norm / norm) if norm > 0 else 1.0
    return {key: part * scale for key, part in update.items()}
