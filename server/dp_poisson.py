"""Client-level DP with Poisson sampling (issue #36): each round's cohort, DP-FedAvg's release and accounting.

With `client-sampling = "poisson"` the server draws each round's cohort itself: every training client takes
part independently with probability q (`sampling-probability`), so the cohort's size varies from round to
round (`poisson_cohort`). Fixed sampling, the default, lets Flower's strategy pick a fixed number instead.

Under central DP this is DP-FedAvg (McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent
Language Models", ICLR 2018, Algorithm 1 with the fixed-denominator estimator). With N training clients,
updates clipped to L2 norm C and noise multiplier z, a round releases

    global + (sum of the cohort's clipped updates) / (q N) + N(0, sigma^2 I),   sigma = z C / (q N).

The denominator is the EXPECTED cohort size q N, not the realised one: adding or removing one client then
changes the sum by one clipped update and nothing else, so the release's sensitivity is C / (q N) and sigma
is z times it. Dividing by the realised count would rescale every client's contribution by how many were
drawn, which leaks through the denominator and which the sampled-Gaussian analysis does not cover. For the
same reason a round always releases: an empty draw releases the noise alone (the sum over no client is 0),
and no round is refused for too few replies, since a model left unchanged would tell every client that
nobody (or too few) had been drawn.

The RDP accountant composes one Poisson-subsampled Gaussian mechanism per round (`SamplingMethod.POISSON`
with q): the amplification by sampling that makes DP-FedAvg affordable at 10,000 clients and 1% a round
(Mironov, Talwar, Zhang, "Renyi Differential Privacy of the Sampled Gaussian Mechanism", 2019). metrics.json
also reports what the same rounds would cost without amplification. With SecAgg+, a draw smaller than its
reconstruction threshold cannot be served and releases the noise alone; `PoissonDpFedAvg.privacy_spent`
adds that event's probability to delta.

The amplification needs a secret draw: whoever knows whether a client was drawn in a round loses exactly the
uncertainty the analysis counts on. So under central DP the run's sampling generator is seeded with 256 bits
of OS entropy, as the noise is (server/dp_noise.py), unless `dp-reproducible-noise` asks for a replayable run.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    PrivacySpent,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant
from scipy.stats import binom

from common.federation.clipping import clip_update
from common.federation.run_config import FederationConfig
from server.dp_noise import add_gaussian_noise

log = logging.getLogger("fedlanhar.server")


def small_draw_probability(probability: float, population: int, smallest_cohort: int) -> float:
    """P[Binomial(population - 1, probability) < smallest_cohort]: that the clients other than one are
    drawn fewer than `smallest_cohort` times in a round (0 when any draw can be served)."""
    if smallest_cohort <= 0:
        return 0.0
    return float(binom.cdf(smallest_cohort - 1, max(population - 1, 0), probability))


def poisson_cohort(nodes: list[int], probability: float, rng: np.random.Generator) -> list[int]:
    """The clients of `nodes` drawn for one round: each independently with `probability`, in node order."""
    drawn = rng.random(len(nodes)) < probability
    return [node for node, taken in zip(nodes, drawn, strict=True) if taken]


def poisson_noise_std(
    noise_multiplier: float, clipping_norm: float, probability: float, population: int
) -> float:
    """The noise std on DP-FedAvg's fixed-denominator average: z C / (q N) (see the module's docstring)."""
    return noise_multiplier * clipping_norm / (probability * population)


def releases_every_round(config: FederationConfig) -> bool:
    """Whether each round releases a model whatever was drawn or replied: central DP with Poisson sampling."""
    return config.client_sampling == "poisson" and config.dp_mode == "central"


def sampling_seed(config: FederationConfig) -> int:
    """The seed of the run's client-sampling generator: OS entropy where the Poisson draw must be secret."""
    if releases_every_round(config) and not config.dp_reproducible_noise:
        return secrets.randbits(256)
    return config.seed


def poisson_accountant(
    probability: float, noise_multiplier: float, delta: float
) -> tuple[RdpAccountant, GaussianPrivacyEvent]:
    """Flower's RDP accountant for Poisson sampling with q = `probability`, and the event of one round.

    Flower states q as sample_size / population_size, both integers. With Poisson sampling and the
    add-or-remove-one relation the cost depends on q alone, so q is passed as its exact binary ratio
    (float.as_integer_ratio, e.g. 0.01 = 5764607523034235 / 2**59): the accountant computes with q itself,
    not with the nearest k / N.
    """
    numerator, denominator = float(probability).as_integer_ratio()
    config = PrivacyConfig(
        target_delta=delta,
        population_size=denominator,
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        sampling_method=SamplingMethod.POISSON,
    )
    event = GaussianPrivacyEvent(noise_multiplier, sample_size=numerator, population_size=denominator)
    return RdpAccountant(config), event


def epsilon_without_amplification(noise_multiplier: float, releases: int, delta: float) -> float:
    """The epsilon of `releases` rounds counted as if every client took part in each (no amplification)."""
    if releases == 0:
        return 0.0
    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=delta,
            population_size=1,  # unused without amplification
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )
    accountant.compose(GaussianPrivacyEvent(noise_multiplier, sample_size=1, population_size=1), releases)
    return accountant.get_privacy_spent().epsilon


def clipped_update(
    reply: Message, global_parts: dict[str, np.ndarray], clipping_norm: float
) -> dict[str, np.ndarray]:
    """A reply's model minus the global one, scaled down to L2 norm `clipping_norm` if longer (float64).

    Clients clip already (Flower's fixedclipping_mod); clipping again here changes nothing for them and keeps
    the sensitivity the noise is calibrated to even for a client that skipped it.
    """
    arrays = next(iter(reply.content.array_records.values()))
    update = {key: arrays[key].numpy().astype(np.float64) - part for key, part in global_parts.items()}
    return clip_update(update, clipping_norm)


class PoissonDpFedAvg(Strategy):
    """DP-FedAvg over Poisson cohorts: the wrapped FedAvg/FedProx sends the model and averages the train
    metrics; the model released and its accounting follow the module's docstring."""

    def __init__(
        self,
        strategy: FedAvg,
        *,
        noise_multiplier: float,
        clipping_norm: float,
        probability: float,
        population: int,
        delta: float,
        reproducible_seed: int | None,
        smallest_cohort: int = 0,
    ) -> None:
        if not isinstance(strategy, FedAvg) or type(strategy).aggregate_train is not FedAvg.aggregate_train:
            raise ValueError(
                "client-sampling 'poisson' with central DP needs FedAvg's aggregation (strategy fedavg or "
                f"fedprox), got {type(strategy).__name__}: the DP release replaces the strategy's average"
            )
        self.strategy = strategy
        self.noise_multiplier = noise_multiplier
        self.clipping_norm = clipping_norm
        self.expected_cohort = probability * population  # q N, the fixed denominator
        self.noise_std = poisson_noise_std(noise_multiplier, clipping_norm, probability, population)
        self.delta = delta
        self.reproducible_seed = reproducible_seed  # None: noise from OS entropy (server/dp_noise.py)
        # SecAgg+ cannot serve a draw of fewer than its threshold: such a round releases the noise alone.
        self.small_draw_probability = small_draw_probability(probability, population, smallest_cohort)
        self.accountant, self.round_event = poisson_accountant(probability, noise_multiplier, delta)
        self._global_arrays = ArrayRecord()  # the model the round started from (set by configure_train)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._global_arrays = arrays
        if not list(grid.get_node_ids()):  # an empty draw: nobody to send to, the release is the noise alone
            return []
        config[KEY_CLIPPING_NORM] = self.clipping_norm  # what each client's fixedclipping_mod clips to
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """This round's release (every round, whoever replied) and the wrapped strategy's train metrics."""
        # A client that failed adds nothing to the sum; the denominator stays q N whoever replied. Only the
        # wrapped strategy's metric aggregation is wanted: its aggregate_train would also average the arrays.
        replies = [reply for reply in replies if not reply.has_error()]
        contents = [reply.content for reply in replies]
        strategy = self.strategy
        metrics = strategy.train_metrics_aggr_fn(contents, strategy.weighted_by_key) if replies else None
        keys = list(self._global_arrays.keys())
        global_parts = {key: self._global_arrays[key].numpy() for key in keys}
        total = {key: np.zeros(part.shape, np.float64) for key, part in global_parts.items()}
        for reply in replies:
            for key, update in clipped_update(reply, global_parts, self.clipping_norm).items():
                total[key] += update
        step = [total[key] / self.expected_cohort for key in keys]  # fixed denominator q N
        noised = add_gaussian_noise(step, self.noise_std, self.reproducible_seed, server_round)
        released = {
            key: Array((global_parts[key].astype(np.float64) + part).astype(global_parts[key].dtype))
            for key, part in zip(keys, noised, strict=True)
        }
        self.accountant.compose(self.round_event)
        log.info(
            "round %d: DP-FedAvg: %d clipped updates summed, / q N = %.3g, noise std %.4g; epsilon %.4g",
            server_round,
            len(replies),
            self.expected_cohort,
            self.noise_std,
            self.privacy_spent().epsilon,
        )
        return ArrayRecord(released), metrics

    def privacy_spent(self) -> PrivacySpent:
        """The accountant's (epsilon, delta), delta raised by the rounds that drew too few clients to serve.

        Such a round releases the noise alone, while one more client drawn would release the whole cohort's
        sum: there one client moves the release by up to threshold x C, not C. The RDP analysis covers the
        mechanism that always releases the sum; the two differ only on the event that some round drew fewer
        than `smallest_cohort` of the others, of probability at most T p (p = P[Binomial(N - 1, q) <
        smallest_cohort], the same for both neighbouring populations). So for any outcome set S,
        P[M(D) in S] <= e^eps P[M(D') in S] + delta + (1 + e^eps) T p.
        """
        spent = self.accountant.get_privacy_spent()
        extra = (1 + math.exp(spent.epsilon)) * spent.num_releases * self.small_draw_probability
        return replace(spent, delta=spent.delta + extra)

    def epsilon_without_amplification(self) -> float:
        """The epsilon the rounds so far would cost if every client had taken part in each."""
        return epsilon_without_amplification(self.noise_multiplier, self.accountant.num_releases, self.delta)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        log.info(
            "DP-FedAvg, Poisson sampling: expected cohort %.3g, noise std %.4g",
            self.expected_cohort,
            self.noise_std,
        )
        self.strategy.summary()
