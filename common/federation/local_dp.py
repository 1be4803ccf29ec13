"""Local DP on the device: the Gaussian noise a client adds to its own update, calibrated so that the
(epsilon, delta) that metrics.json prints holds.

Local DP protects a client's whole contribution against whoever receives it (the server included): for ANY
two local data sets the released update must be (epsilon, delta)-indistinguishable. The client clips its
update (trained - received) to L2 norm C, so two updates lie in the same ball of radius C and differ by up to
2 C: the sensitivity is 2 C, not C (a clipped update against no update at all is the add-or-remove relation
of central DP, which the server-side accountant uses, not this one).

The noise scale is the analytic Gaussian mechanism's (Balle & Wang, "Improving the Gaussian Mechanism for
Differential Privacy: Analytical Calibration and Optimal Denoising", ICML 2018, Theorem 8): the mechanism
x + N(0, sigma^2 I) with L2 sensitivity D is (epsilon, delta)-DP exactly when

    Phi(D / (2 sigma) - epsilon sigma / D) - e^epsilon Phi(-D / (2 sigma) - epsilon sigma / D) <= delta,

and the left side falls as sigma grows, so the smallest such sigma is found by bisection. The classical
sigma = D sqrt(2 ln(1.25 / delta)) / epsilon (Dwork & Roth, Theorem A.1), which Flower's LocalDpMod uses, is
proven for epsilon < 1 only: at epsilon = 10 and delta = 1e-5 it gives delta 2.3e-5, i.e. it does not hold.

The noise is drawn from a generator seeded with 256 bits of OS entropy for every release: the server knows
the run config and the code, and a seeded (or numpy-global) generator would let it subtract the noise.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from common.federation.clipping import clip_update


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float) -> float:
    """Smallest delta: x + N(0, sigma^2) of L2 sensitivity `sensitivity` is (epsilon, delta)-DP."""
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    # e^epsilon Phi(-a - b) through logs: e^epsilon alone overflows for large epsilon.
    return float(norm.cdf(a - b) - math.exp(epsilon + norm.logcdf(-a - b)))


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """The smallest noise std making the Gaussian mechanism (epsilon, delta)-DP (analytic calibration)."""
    if not (epsilon > 0 and 0 < delta < 1 and sensitivity > 0):
        raise ValueError(
            "local DP needs epsilon > 0, 0 < delta < 1 and sensitivity > 0, "
            f"got {epsilon}, {delta}, {sensitivity}"
        )
    low, high = 1e-6 * sensitivity, 1e6 * sensitivity

    def excess(s: float) -> float:  # falls as s grows: one root
        return gaussian_delta(s, epsilon, sensitivity) - delta

    sigma = brentq(excess, low, high, xtol=1e-12, rtol=1e-12)
    # brentq stops within its tolerance on either side of the root: step up until delta is certainly met.
    while gaussian_delta(sigma, epsilon, sensitivity) > delta:
        sigma *= 1 + 1e-9
    return float(sigma)


def local_noise_std(epsilon: float, delta: float, clipping_norm: float) -> float:
    """The std of the noise a client adds to its update clipped to `clipping_norm` (sensitivity 2 C)."""
    return gaussian_sigma(epsilon, delta, 2.0 * clipping_norm)


def clip_and_noise(
    update: dict[str, np.ndarray], clipping_norm: float, noise_std: float
) -> dict[str, np.ndarray]:
    """The update scaled down to L2 norm `clipping_norm` if longer, plus N(0, noise_std^2) per coordinate from
    a generator seeded with fresh OS entropy (float64)."""
    clipped = clip_update({key: part.astype(np.float64) for key, part in update.items()}, clipping_norm)
    rng = np.random.default_rng(secrets.randbits(256))
    return {key: part + rng.normal(0.0, noise_std, part.shape) for key, part in clipped.items()}
