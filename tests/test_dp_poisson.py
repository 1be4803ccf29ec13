"""Client-level DP with Poisson sampling (issue #36, point 1): the draw, DP-FedAvg's release, the accounting.

The reference epsilons come from Google's `dp_accounting` called here directly (a Poisson-subsampled
Gaussian self-composed once per round), not from the project's code; the strategy is built by
`make_strategy` and driven through its rounds as server/federation.py drives it.
"""

from __future__ import annotations

import math
import pickle

import dp_accounting
import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from common.federation.run_config import FederationConfig
from server.checkpoint import restore_strategy_state, strategy_state
from server.dp_poisson import poisson_cohort, poisson_noise_std, sampling_seed
from server.federation import dp_accounting_report
from server.strategy import make_strategy

SHAPES = {"encoder.weight": (16, 8), "encoder.bias": (8,), "head": (3, 5)}


class Grid:
    """The strategy's view of the round's cohort: only `get_node_ids` is used to configure training."""

    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)


def poisson_dp(q: float, multiplier: float = 1.0, delta: float = 1e-5, **overrides) -> FederationConfig:
    values = dict(
        dp_mode="central",
        client_sampling="poisson",
        sampling_probability=q,
        dp_noise_multiplier=multiplier,
        dp_delta=delta,
    )
    values.update(overrides)
    return FederationConfig(**values)


def global_model(seed: int = 0) -> ArrayRecord:
    rng = np.random.default_rng(seed)
    return ArrayRecord({k: Array(rng.normal(0, 1, s).astype(np.float32)) for k, s in SHAPES.items()})


def reply(model: ArrayRecord, update: dict[str, np.ndarray]) -> Message:
    """A client's train reply: the global model plus its update."""
    arrays = {k: Array((model[k].numpy() + update[k]).astype(np.float32)) for k in SHAPES}
    metrics = MetricRecord({"num-examples": 40, "uniform-weight": 1, "train-loss": 0.5})
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    return Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), reply_to=request)


def reference_epsilon(q: float, multiplier: float, rounds: int, delta: float) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(multiplier))
    accountant.compose(event, rounds)
    return accountant.get_epsilon(delta)


def reference_epsilon_without_amplification(multiplier: float, rounds: int, delta: float) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(multiplier), rounds)
    return accountant.get_epsilon(delta)


def same_to_3_digits(value: float, reference: float) -> bool:
    return f"{value:.3g}" == f"{reference:.3g}"


@pytest.mark.parametrize(
    ("q", "multiplier", "rounds", "delta"),
    [
        (0.01, 1.0, 80, 1e-5),
        (0.05, 0.8, 40, 1e-5),
        (0.1, 1.5, 60, 1e-6),
        (0.3, 2.0, 20, 1e-5),
        (0.37, 1.1, 7, 1e-4),
    ],
)
def test_reported_epsilon_is_google_dp_accountings_poisson_subsampled_gaussian(q, multiplier, rounds, delta):
    """Every round composes one Poisson-subsampled Gaussian with the configured q, an empty draw too (each
    round here draws nobody, so each release is the noise alone)."""
    strategy = make_strategy(poisson_dp(q, multiplier, delta), num_nodes=1000)
    model = global_model()
    for server_round in range(1, rounds + 1):
        assert list(strategy.configure_train(server_round, model, ConfigRecord(), Grid([]))) == []
        released, _ = strategy.aggregate_train(server_round, [])
        assert not np.array_equal(released["head"].numpy(), model["head"].numpy())  # noise, never a skip
        model = released

    spent = strategy.privacy_spent()
    assert spent.num_releases == rounds and spent.delta == delta
    reference = reference_epsilon(q, multiplier, rounds, delta)
    assert same_to_3_digits(spent.epsilon, reference), (spent.epsilon, reference)
    without = strategy.epsilon_without_amplification()
    assert same_to_3_digits(without, reference_epsilon_without_amplification(multiplier, rounds, delta))
    assert spent.epsilon < without  # the amplification by sampling


def test_with_q_one_poisson_accounting_is_the_unamplified_one():
    strategy = make_strategy(poisson_dp(1.0, 1.2), num_nodes=5)
    for server_round in (1, 2, 3):
        list(strategy.configure_train(server_round, global_model(), ConfigRecord(), Grid([])))
        strategy.aggregate_train(server_round, [])
    assert strategy.privacy_spent().epsilon == pytest.approx(
        strategy.epsilon_without_amplification(), rel=1e-9
    )


@pytest.mark.parametrize("num_clients", [5, 50, 500])
def test_each_client_takes_part_in_a_share_q_of_the_rounds_whatever_the_client_count(num_clients):
    q, rounds = 0.1, 2000
    nodes = [2**63 + 7 * i for i in range(num_clients)]  # Flower's node ids are unsigned 64-bit
    rng = np.random.default_rng(11)
    taken = np.zeros((rounds, num_clients), dtype=bool)
    for r in range(rounds):
        cohort = poisson_cohort(nodes, q, rng)
        assert cohort == [n for n in nodes if n in set(cohort)]  # a subset, in node order
        assert all(type(n) is int for n in cohort)  # not cast to numpy integers
        taken[r] = [n in set(cohort) for n in nodes]

    share = taken.mean(axis=0)  # each client's share of rounds: q, not (cohort size) / num_clients
    assert np.abs(share - q).max() < 0.035  # 0.035 = 5 standard errors of a share over 2000 rounds
    sizes = taken.sum(axis=1)  # the cohort size is Binomial(N, q), not fixed
    assert sizes.mean() == pytest.approx(q * num_clients, rel=0.1)
    assert sizes.var() == pytest.approx(q * (1 - q) * num_clients, rel=0.15)
    if num_clients == 5:
        assert (sizes == 0).any()  # (0.9)**5 = 59%: an empty draw happens and is not redrawn
    if num_clients == 50:  # clients are drawn independently: pairwise correlations about 0
        correlations = np.corrcoef(taken.T)[np.triu_indices(num_clients, k=1)]
        assert np.abs(correlations).max() < 0.1 and abs(correlations.mean()) < 0.01


def test_noise_std_uses_the_expected_cohort_q_times_n():
    assert poisson_noise_std(1.0, 0.5, 0.01, 10_000) == pytest.approx(0.005)  # z C / (q N) = 0.5 / 100
    assert poisson_noise_std(2.0, 0.1, 0.25, 8) == pytest.approx(0.1)
    assert make_strategy(poisson_dp(0.25, 2.0, dp_clipping_norm=0.1), num_nodes=8).noise_std == pytest.approx(
        0.1
    )


@pytest.mark.usefixtures("run_identity")
def test_release_divides_the_clipped_sum_by_q_n_not_by_the_realised_count():
    """Two of N = 10 clients replied with q = 0.5: the release is global + (u1 + u2) / 5 + noise, the noise
    replayed here from the documented reproducible stream; one update longer than C is clipped to C."""
    clip, q, population, seed = 0.1, 0.5, 10, 3
    config = poisson_dp(q, 1.0, dp_clipping_norm=clip, dp_reproducible_noise=True, seed=seed)
    strategy = make_strategy(config, num_nodes=population)
    model = global_model()
    rng = np.random.default_rng(5)
    short = {k: rng.normal(0, 0.005, s).astype(np.float32) for k, s in SHAPES.items()}
    long = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in SHAPES.items()}  # norm about 1.2 > C

    messages = list(strategy.configure_train(4, model, ConfigRecord(), Grid([2**63, 2**63 + 1])))
    assert [m.content["config"][KEY_CLIPPING_NORM] for m in messages] == [clip, clip]  # clients clip to C
    released, metrics = strategy.aggregate_train(4, [reply(model, short), reply(model, long)])

    def norm(update):
        return math.sqrt(sum(float(np.sum(update[k].astype(np.float64) ** 2)) for k in SHAPES))

    assert norm(short) < clip < norm(long)
    std = 1.0 * clip / (q * population)
    noise_rng = np.random.default_rng([seed, 4, 14])
    for key in SHAPES:
        noise = noise_rng.normal(0.0, std, SHAPES[key])
        clipped_sum = short[key].astype(np.float64) + long[key] * (clip / norm(long))
        expected = model[key].numpy() + clipped_sum / (q * population) + noise
        assert np.abs(released[key].numpy() - expected).max() < 1e-6, key
        realised = model[key].numpy() + clipped_sum / 2 + noise  # dividing by the 2 that replied
        assert np.abs(released[key].numpy() - realised).max() > 1e-3
    assert metrics["train-loss"] == pytest.approx(0.5)
    assert strategy.privacy_spent().num_releases == 1


def test_the_poisson_draw_is_secret_unless_reproducible_noise_is_asked():
    secret = poisson_dp(0.1, seed=4)
    assert sampling_seed(secret) != sampling_seed(secret)  # 256 fresh bits each run
    assert sampling_seed(poisson_dp(0.1, seed=4, dp_reproducible_noise=True)) == 4
    assert sampling_seed(FederationConfig(seed=4)) == 4  # fixed sampling: today's generator, unchanged
    assert sampling_seed(FederationConfig(seed=4, client_sampling="poisson", sampling_probability=0.1)) == 4


def test_a_resumed_run_goes_on_with_the_accounted_rounds():
    """A checkpoint (server/checkpoint.py) keeps the Poisson accountant; the sampling RNG is saved beside."""
    config = poisson_dp(0.2, 1.3)
    strategy = make_strategy(config, num_nodes=50)
    for server_round in (1, 2, 3):
        list(strategy.configure_train(server_round, global_model(), ConfigRecord(), Grid([])))
        strategy.aggregate_train(server_round, [])
    saved = pickle.loads(pickle.dumps(strategy_state(strategy)))  # as the checkpoint file holds it

    resumed = make_strategy(config, num_nodes=50)
    restore_strategy_state(resumed, saved)
    assert resumed.privacy_spent() == strategy.privacy_spent()
    assert resumed.epsilon_without_amplification() == strategy.epsilon_without_amplification()
    list(resumed.configure_train(4, global_model(), ConfigRecord(), Grid([])))
    resumed.aggregate_train(4, [])
    assert resumed.privacy_spent().num_releases == 4
    assert same_to_3_digits(resumed.privacy_spent().epsilon, reference_epsilon(0.2, 1.3, 4, 1e-5))


def test_metrics_say_which_sampling_and_accounting_ran():
    rounds = [{"dp_epsilon": 0.4, "dp_epsilon_without_amplification": 3.0}, {"dp_epsilon": 0.6}]
    rounds[1]["dp_epsilon_without_amplification"] = 4.5
    poisson = dp_accounting_report(poisson_dp(0.05), rounds)
    assert poisson["accounting"]["sampling_method"] == "poisson"
    assert poisson["accounting"]["sampling_probability"] == 0.05
    assert poisson["epsilon_per_round"] == [0.4, 0.6] and poisson["epsilon_without_amplification"] == 4.5

    fixed = dp_accounting_report(FederationConfig(dp_mode="central"), [{"dp_epsilon": 2.0}])
    assert fixed["accounting"]["sampling_method"] == "no-amplification"
    assert fixed["accounting"]["sampling_probability"] is None
    assert fixed["epsilon_per_round"] == [2.0] and "epsilon_without_amplification" not in fixed


@pytest.mark.usefixtures("run_identity")
def test_a_failed_clients_reply_adds_nothing_and_the_denominator_stays_q_n():
    """A reply carrying an error (the client crashed) is left out of the sum and of the metrics; the release
    is the one the successful replies alone give, still divided by q N."""
    config = poisson_dp(0.5, 1.0, dp_clipping_norm=10.0, dp_reproducible_noise=True, seed=3)
    model = global_model()
    update = {k: np.full(s, 0.01, np.float32) for k, s in SHAPES.items()}
    request = Message(RecordDict(), dst_node_id=0, message_type=MessageType.TRAIN)
    failed = Message(Error(code=0, reason="client crashed"), reply_to=request)

    releases = []
    for replies in ([reply(model, update)], [reply(model, update), failed]):
        strategy = make_strategy(config, num_nodes=10)
        list(strategy.configure_train(4, model, ConfigRecord(), Grid([2**63])))
        released, metrics = strategy.aggregate_train(4, replies)
        assert metrics["train-loss"] == pytest.approx(0.5)
        releases.append(released)
    for key in SHAPES:
        np.testing.assert_array_equal(releases[0][key].numpy(), releases[1][key].numpy())


def exact_small_draw_probability(q: float, others: int, threshold: int) -> float:
    """P[Binomial(others, q) < threshold], summed term by term."""
    return sum(math.comb(others, k) * q**k * (1 - q) ** (others - k) for k in range(threshold))


@pytest.mark.parametrize(("q", "population", "rounds"), [(0.05, 100, 5), (0.2, 40, 3), (0.01, 1000, 4)])
def test_with_secagg_delta_counts_the_draws_too_small_to_serve(q, population, rounds):
    """A draw below SecAgg+'s threshold releases the noise alone, where one more client would release the
    cohort's sum: the reported delta adds (1 + e^eps) T P[Binomial(N - 1, q) < threshold] to the RDP one."""
    threshold = 4
    config = poisson_dp(q, 1.0, 1e-5, secagg=True, secagg_reconstruction_threshold=threshold)
    secure, plain = make_strategy(config, population), make_strategy(poisson_dp(q, 1.0, 1e-5), population)
    for server_round in range(1, rounds + 1):
        for strategy in (secure, plain):
            strategy.aggregate_train(server_round, [])
    spent, rdp = secure.privacy_spent(), plain.privacy_spent()
    assert spent.epsilon == rdp.epsilon and rdp.delta == 1e-5
    p = exact_small_draw_probability(q, population - 1, threshold)
    expected = 1e-5 + (1 + math.exp(rdp.epsilon)) * rounds * p
    assert spent.delta == pytest.approx(expected, rel=1e-9)
    assert spent.delta > 1e-4  # small cohorts: the term dominates, and the report says so


def test_at_scale_the_small_draw_term_is_negligible():
    """10,000 clients at q = 1%: a cohort of about 100 is below a threshold of 4 with probability ~1e-38."""
    config = poisson_dp(0.01, 1.0, 1e-5, secagg=True, secagg_reconstruction_threshold=4)
    strategy = make_strategy(config, 10_000)
    for server_round in range(1, 11):
        strategy.aggregate_train(server_round, [])
    assert strategy.privacy_spent().delta == pytest.approx(1e-5, rel=1e-12)
