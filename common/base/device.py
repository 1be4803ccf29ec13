"""Which compute device runs the models: "auto" (CUDA when present, else the CPU), "cpu", "cuda" or "cuda:N".

Models are moved once, by whoever builds them (`model.to(device)`); the training and encoding loops then put
every batch on the device of the model they are given (`module_device`), so no function below the caller
needs a device argument. On CUDA the forward passes run under bf16 autocast (`autocast`): matrix products in
bfloat16, softmax, cross-entropy and normalisation in float32, so losses and embeddings keep float32 accuracy.
On the CPU everything stays float32, even where the CPU has bf16 instructions: bf16 training steps were 1.6x
faster there but cost the default demo its floor (docs/results/speed, "bf16 training on the CPU").
"""

from __future__ import annotations

import contextlib
import re

import torch
from torch import nn

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """A device was asked for that this machine does not have, or is not a device name at all."""


def resolve_device(spec: str = "auto") -> torch.device:
    """The torch.device for `spec`; a CUDA device this machine lacks is an error, never a silent CPU run."""
    name = str(spec).strip().lower()
    if not _DEVICE_PATTERN.match(name):
        raise DeviceError(f"device {spec!r}: not a device name; choose {DEVICE_CHOICES}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r}: CUDA is not available on this machine (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}); use --device cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"numbered from 0"
            )
    return device


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
