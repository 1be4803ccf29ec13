"""simulations/privacy_sweep.py's scale study (`--scale`, issue #36): its rows' configs, its table and its
command line, at small size (no federated run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.federation.run_config import FederationConfig
from server.dp_poisson import small_draw_probability
from simulations import privacy_sweep
from simulations.privacy_sweep import (
    SCALE_CLIENTS,
    SCALE_EVAL_FRACTION,
    SCALE_NOISE,
    SCALE_PROBABILITIES,
    SCALE_ROUNDS,
    scale_config,
    scale_row,
    scale_settings,
    write_scale,
)


def _configs(tmp_path: Path, num_clients: int = 50, rounds: int = 1) -> list[tuple[str, FederationConfig]]:
    return [
        (name, scale_config(tmp_path / "data", tmp_path / f"setting-{i}", num_clients, rounds, **extra))
        for i, (name, extra) in enumerate(scale_settings())
    ]


def test_scale_rows_are_valid_configs_of_the_study(tmp_path: Path) -> None:
    configs = _configs(tmp_path)
    for name, config in configs:
        config.validate()  # every row passes the run config's own checks (Poisson + SecAgg+ + DP included)
        assert (config.source, config.clients_data, config.partitioning) == ("dsads_torso", "uci", "by-user")
        assert config.min_available_nodes == 50 and config.num_server_rounds == 1, name
    names = [name for name, _ in configs]
    assert len(set(names)) == len(names)


def test_scale_rows_cover_both_probabilities_and_noise_multipliers(tmp_path: Path) -> None:
    configs = dict(_configs(tmp_path))
    poisson_dp = {
        (c.sampling_probability, c.dp_noise_multiplier)
        for c in configs.values()
        if c.client_sampling == "poisson" and c.dp_mode == "central"
    }
    assert poisson_dp == {(q, z) for q in SCALE_PROBABILITIES for z in SCALE_NOISE}
    for config in configs.values():
        if config.dp_mode == "central":
            assert config.secagg  # central DP as deployed: with SecAgg+
        if config.client_sampling == "poisson":
            assert not config.lazy_enrolment and config.fraction_evaluate == SCALE_EVAL_FRACTION
            assert config.final_round_evaluate_all  # the last round scores every held-out client
    unprotected = [c for c in configs.values() if c.dp_mode == "none"]
    assert [(c.secagg, c.client_sampling, c.sampling_probability) for c in unprotected] == [
        (False, "poisson", SCALE_PROBABILITIES[-1])
    ]
    lazy = [c for c in configs.values() if c.lazy_enrolment]
    assert len(lazy) == 1
    assert (lazy[0].client_sampling, lazy[0].secagg, lazy[0].dp_mode) == ("fixed", True, "central")


def _metrics(poisson: bool) -> dict:
    """A metrics.json as a 2-round run writes it, with only the fields the scale table reads."""
    privacy = {
        "epsilon_spent": 1.5,
        "delta_spent": 0.3 if poisson else 1e-5,
        "protections": {"secagg": True},
        "per_window_arrays_uploaded": ["summaries:features"],
        "secagg": {"rounds_refused": 1},
    }
    if poisson:
        privacy["epsilon_without_amplification"] = 9.0
    rounds = [
        {"seconds": 4.0, "clients_trained": 3, "clients_evaluated": 10},
        {"seconds": 6.0, "clients_trained": 0, "clients_evaluated": 500},
    ]
    return {
        "accuracy": 0.7,
        "macro_f1": 0.6,
        "privacy": privacy,
        "rounds": rounds,
        "evaluation": {"train_clients": 500, "eval_clients": 500},
        "traffic": {"bytes_up_per_client_mean": 1e5},
        "seconds": {"setup": 20.0, "client_setup": 300.0, "total": 400.0},
        "update_bytes": {
            "up_per_client_per_round": 6e5,
            "down_per_client_per_round": 7e5,
            "eval_down_per_client_per_round": 5e5,
        },
    }


def test_scale_row_reports_both_epsilons_and_the_delta_spent(tmp_path: Path) -> None:
    configs = dict(_configs(tmp_path))
    name = f"SecAgg+ + central DP, noise {SCALE_NOISE[0]}, Poisson q={SCALE_PROBABILITIES[0]}"
    row = scale_row(name, configs[name], _metrics(poisson=True))
    assert (row["epsilon_amplified"], row["epsilon_without_amplification"]) == (1.5, 9.0)
    assert (row["delta_spent"], row["delta"]) == (0.3, 1e-5)
    # 500 training clients: the chance that the others' draw is below SecAgg+'s threshold of 4
    assert row["small_draw_probability"] == small_draw_probability(SCALE_PROBABILITIES[0], 500, 4)
    assert row["clients_trained"] == [3, 0] and row["clients_evaluated_last_round"] == 500
    lazy_name = next(n for n, c in configs.items() if c.lazy_enrolment)
    lazy = scale_row(lazy_name, configs[lazy_name], _metrics(poisson=False))
    # fixed sampling claims no amplification: its one epsilon is the unamplified one
    assert (lazy["epsilon_amplified"], lazy["epsilon_without_amplification"]) == (None, 1.5)
    assert lazy["small_draw_probability"] is None


def test_write_scale_tables_a_failed_row_with_what_it_measured(tmp_path: Path) -> None:
    configs = dict(_configs(tmp_path))
    name = next(
        name for name, config in configs.items() if config.client_sampling == "poisson" and config.secagg
    )
    measured = {"wall_seconds": 400.0, "peak_rss_gb": 3.9, "peak_pss_gb": 3.2}
    done = scale_row(name, configs[name], _metrics(poisson=True)) | measured
    failed = {"setting": "lazy", "error": "out of memory", **measured}
    write_scale(tmp_path, [done, failed])
    table = (tmp_path / "privacy_scale.md").read_text().splitlines()
    assert len(table) == 4 and all(line.count("|") == table[0].count("|") for line in table)
    assert "| 1.500 | 9.00 | 0.3 (1e-05) | 5.0 | 320 | 3.90 (3.20) | 600 / 700 |" in table[2]
    assert "failed after 400 s, peak RSS 3.90 GB: out of memory" in table[3]
    assert json.loads((tmp_path / "privacy_scale.json").read_text())[1]["error"] == "out of memory"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--scale"], ("scale_study", SCALE_CLIENTS, SCALE_ROUNDS)),
        (["--scale", "--clients", "50", "--rounds", "1"], ("scale_study", 50, 1)),
        (["--study"], ("study", 100, 2)),
    ],
)
def test_command_line_picks_the_study_and_its_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: tuple
) -> None:
    called = []
    for function in ("scale_study", "study"):
        monkeypatch.setattr(
            privacy_sweep, function, lambda *args, f=function: called.append((f, args[2], args[3]))
        )
    privacy_sweep.main([*argv, "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    assert called == [expected]
