"""The full federated protocol in-process (Flower simulation on Ray, real MiniLM, rules interpreter).

Checks the issue's acceptance: metrics present and finite, a new activity recognised from the round it is
pushed, and no client message carrying an array shaped like a raw window unless raw-prompt mode is on. On real
data: clients are scored on the central run's held-out users, and the clients holding them never train.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from client.client_app import app as client_app
from common.data.features import FEATURE_NAMES
from common.federation.run_config import FederationConfig
from server.federation import InjectedCrash, run_federation
from simulations.central import central_config, load_pair
from simulations.experiments.federated import run_federated

WINDOW_SHAPE = [120, 6]
# What a client's summaries reply says about its data besides the analysis: no window, label or user id.
CONTEXT_FIELDS = {
    f"context.{key}"
    for key in (
        "sampling-rate",
        "position",
        "device",
        "has-gyro",
        "num-windows",
        "num-eval-windows",
        "role",
        "raw-prompt-mode",
    )
}


def run_in_process(config: FederationConfig, num_clients: int) -> dict:
    """run_simulation passes an empty run config: the server's config reaches clients in the first phase."""
    return run_federated(config, num_clients)


def small_config(out_dir: Path, **overrides) -> FederationConfig:
    values = dict(
        num_server_rounds=2,
        new_activities="jogging,cycling",
        new_activities_round=2,
        source_windows_per_activity=24,
        stage1_steps=1,  # one step runs the whole stage-1 path; the text space's quality is tested elsewhere
        server_pretrain_epochs=3,
        windows_per_client=48,
        local_epochs=1,
        device_types="waist_phone,thigh_sensor",
        out_dir=str(out_dir),
    )
    values.update(overrides)
    return FederationConfig(**values)


def uploaded_shapes(metrics: dict) -> list[list[int]]:
    return [
        shape
        for fields in metrics["uploaded_fields"].values()
        for shape in fields.values()
        if isinstance(shape, list)
    ]


@pytest.mark.slow
def test_full_protocol_with_label_push_and_no_raw_windows(tmp_path):
    metrics = run_in_process(small_config(tmp_path), num_clients=2)

    rounds = metrics["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for record in rounds:
        for key in ("accuracy", "macro_f1", "category_accuracy", "train_loss"):
            assert math.isfinite(record[key]), (record["round"], key)
        for key in ("text_path_accuracy", "sensor_text_agreement"):
            assert 0.0 <= record[key] <= 1.0, (record["round"], key)
        assert record["clients_trained"] == 2 and record["clients_evaluated"] == 2
    # Synthetic clients have no users to hold out: each trains and evaluates (time split).
    assert metrics["evaluation"]["data_sets"] == {"synthetic": {"split": "time", "client_eval_fraction": 0.3}}
    assert set(metrics["evaluation"]["roles"].values()) == {"train+evaluate"}
    # Round 1 knows only the initial four labels; the push at round 2 adds the new ones.
    assert rounds[0]["labels"] == ["walking", "upstairs", "downstairs", "sitting"]
    assert rounds[1]["labels"][-2:] == ["jogging", "cycling"]
    assert "new_activity_accuracy" not in rounds[0] or rounds[0]["new_activity_accuracy"] is None
    # From the push on, clients score their jogging/cycling windows against the new labels (the quality of
    # that recognition at a real budget is asserted by tests/test_main_job.py).
    assert rounds[0]["num_unscored_windows"] > 0  # round 1: the new activities cannot be named yet
    assert rounds[1]["num_unscored_windows"] == 0
    confusion = rounds[1]["confusion"]
    assert sum(confusion[4]) + sum(confusion[5]) == rounds[1]["new_activity_windows"] > 0
    assert 0.0 <= metrics["new_activity_accuracy"] <= 1.0

    # Privacy: what left the clients, phase by phase: no raw window, no per-window label, no user id.
    uploaded = metrics["uploaded_fields"]
    assert set(uploaded) == {"summaries", "targets", "labels", "train", "evaluate"}
    assert set(uploaded["summaries"]) == {"features.features", "features.eval-features"} | CONTEXT_FIELDS
    assert uploaded["summaries"]["features.features"][1] == len(FEATURE_NAMES)  # analysis features only
    assert uploaded["summaries"]["features.eval-features"][1] == len(FEATURE_NAMES)
    assert set(uploaded["targets"]) == {"ack.stored"} and set(uploaded["labels"]) == {"ack.labels"}
    assert all(name.startswith("arrays.") for name in uploaded["train"] if not name.startswith("metrics."))
    assert {n for n in uploaded["train"] if n.startswith("metrics.")} == {
        "metrics.num-examples",
        "metrics.uniform-weight",
        "metrics.train-loss",
    }
    assert set(uploaded["evaluate"]) == {  # aggregate counts for scoring, never per-window labels
        "metrics." + key
        for key in (
            "num-examples",
            "confusion",
            "initial-confusion",
            "num-unscored",
            "new-windows",
            "new-correct-among-new",
            "new-top3-among-new",
            "bank-version",
            "text-confusion",
            "agreement",
        )
    } | {"client.group"}  # the client's data set / device type, for the per-device breakdown
    assert not any(
        "user" in name or "label" in name.split(".")[-1]
        for p in uploaded.values()
        for name in p
        if not name.startswith("ack.")
    )
    assert all(shape[-2:] != WINDOW_SHAPE for shape in uploaded_shapes(metrics))
    assert metrics["traffic"]["bytes_up_total"] > 0 and metrics["traffic"]["bytes_down_total"] > 0
    for name in (
        "metrics.json",
        "rounds.json",
        "metrics_over_rounds.png",
        "sensor_encoder.pt",
        "label_bank.npz",
    ):
        assert (tmp_path / name).exists(), name
    assert metrics["config"]["seed"] == 0 and metrics["seed"] == 0
    # The default model reads each window's signal analysis too, computed inside the exported model from the
    # window (nothing uploaded); the deployed model has one input, the raw window.
    exported = json.loads((tmp_path / "sensor_encoder.json").read_text())
    assert exported["config"]["analysis_token"] is True
    assert len(exported["analysis"]["features"]) == 34 and "analysis_input" not in exported
    assert (tmp_path / "sensor_encoder.onnx").exists()


@pytest.mark.slow
def test_raw_prompt_mode_uploads_windows_and_says_so(tmp_path):
    metrics = run_in_process(
        small_config(tmp_path, raw_prompt_mode=True, num_server_rounds=1, new_activities="", stage1_steps=1),
        num_clients=2,
    )
    assert metrics["uploaded_fields"]["summaries"]["features.windows"][-2:] == WINDOW_SHAPE
    assert metrics["config"]["raw-prompt-mode"] is True


@pytest.mark.slow
def test_analysis_token_switch_reaches_the_server_every_client_and_the_exported_model(tmp_path):
    """sensor-analysis-token (on by default, tests above) switched off: the server's pretraining, every
    client's local epochs and evaluation and the exported model use the plain encoder, in one run."""
    config = small_config(tmp_path, sensor_analysis_token=False, num_server_rounds=1, new_activities="")
    metrics = run_in_process(config, num_clients=2)
    assert metrics["config"]["sensor-analysis-token"] is False
    record = metrics["rounds"][0]
    assert record["clients_trained"] == 2 and record["clients_evaluated"] == 2
    assert math.isfinite(record["accuracy"]) and math.isfinite(record["train_loss"])
    exported = json.loads((tmp_path / "sensor_encoder.json").read_text())
    assert exported["config"]["analysis_token"] is False and exported["analysis"] is None


@pytest.mark.slow
def test_the_walking_frame_reaches_every_client_and_the_exported_model(tmp_path):
    """walking-frame on, with a waist and a thigh client, in one run: the server and every client turn their
    own windows into their wearers' walking frame (test_partition.py) and word the inclination, and the
    deployed model's analysis token reads it."""
    config = small_config(tmp_path, walking_frame=True, num_server_rounds=1, new_activities="")
    metrics = run_in_process(config, num_clients=2)
    assert metrics["config"]["walking-frame"] is True
    record = metrics["rounds"][0]
    assert record["clients_trained"] == 2 and record["clients_evaluated"] == 2
    assert math.isfinite(record["accuracy"]) and math.isfinite(record["train_loss"])
    assert set(metrics["per_group"]) == {"synthetic:waist_phone", "synthetic:thigh_sensor"}
    exported = json.loads((tmp_path / "sensor_encoder.json").read_text())
    assert exported["config"]["walking_frame"] is True
    assert exported["analysis"]["features"][-1] == "tilt_z"


def run_expecting_crash(config: FederationConfig, num_clients: int) -> None:
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        with pytest.raises(InjectedCrash):
            run_federation(grid, config, Path(config.out_dir))

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=num_clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )


@pytest.mark.slow
def test_failures_are_survived_and_a_crashed_run_resumes_to_the_same_result(tmp_path):
    """30% injected client failures: rounds still complete. Crash after round 2 + resume == uninterrupted."""
    faulty = dict(num_server_rounds=3, new_activities_round=3, failure_rate=0.3, min_replies_fraction=0.3)
    uninterrupted = run_in_process(small_config(tmp_path / "whole", **faulty), num_clients=3)
    assert uninterrupted["failures"], "30% failure injection produced no failure"
    assert any("injected" in f["reason"] for f in uninterrupted["failures"])
    for record in uninterrupted["rounds"]:
        assert math.isfinite(record["accuracy"]) and math.isfinite(record["macro_f1"])
    assert any(r["clients_trained"] < r["clients_sampled"] for r in uninterrupted["rounds"])

    crashed_dir = tmp_path / "crashed"
    run_expecting_crash(small_config(crashed_dir, crash_after_round=2, **faulty), num_clients=3)
    assert not (crashed_dir / "metrics.json").exists() and (crashed_dir / "checkpoint" / "state.pkl").exists()
    resumed = run_in_process(small_config(crashed_dir, resume=True, **faulty), num_clients=3)

    assert resumed["resumed_after_round"] == 2
    assert [r["round"] for r in resumed["rounds"]] == [1, 2, 3]
    for key in ("accuracy", "macro_f1", "category_accuracy", "new_activity_accuracy"):
        assert resumed[key] == pytest.approx(uninterrupted[key], abs=1e-6), key
    assert resumed["rounds"][-1]["confusion"] == uninterrupted["rounds"][-1]["confusion"]


@pytest.mark.slow
def test_central_dp_clips_and_noises_the_aggregated_update(tmp_path):
    clip, sigma, clients = 0.05, 2.0, 2
    metrics = run_in_process(
        small_config(
            tmp_path,
            num_server_rounds=1,
            new_activities="",
            dp_mode="central",
            dp_clipping_norm=clip,
            dp_noise_multiplier=sigma,
            sensor_width=32,
        ),
        num_clients=clients,
    )
    parameters = sum(
        int(np.prod(shape))
        for shape in metrics["uploaded_fields"]["train"].values()
        if isinstance(shape, list)
    )
    # Clipped updates average to a norm <= clip; the server's Gaussian noise (std sigma*clip/n per
    # coordinate) has norm ~ sigma*clip/n*sqrt(P), far larger here: the observed change must match it.
    expected_noise = sigma * clip / clients * math.sqrt(parameters)
    observed = metrics["rounds"][0]["update_norm"]
    assert expected_noise * 0.9 - clip <= observed <= expected_noise * 1.1 + clip
    assert metrics["privacy"]["dp_mode"] == "central"
    assert metrics["privacy"]["epsilon_spent"] > 0
    assert metrics["privacy"]["epsilon_is_guarantee"] is True  # noise from OS entropy, not the run seed


@pytest.mark.slow
def test_central_dp_with_poisson_sampling_releases_every_round_and_accounts_the_amplification(tmp_path):
    """DP-FedAvg over Poisson cohorts (server/dp_poisson.py): 3 clients, q = 0.5, 2 rounds. Whoever is drawn,
    nobody included, each round releases the clipped sum / (q N) plus noise of std z C / (q N), accounted as
    a Poisson-subsampled Gaussian; the reference epsilon is Google's dp_accounting's. With reproducible noise
    the draw comes from `seed` (not OS entropy): seed 5 draws nobody in round 1 and all three in round 2."""
    clip, sigma, clients, q, delta = 0.05, 2.0, 3, 0.5, 1e-5
    metrics = run_in_process(
        small_config(
            tmp_path,
            new_activities="",
            dp_mode="central",
            dp_clipping_norm=clip,
            dp_noise_multiplier=sigma,
            dp_delta=delta,
            client_sampling="poisson",
            sampling_probability=q,
            dp_reproducible_noise=True,
            seed=5,  # default_rng(5).random(3) twice: all >= q, then all < q
            sensor_width=32,
        ),
        num_clients=clients,
    )
    parameters = metrics["update_bytes"]["float32_model_bytes"] // 4  # even if nobody was ever drawn
    # Clipped updates sum to a norm <= clients * clip, divided by q N; the noise's norm is far larger.
    expected_noise = sigma * clip / (q * clients) * math.sqrt(parameters)
    signal = clients * clip / (q * clients)
    assert [r["clients_sampled"] for r in metrics["rounds"]] == [0, 3]
    assert [r["clients_trained"] for r in metrics["rounds"]] == [0, 3]
    for record in metrics["rounds"]:
        assert record["aggregated"]  # the empty round too: its release is the noise alone
        assert expected_noise * 0.9 - signal <= record["update_norm"] <= expected_noise * 1.1 + signal
    privacy = metrics["privacy"]
    assert privacy["client_sampling"] == "poisson"
    assert privacy["accounting"]["sampling_method"] == "poisson"
    assert privacy["accounting"]["sampling_probability"] == q
    epsilons = privacy["epsilon_per_round"]
    assert len(epsilons) == 2 and 0 < epsilons[0] < epsilons[1] == privacy["epsilon_spent"]
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), 2)
    assert f"{privacy['epsilon_spent']:.3g}" == f"{accountant.get_epsilon(delta):.3g}"
    assert privacy["epsilon_spent"] < privacy["epsilon_without_amplification"]
    assert privacy["epsilon_is_guarantee"] is False  # dp-reproducible-noise: the noise and draw follow seed


@pytest.mark.slow
def test_real_data_scores_the_central_held_out_users_and_their_clients_never_train(tmp_path, data_dir):
    """4 dsads_torso clients, server source uci, tiny budget: 2 clients train, 2 hold the held-out users."""
    config = FederationConfig(
        num_server_rounds=2,
        source="uci",
        clients_data="dsads_torso",
        device_types="native",
        data_dir=str(data_dir.resolve()),
        new_activities="jumping",
        new_activities_round=2,
        stage1_steps=2,
        server_pretrain_epochs=1,
        server_train_epochs=1,  # the server trains on its source in every round too
        local_epochs=1,
        sensor_width=32,
        min_available_nodes=4,
        min_train_nodes=4,  # more than the 2 training clients: must not stall the strategy's sampling
        out_dir=str(tmp_path),
    )
    metrics = run_in_process(config, num_clients=4)

    central = load_pair(central_config("default", source="uci", target="dsads_torso", seed=0), data_dir)
    central_eval_users = sorted(set(central["target_eval"].user.tolist()))
    evaluation = metrics["evaluation"]
    assert evaluation["client_eval"] == "held-out-users"
    split = evaluation["data_sets"]["dsads_torso"]
    assert split["split"] == "held-out-users" and split["eval_users"] == central_eval_users
    assert not set(split["train_users"]) & set(split["eval_users"])
    assert (evaluation["train_clients"], evaluation["eval_clients"]) == (2, 2)
    assert sorted(evaluation["roles"].values()) == ["evaluate", "evaluate", "train", "train"]
    assert evaluation["eval_only_clients_that_trained"] == []

    # Evaluation-only clients sent no model update: their upload is smaller than one sensor encoder.
    model_bytes = 4 * sum(
        int(np.prod(shape))
        for name, shape in metrics["uploaded_fields"]["train"].items()
        if name.startswith("arrays.")
    )
    for node, role in evaluation["roles"].items():
        up = metrics["traffic_per_client"][node]["up"]
        assert (up < model_bytes) if role == "evaluate" else (up > model_bytes), (node, role, up)

    # Every window of the held-out users (of the run's activities present at the end) is scored.
    windows = np.load(data_dir / "dsads_torso.npz")
    names = [str(n) for n in windows["label_names"]]
    final_labels = metrics["rounds"][-1]["labels"]
    in_run = np.isin(np.array(names)[windows["y"]], final_labels)
    held_out = np.isin(windows["user"], central_eval_users)
    assert evaluation["windows"] == int((in_run & held_out).sum())

    for record in metrics["rounds"]:
        assert record["clients_sampled"] == record["clients_trained"] == 2
        assert record["server_trained"] is True
        assert record["clients_evaluated"] == 2
        for key in ("accuracy", "text_path_accuracy", "sensor_text_agreement"):
            assert 0.0 <= record[key] <= 1.0 and math.isfinite(record[key]), (record["round"], key)
        size = len(record["labels"])
        assert np.asarray(record["text_path_confusion"]).shape == (size, size)
        assert np.asarray(record["text_path_confusion"]).sum() == record["num_windows"]
    for key in ("text_path_accuracy", "sensor_text_agreement"):
        assert 0.0 <= metrics[key] <= 1.0, key
    pretrained = metrics["server_pretrain_evaluation"]  # round 0: the server's model, the same clients
    assert pretrained["clients_evaluated"] == 2 and pretrained["labels"] == final_labels[:4]
    for key in ("accuracy", "text_path_accuracy", "sensor_text_agreement"):
        assert 0.0 <= pretrained[key] <= 1.0, key
    assert {"metrics.text-confusion", "metrics.agreement"} <= set(metrics["uploaded_fields"]["evaluate"])
    # After the push the initial labels are still scored among themselves, like the central run.
    initial = metrics["initial_activities"]
    assert initial["labels"] == final_labels[:4] and 0.0 <= initial["accuracy"] <= 1.0
    assert initial["windows"] == int(
        (np.isin(np.array(names)[windows["y"]], final_labels[:4]) & held_out).sum()
    )
    rounds_file = json.loads((tmp_path / "rounds.json").read_text())
    assert rounds_file[-1]["text_path_accuracy"] == metrics["text_path_accuracy"]
