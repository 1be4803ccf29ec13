"""Central DP noise that nobody who knows the run config can regenerate.

Every client receives the whole run config, `seed` included, and the code is public. Noise drawn from a
generator seeded with the run seed (or from numpy's global generator, which `set_seed(config.seed)` seeds) is
therefore known to every client: it can subtract it from the change of the global model and recover the
exact average of the clipped updates, and the reported epsilon protects nothing. So each release draws its
noise from a generator seeded with 256 fresh bits of operating-system entropy (`secrets`).

`dp-reproducible-noise = true` brings back a seeded generator ([seed, round, 14], the same on the SecAgg+ path
and the plain one) for studies that must replay a run exactly; metrics.json then says the epsilon is not a
guarantee (`privacy_guarantee`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping
from flwr.supercore.differential_privacy import compute_stdv

from common.federation.run_config import FederationConfig

log = logging.getLogger("fedlanhar.server")

NOISE_STREAM = 14  # the third word of the reproducible seed: keeps this stream apart from the run's others


def noise_generator(reproducible_seed: int | None, server_round: int) -> np.random.Generator:
    """One round's noise generator: fresh OS entropy, or [seed, round, 14] if reproducibility was asked.

    numpy's PCG64 is not a cryptographic generator, but its 128-bit state is seeded here from 256 secret bits
    for every release, and what a client observes is the noise plus an average it does not know: it has
    neither the seed nor clean outputs from which to rebuild the state.
    """
    if reproducible_seed is None:
        return np.random.default_rng(secrets.randbits(256))
    return np.random.default_rng([int(reproducible_seed), int(server_round), NOISE_STREAM])


def reproducible_seed(config: FederationConfig) -> int | None:
    """The run seed if the study asked for reproducible (hence public) noise, otherwise None."""
    return config.seed if config.dp_reproducible_noise else None


def add_gaussian_noise(
    parts: list[np.ndarray], std: float, reproducible: int | None, server_round: int
) -> list[np.ndarray]:
    """parts + N(0, std^2) per coordinate, each part keeping its dtype; one generator per release."""
    rng = noise_generator(reproducible, server_round)
    return [(part + rng.normal(0.0, std, part.shape)).astype(part.dtype) for part in parts]


def privacy_guarantee(config: FederationConfig) -> dict[str, object]:
    """metrics.json's word on the reported epsilon: a guarantee only if the noise could not be predicted."""
    if config.dp_reproducible_noise:
        return {
            "epsilon_is_guarantee": False,
            "epsilon_note": (
                "dp-reproducible-noise = true: the central DP noise was drawn from the run seed, which every "
                "client receives; a client can regenerate and subtract it, so the epsilon bounds nothing"
            ),
        }
    return {
        "epsilon_is_guarantee": True,
        "epsilon_note": "central DP noise drawn from a generator seeded with fresh OS entropy each round",
    }


class SecureNoiseClientSideFixedClipping(DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side fixed clipping, with the noise drawn by `add_gaussian_noise` above.

    Flower adds the noise in `_add_noise_to_aggregated_arrays` through `add_gaussian_noise_inplace`, which
    draws from numpy's global generator: seeded by `set_seed(config.seed)` in run_federation, i.e. public.
    Overriding that one method keeps the rest of Flower's `aggregate_train` (reply validation, weights check,
    accounting). Reseeding the global generator instead would touch process-wide state other code (and other
    threads) relies on; tests/test_dp_noise.py checks that this override is the one that noises.
    """

    def __init__(self, *args, reproducible_seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reproducible_seed = reproducible_seed
        self._noise_round = 0

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self._noise_round = server_round  # the reproducible stream is per round, as on the SecAgg+ path
        return super().aggregate_train(server_round, replies)

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        # Flower's std: noise multiplier x clipping norm / sampled clients.
        std = compute_stdv(self.noise_multiplier, self.clipping_norm, self.num_sampled_clients)
        keys = list(aggregated_arrays.keys())
        parts = [aggregated_arrays[key].numpy() for key in keys]
        noised = add_gaussian_noise(parts, std, self.reproducible_seed, self._noise_round)
        log.info("round %d: central DP noise std %.4g added", self._noise_round, std)
        return ArrayRecord({key: Array(np.asarray(part)) for key, part in zip(keys, noised, strict=True)})
