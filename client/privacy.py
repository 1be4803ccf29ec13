"""Client-side privacy and fault knobs, configured from the run config at message time (not at import)."""

from __future__ import annotations

import secrets

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from client.device_client import window_summaries
from common.federation.clipping import clip_update
from common.federation.local_dp import clip_and_noise, local_noise_std
from common.federation.partition import ClientData
from common.federation.run_config import FederationConfig


class InjectedFailure(RuntimeError):
    """A client failure injected on purpose (run config `failure-rate`)."""


def privacy_mod(config_of, msg: Message, context: Context, call_next) -> Message:
    """A mod on the train handler for the run's dp-mode. "central": Flower's `fixedclipping_mod` clips the
    update to dp-clipping-norm (the server adds the noise); "local": `local_dp_mod` clips and noises it on
    the device before upload; "none" passes. `config_of(context)` gives the FederationConfig."""
    config: FederationConfig = config_of(context)
    if config.dp_mode == "central" and config.client_train_layers:
        return trained_part_clipping_mod(msg, context, call_next)
    if config.dp_mode == "central":
        return zero_safe_fixedclipping_mod(msg, context, call_next)
    if config.dp_mode == "local":
        return local_dp_mod(config, msg, context, call_next)
    return call_next(msg, context)


def local_dp_mod(config: FederationConfig, msg: Message, context: Context, call_next) -> Message:
    """Local DP (common/federation/local_dp.py): the reply's model is the received one plus the update
    clipped to dp-clipping-norm plus Gaussian noise for (dp-epsilon, dp-delta) per release, drawn from OS
    entropy. Not Flower's LocalDpMod: its classical noise scale does not give the epsilon it is asked for
    above 1, it takes the clipping norm as the sensitivity (two clipped updates differ by up to twice it),
    and it draws from numpy's global generator."""
    received = msg.content["arrays"]
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    trained = reply.content["arrays"]
    if list(trained.keys()) != list(received.keys()):
        raise ValueError("local DP: the reply must hold every tensor the server sent, in its order")
    update = {key: trained[key].numpy().astype(np.float64) - received[key].numpy() for key in trained.keys()}
    std = local_noise_std(config.dp_epsilon, config.dp_delta, config.dp_clipping_norm)
    released = clip_and_noise(update, config.dp_clipping_norm, std)
    reply.content["arrays"] = ArrayRecord(
        {
            key: Array((received[key].numpy() + released[key]).astype(trained[key].numpy().dtype))
            for key in trained.keys()
        }
    )
    return reply


def zero_safe_fixedclipping_mod(msg: Message, context: Context, call_next) -> Message:
    """Flower's fixedclipping_mod, which also lets a zero update through.

    Flower scales the update by clipping norm / update norm and so divides by zero when training changed
    nothing: a client whose windows fill no batch of two (the contrastive loss needs a pair) sends the model
    back as received. Its update, 0, is within any clipping norm; it goes out unchanged. Before, the client
    failed the round, and under SecAgg+ counted as a dropout (issue #36's study at 1,000 clients, about 2.5
    windows a client).
    """
    replies: list[Message] = []

    def train(message: Message, ctxt: Context) -> Message:
        replies.append(call_next(message, ctxt))
        return replies[-1]

    try:
        return fixedclipping_mod(msg, context, train)
    except ZeroDivisionError:
        if not replies or not _unchanged(msg.content["arrays"], replies[-1].content["arrays"]):
            raise
        return replies[-1]  # Flower raised before changing the reply's arrays


def _unchanged(received: ArrayRecord, sent: ArrayRecord) -> bool:
    """Whether the reply's model is the one received, tensor by tensor."""
    return list(received.keys()) == list(sent.keys()) and all(
        np.array_equal(received[key].numpy(), sent[key].numpy()) for key in received.keys()
    )


def trained_part_clipping_mod(msg: Message, context: Context, call_next) -> Message:
    """Central DP with client-train-layers (SecAgg+ only): clip the update of the tensors the reply sends.

    Flower's fixedclipping_mod needs the reply to hold every tensor the server sent; a lean reply holds the
    trained ones only (the frozen rest never changes and is not sent). The update over those tensors (sent
    minus received) is scaled down to the train config's clipping norm if longer, as Flower's mod does: the
    sensitivity the server's noise is calibrated to is that of the vector the client sends.
    """
    clipping_norm = float(msg.content["config"][KEY_CLIPPING_NORM])
    received = msg.content["arrays"]
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    sent = reply.content["arrays"]
    update = {key: sent[key].numpy().astype(np.float64) - received[key].numpy() for key in sent.keys()}
    clipped = clip_update(update, clipping_norm)
    reply.content["arrays"] = ArrayRecord(
        {
            key: Array((received[key].numpy() + clipped[key]).astype(sent[key].numpy().dtype))
            for key in sent.keys()
        }
    )
    return reply


def perturb_summaries(features: np.ndarray, relative_std: float) -> np.ndarray:
    """features * (1 + N(0, relative_std)): each value blurred in proportion to its size, units kept.

    A privacy *knob* for studies, not a formal DP guarantee (there is no bounded sensitivity here). The noise
    comes from 256 bits of OS entropy: seeded from the run config, the server (which knows the config and
    the code) could divide it back out, and the knob would hide nothing.
    """
    if relative_std <= 0:
        return features
    rng = np.random.default_rng(secrets.randbits(256))
    return (features * (1.0 + relative_std * rng.standard_normal(features.shape))).astype(np.float32)


def uploaded_summaries(data: ClientData, config: FederationConfig) -> dict[str, np.ndarray]:
    """What the summaries phase uploads in the default mode: the analysis features of the training windows
    ("features") and of the evaluation windows ("eval-features"), each blurred by `summary-noise` if set.

    The client sends exactly these; the privacy audit (simulations/experiments/privacy_audit.py) calls this
    function to see what the server received.
    """
    arrays = {}
    if data.trains:
        arrays["features"] = perturb_summaries(window_summaries(data.train), config.summary_noise)
    if data.evaluates:  # interpreted by the server for the text path; labels stay
        arrays["eval-features"] = perturb_summaries(window_summaries(data.eval), config.summary_noise)
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
