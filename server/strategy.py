"""Aggregation strategy from the run config: FedAvg (default), FedProx or FedAdam, all Flower's own."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from common.run_config import FederationConfig


def make_strategy(config: FederationConfig) -> FedAvg:
    """Only the train half of a strategy is used: evaluation counts are summed by server/federation.py."""
    common = dict(
        fraction_train=config.fraction_train,
        min_train_nodes=config.min_train_nodes,
        min_available_nodes=config.min_available_nodes,
    )
    if config.strategy == "fedavg":
        return FedAvg(**common)
    if config.strategy == "fedprox":
        # Flower's FedProx puts "proximal-mu" into every train ConfigRecord; clients add the proximal term.
        return FedProx(proximal_mu=config.proximal_mu, **common)
    if config.strategy == "fedadam":
        return FedAdam(eta=config.server_learning_rate, eta_l=config.learning_rate, **common)
    raise ValueError(f"run config: key 'strategy' unknown value '{config.strategy}'")
