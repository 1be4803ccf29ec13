"""Process-wide knobs: reproducible seeds and the number of CPU threads torch may use."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed Python's `random`, numpy's global generator and torch (CPU and any accelerator)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_torch_threads(n: int) -> int:
    """Let torch use `n` intra-op threads (and as many inter-op threads when still allowed); returns n.

    The machine is shared: an unbounded torch grabs every core. Inter-op threads can only be set before the
    first parallel op runs, so a late call silently keeps the existing inter-op pool.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass  # already fixed by earlier parallel work; intra-op threads are what matter for these models
    os.environ["OMP_NUM_THREADS"] = str(n)  # for child processes (Flower simulation workers)
    return n


def configure_logging(verbose: bool = True) -> logging.Logger:
    """FedLanHAR's own log lines on stderr, without raising every library's loggers (httpx, Ray) to INFO."""
    logger = logging.getLogger("fedlanhar")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    return logger
