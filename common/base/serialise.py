"""JSON of run records: numpy scalars and arrays, paths and torch devices as plain values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def jsonable(value: Any) -> Any:
    """`value` with plain values only, for `json.dumps`: numpy scalars and arrays become numbers and lists,
    paths and torch devices strings, keys strings. NaN and infinities become null (strict JSON: a missing or
    undefined number is null, and every JSON parser reads the file)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path | torch.device):
        return str(value)
    return value


__all__ = ["jsonable"]
