"""Client-side privacy and fault knobs, configured from the run config at message time (not at import)."""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod

from client.device_client import window_summaries
from common.federation.partition import ClientData
from common.federation.run_config import FederationConfig


class InjectedFailure(RuntimeError):
    """A client failure injected on purpose (run config `failure-rate`)."""


def privacy_mod(config_of, msg: Message, context: Context, call_next) -> Message:
    """A mod on the train handler: Flower's DP mod for the run's dp-mode. "central": `fixedclipping_mod`
    clips the update to dp-clipping-norm (the server adds the noise); "local": `LocalDpMod` clips and noises
    it on the device before upload; "none" passes. `config_of(context)` gives the FederationConfig."""
    config: FederationConfig = config_of(context)
    if config.dp_mode == "central":
        return fixedclipping_mod(msg, context, call_next)
    if config.dp_mode == "local":
        local_dp = LocalDpMod(
            clipping_norm=config.dp_clipping_norm,
            sensitivity=config.dp_clipping_norm,
            epsilon=config.dp_epsilon,
            delta=config.dp_delta,
        )
        return local_dp(msg, context, call_next)
    return call_next(msg, context)


def perturb_summaries(features: np.ndarray, relative_std: float, seed: int) -> np.ndarray:
    """features * (1 + N(0, relative_std)): each value blurred in proportion to its size, units kept.

    A privacy *knob* for studies, not a formal DP guarantee (there is no bounded sensitivity here).
    """
    if relative_std <= 0:
        return features
    rng = np.random.default_rng(seed)
    return (features * (1.0 + relative_std * rng.standard_normal(features.shape))).astype(np.float32)


def uploaded_summaries(data: ClientData, config: FederationConfig) -> dict[str, np.ndarray]:
    """What the summaries phase uploads in the default mode: the analysis features of the training windows
    ("features") and of the evaluation windows ("eval-features"), each blurred by `summary-noise` if set.

    The client sends exactly these; the privacy audit (simulations/experiments/privacy_audit.py) calls this
    function to see what the server received.
    """
    seed = config.seed + data.spec.partition_id
    arrays = {}
    if data.trains:
        arrays["features"] = perturb_summaries(window_summaries(data.train), config.summary_noise, seed=seed)
    if data.evaluates:  # interpreted by the server for the text path; labels stay
        arrays["eval-features"] = perturb_summaries(
            window_summaries(data.eval), config.summary_noise, seed=seed + 1_000_003
        )
    return arrays


def maybe_fail(config: FederationConfig, phase: str, server_round: int, partition_id: int) -> None:
    """Injected failure for fault studies (failure-rate), reproducible per seed, round and client."""
    if config.failure_rate <= 0:
        return
    rng = np.random.default_rng([config.seed, server_round, partition_id, len(phase)])
    if rng.random() < config.failure_rate:
        raise InjectedFailure(
            f"injected {phase} failure (failure-rate {config.failure_rate}) round {server_round}"
        )
