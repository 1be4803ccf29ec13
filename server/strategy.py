"""Aggregation strategy from the run config: FedAvg (default), FedProx or FedAdam, optionally with central DP.

All of them are Flower's own. Only the train half of a strategy is used: evaluation replies are confusion
counts that server/federation.py sums exactly.
"""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, Strategy
from flwr.supercore.privacy_accounting import NeighboringRelation, PrivacyConfig, SamplingMethod
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from common.federation.protocol import UNIFORM_WEIGHT
from common.federation.run_config import FederationConfig
from server.dp_noise import SecureNoiseClientSideFixedClipping, reproducible_seed
from server.dp_poisson import PoissonDpFedAvg


def make_strategy(config: FederationConfig, num_nodes: int) -> Strategy:
    central_dp = config.dp_mode == "central"
    common = dict(
        fraction_train=config.fraction_train,
        # num_nodes = the clients that train (evaluation-only clients are never sampled): Flower's sampling
        # waits forever for more nodes than it is offered.
        min_train_nodes=min(config.min_train_nodes, num_nodes),
        min_available_nodes=min(config.min_available_nodes, num_nodes),
        weighted_by_key=UNIFORM_WEIGHT if central_dp else "num-examples",
    )
    if (
        config.client_sampling == "poisson"
    ):  # the server draws the cohorts; the strategy takes all it is offered
        common.update(min_train_nodes=1, min_available_nodes=1)
    if config.strategy == "fedavg":
        strategy: Strategy = FedAvg(**common)
    elif config.strategy == "fedprox":
        # Flower's FedProx puts "proximal-mu" into every train ConfigRecord; clients add the proximal term.
        strategy = FedProx(proximal_mu=config.proximal_mu, **common)
    elif config.strategy == "fedadam":
        strategy = FedAdam(eta=config.server_learning_rate, eta_l=config.learning_rate, **common)
    else:
        raise ValueError(f"run config: key 'strategy' unknown value '{config.strategy}'")
    if not central_dp:
        return strategy
    if config.client_sampling == "poisson":  # DP-FedAvg with amplified accounting (server/dp_poisson.py)
        return PoissonDpFedAvg(
            strategy,
            noise_multiplier=config.dp_noise_multiplier,
            clipping_norm=config.dp_clipping_norm,
            probability=config.sampling_probability,
            population=num_nodes,
            delta=config.dp_delta,
            reproducible_seed=reproducible_seed(config),
            smallest_cohort=config.secagg_reconstruction_threshold if config.secagg else 0,
        )
    # Client-side fixed clipping (clients clip their update to dp-clipping-norm, see client/privacy.py) with
    # Gaussian noise added to the aggregate here; an RDP accountant reports the spent (epsilon, delta).
    sample_size = min(num_nodes, max(int(num_nodes * config.fraction_train), config.min_train_nodes))
    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=config.dp_delta,
            population_size=num_nodes,
            # Flower's fixed-clipping accounting supports no sampling amplification (conservative).
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )
    # Flower's wrapper; its noise comes from fresh OS entropy, not the public run seed (server/dp_noise.py).
    return SecureNoiseClientSideFixedClipping(
        strategy,
        noise_multiplier=config.dp_noise_multiplier,
        clipping_norm=config.dp_clipping_norm,
        num_sampled_clients=sample_size,
        accountant=accountant,
        reproducible_seed=reproducible_seed(config),
    )
