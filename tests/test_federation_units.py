"""Server-side pieces of the protocol that need no simulation: evaluator sampling, pooled metrics."""

from __future__ import annotations

import numpy as np

from common.federation.run_config import FederationConfig
from server.federation import sample_evaluators


def test_evaluator_sample_keeps_64_bit_node_ids_as_python_ints():
    nodes = [2**63 + 7, 2**64 - 1, 12, 2**40]  # Flower node ids are unsigned 64-bit
    config = FederationConfig(num_server_rounds=3, fraction_evaluate=0.5)
    chosen = sample_evaluators(nodes, config, server_round=1, rng=np.random.default_rng(0))
    assert len(chosen) == 2 and set(chosen) <= set(nodes)
    assert all(type(node) is int for node in chosen)
    last_round = sample_evaluators(nodes, config, server_round=3, rng=np.random.default_rng(0))
    assert last_round == nodes  # everyone evaluates in the final round
