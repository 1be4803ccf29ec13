"""Local DP (issue #36): the (epsilon, delta) metrics.json prints for dp-mode 'local' holds.

Checked against Google's dp-accounting (its privacy loss distribution of the Gaussian mechanism, an
independent computation), at the default epsilon 10 too, where the classical noise scale Flower's LocalDpMod
uses does not hold. The noise cannot be replayed by anyone who knows the run config.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from client.privacy import local_dp_mod
from common.federation.local_dp import clip_and_noise, gaussian_sigma, local_noise_std
from common.federation.run_config import FederationConfig


def reference_delta(sigma: float, sensitivity: float, epsilon: float) -> float:
    """dp-accounting's delta of the Gaussian mechanism at epsilon."""
    pld = privacy_loss_distribution.from_gaussian_mechanism(standard_deviation=sigma, sensitivity=sensitivity)
    return pld.get_delta_for_epsilon(epsilon)


def classical_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """Dwork & Roth's Theorem A.1 scale (proven for epsilon < 1), which Flower's LocalDpMod uses."""
    return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


@pytest.mark.parametrize(
    ("epsilon", "delta"), [(10.0, 1e-5), (1.0, 1e-5), (0.5, 1e-6), (4.0, 1e-5), (30.0, 1e-6)]
)
def test_the_noise_gives_the_configured_epsilon_and_delta_and_no_more_noise_than_needed(epsilon, delta):
    sigma = gaussian_sigma(epsilon, delta, sensitivity=1.0)
    assert reference_delta(sigma, 1.0, epsilon) <= delta * (1 + 1e-3)
    assert reference_delta(0.98 * sigma, 1.0, epsilon) > delta  # tight: 2% less noise breaks it


def test_the_classical_scale_flowers_local_dp_mod_uses_breaks_the_default_epsilon():
    """At the default dp-epsilon 10 (delta 1e-5) the classical scale releases delta 2.3e-5 > 1e-5."""
    sigma = classical_sigma(10.0, 1e-5, 1.0)
    assert reference_delta(sigma, 1.0, 10.0) > 2e-5
    assert gaussian_sigma(10.0, 1e-5, 1.0) > sigma


def test_the_sensitivity_is_twice_the_clipping_norm():
    """Any two local data sets give clipped updates within one ball of radius C: up to 2 C apart."""
    assert local_noise_std(10.0, 1e-5, 0.3) == pytest.approx(gaussian_sigma(10.0, 1e-5, 0.6), rel=1e-12)
    assert local_noise_std(10.0, 1e-5, 0.3) == pytest.approx(2 * gaussian_sigma(10.0, 1e-5, 0.3), rel=1e-6)


def test_updates_are_clipped_before_the_noise():
    update = {"a": np.full((10,), 3.0), "b": np.full((6,), 4.0)}  # norm sqrt(90 + 96) > 1
    released = clip_and_noise(update, clipping_norm=1.0, noise_std=1e-12)
    norm = math.sqrt(sum(float(np.sum(part**2)) for part in released.values()))
    assert norm == pytest.approx(1.0, abs=1e-9)
    assert released["a"][0] / released["b"][0] == pytest.approx(3.0 / 4.0)  # a scaled copy of the update


def test_the_noise_cannot_be_replayed_from_the_run_config_or_numpys_global_seed():
    update = {"w": np.zeros(1000)}
    draws = []
    for _ in range(2):
        np.random.seed(0)  # what the run config's seed could have set: it must not matter
        draws.append(clip_and_noise(update, 1.0, noise_std=1.0)["w"])
    assert not np.allclose(draws[0], draws[1])
    assert np.std(draws[0]) == pytest.approx(1.0, rel=0.1)


@pytest.mark.usefixtures("run_identity")
def test_the_client_mod_releases_received_plus_clipped_update_plus_calibrated_noise():
    config = FederationConfig(dp_mode="local", dp_epsilon=10.0, dp_delta=1e-5, dp_clipping_norm=0.5)
    received = {"w": np.zeros(20000, np.float32), "b": np.ones(3, np.float32)}
    request = Message(
        RecordDict(
            {"arrays": ArrayRecord({k: Array(v) for k, v in received.items()}), "config": ConfigRecord()}
        ),
        dst_node_id=0,
        message_type=MessageType.TRAIN,
    )

    def train(msg: Message, context: Context) -> Message:  # moves every weight by +1: norm far above C
        arrays = ArrayRecord({k: Array(v + 1.0) for k, v in received.items()})
        return Message(RecordDict({"arrays": arrays}), reply_to=msg)

    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    reply = local_dp_mod(config, request, context, train)
    released = {k: reply.content["arrays"][k].numpy().astype(np.float64) - received[k] for k in received}
    std = local_noise_std(10.0, 1e-5, 0.5)
    clipped_step = 0.5 / math.sqrt(20003)  # each coordinate of the clipped update
    noise = released["w"] - clipped_step
    assert np.std(noise) == pytest.approx(std, rel=0.05)
    assert abs(float(np.mean(noise))) < 5 * std / math.sqrt(20000)
