"""Privacy modes end to end (#14): SecAgg+ through a real `flwr run`, local interpretation in-process."""

from __future__ import annotations

import json

import pytest
from flower_runs import run_flwr
from test_federation import CONTEXT_FIELDS, run_in_process, small_config

from common.federation.local_dp import local_noise_std


@pytest.mark.slow
def test_local_interpretation_uploads_no_per_window_data_and_scores_like_summaries_mode(tmp_path):
    tiny = dict(num_server_rounds=1, new_activities="", stage1_steps=1, sensor_width=32)
    summaries = run_in_process(small_config(tmp_path / "summaries", **tiny), num_clients=2)
    local = run_in_process(small_config(tmp_path / "local", interpret_on_client=True, **tiny), num_clients=2)

    uploaded = local["uploaded_fields"]["summaries"]
    assert set(uploaded) == CONTEXT_FIELDS | {"interpretations.texts", "interpretations.eval-texts"}
    assert not any(isinstance(shape, list) for shape in uploaded.values())  # no array at all
    assert set(local["uploaded_fields"]["targets"]) == {"ack.stored"}
    assert local["privacy"]["per_window_arrays_uploaded"] == []
    assert local["privacy"]["protections"]["local_interpretation"] is True
    assert summaries["privacy"]["per_window_arrays_uploaded"] == [
        "summaries:features.eval-features",
        "summaries:features.features",
    ]
    # The rules are deterministic: the same targets, hence the same model and scores.
    assert local["accuracy"] == pytest.approx(summaries["accuracy"], abs=1e-9)
    assert local["text_path_accuracy"] == pytest.approx(summaries["text_path_accuracy"], abs=1e-9)
    assert local["confusion"] == summaries["confusion"]


@pytest.mark.slow
def test_secagg_with_central_dp_through_flwr_run(tmp_path):
    """The smallest real run: 5 synthetic clients, 1 round, SecAgg+ and central DP together.

    Neighbourhoods of 5 with threshold 4, the smallest settings the config allows (a survivor keeps 3 live
    neighbours, one dropout is tolerated), so 5 clients fill one neighbourhood."""
    out_dir = tmp_path / "out"
    run_config = " ".join(
        [
            f"out-dir='{out_dir}'",
            "num-server-rounds=1",
            "new-activities=''",
            "source-windows-per-activity=24",
            "stage1-steps=1",
            "server-pretrain-epochs=1",
            "windows-per-client=40",
            "local-epochs=1",
            "sensor-width=32",
            "secagg=true",
            "secagg-num-shares=5",
            "secagg-reconstruction-threshold=4",
            "dp-mode='central'",
            "dp-noise-multiplier=0.1",
            "dp-clipping-norm=1.0",
            "min-train-nodes=5",
            "min-available-nodes=5",
        ]
    )
    run_flwr(tmp_path, run_config, num_supernodes=5)  # a SuperLink of its own, never another user's
    metrics = json.loads((out_dir / "metrics.json").read_text())
    record = metrics["rounds"][0]
    assert record["secagg"]["refused"] is None and record["secagg"]["survivors"] == 5
    assert record["aggregated"] is True and record["clients_trained"] == 5
    # Nothing in clear beside the masked vector (#36); the loss is the weighted mean from the masked sum.
    assert set(metrics["uploaded_fields"]["train"]) == {"secagg-masked.vector"}
    assert 0.0 < record["train_loss"] < 256.0
    assert {"secagg-setup", "secagg-share-keys", "secagg-unmask"} <= set(metrics["uploaded_fields"])
    privacy = metrics["privacy"]
    assert privacy["protections"] == {
        "secagg": True,
        "dp": "central",
        "summary_noise": False,
        "local_interpretation": False,
    }
    assert privacy["server_sees_individual_updates"] is False and privacy["epsilon_spent"] > 0
    assert privacy["epsilon_is_guarantee"] is True  # the noise was not drawn from the public run seed
    assert 0.0 <= metrics["accuracy"] <= 1.0


@pytest.mark.slow
def test_local_dp_noises_each_update_on_the_device_and_reports_its_epsilon(tmp_path):
    """dp-mode 'local' end to end: every update is clipped to C = 0.1 and noised on the device
    (client/privacy.py, local_dp_mod), so the averaged update is far longer than C; the report says so."""
    tiny = dict(num_server_rounds=1, new_activities="", stage1_steps=1, sensor_width=32)
    config = small_config(tmp_path, dp_mode="local", dp_epsilon=10.0, dp_clipping_norm=0.1, **tiny)
    metrics = run_in_process(config, num_clients=2)
    privacy = metrics["privacy"]
    assert privacy["local_epsilon_per_round"] == 10.0 and privacy["delta"] == config.dp_delta
    assert privacy["protections"]["dp"] == "local"
    assert privacy["local_noise_std"] == pytest.approx(local_noise_std(10.0, config.dp_delta, 0.1))
    # Two clipped updates average to at most C; the noise (std ~0.1 per coordinate, thousands of them) adds
    # a norm of tens: what the server received was noised.
    assert metrics["rounds"][0]["update_norm"] > 20 * 0.1
