"""Per-round server checkpoints, so an interrupted federated run resumes where it stopped.

A checkpoint holds everything the next round depends on: the global sensor encoder, the strategy's own state
(FedAdam's moments, the DP accountant), the label-bank state, the sampling RNG and the metrics so far. The
stage-1 text encoder is saved once in `<out>/text_encoder` and reloaded on resume; clients recompute their
targets from it, which is deterministic. Files are written to a temporary name and renamed, so a kill during
writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pkl"
# Attributes of Flower strategies that carry state from round to round (FedOpt family, DP wrappers). The DP
# accountant is saved through its own state_dict (it holds unpicklable backend modules).
STRATEGY_STATE = ("current_arrays", "m_t", "v_t", "_pending_events")


@dataclass
class ServerState:
    completed_round: int
    arrays: dict[str, np.ndarray]  # the global sensor encoder after `completed_round`
    labels: list[str]
    new_labels: list[str]
    bank_version: int
    rng_state: dict
    rounds: list[dict]
    failures: list[dict]
    strategy_state: dict = field(default_factory=dict)
    traffic_totals: dict = field(default_factory=dict)


def strategy_state(strategy) -> dict:
    """The round-to-round state of a (possibly DP-wrapped) Flower strategy."""
    state = {name: getattr(strategy, name) for name in STRATEGY_STATE if hasattr(strategy, name)}
    if getattr(strategy, "accountant", None) is not None:
        state["accountant"] = strategy.accountant.state_dict()
    inner = getattr(strategy, "strategy", None)  # DP wrappers hold the real strategy
    if inner is not None:
        state["inner"] = strategy_state(inner)
    return state


def restore_strategy_state(strategy, state: dict) -> None:
    for name, value in state.items():
        if name == "inner":
            restore_strategy_state(strategy.strategy, value)
        elif name == "accountant":
            strategy.accountant.load_state_dict(value)
        else:
            setattr(strategy, name, value)


def save_checkpoint(out_dir: Path, state: ServerState) -> Path:
    directory = out_dir / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return path


def load_checkpoint(out_dir: Path) -> ServerState:
    path = out_dir / CHECKPOINT_DIR / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"resume: no checkpoint at {path}; run once without resume=true first")
    with open(path, "rb") as handle:
        state = pickle.load(handle)  # our own file, written by save_checkpoint
    if not isinstance(state, ServerState):
        raise ValueError(f"resume: {path} is not a FedLanHAR server checkpoint")
    return state
