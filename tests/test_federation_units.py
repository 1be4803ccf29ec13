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


def test_server_pretraining_gives_the_same_model_whether_stage_one_ran_or_was_loaded(tmp_path):
    """Stage 1 draws from the global RNG; pre-training is re-seeded so that a loaded text encoder
    (text-encoder-path, resume) gives the same starting model as training it: such runs compare."""
    import torch
    from models_fixtures import save_tiny_text_encoder

    from server.cloud import Cloud

    encoder_dir = save_tiny_text_encoder(tmp_path / "tiny")
    config = FederationConfig(
        text_encoder=str(encoder_dir),
        source_windows_per_activity=8,
        server_pretrain_epochs=1,
        sensor_width=16,
    )
    models = []
    for draws in (0, 1000):  # stage 1 (or anything else) consumed a different amount of randomness before
        cloud = Cloud(config, tmp_path / f"out-{draws}")
        torch.rand(draws)
        np.random.rand(draws)
        models.append(cloud.pretrain_sensor_encoder()[0].state_dict())
    assert models[0].keys() == models[1].keys()
    for name, value in models[0].items():
        assert torch.equal(value, models[1][name]), name
