"""JSON of run records: numpy scalars and arrays, paths and torch devices as plain values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def json_default(value: object) -> object:
    """`json.dumps(..., default=json_default)`: what JSON cannot hold as is; anything else is an error."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path | torch.device):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["json_default"]
