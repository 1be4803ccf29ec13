"""The run config: pyproject.toml declares exactly FederationConfig's keys; bad values fail naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from common.federation.run_config import ConfigError, FederationConfig

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_pyproject_declares_every_key_with_its_default():
    declared = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]
    assert declared == FederationConfig.keys()
    assert FederationConfig.from_run_config(declared) == FederationConfig()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num-server-round": 3}, "unknown key 'num-server-round'"),
        # The SecAgg+ roster reaches a client out of band (its own node config or environment), never through
        # the run config, which the server writes (docs/privacy.md, signed round keys).
        ({"secagg-roster": "/tmp/roster.json"}, "unknown key 'secagg-roster'"),
        ({"secagg-identity-key": "/tmp/client-0.key"}, "unknown key 'secagg-identity-key'"),
        (
            {"secagg": True, "update-compression": "int8"},
            "'secagg' cannot be combined with update-compression: int8 codes are scaled per client",
        ),
        (
            {"secagg": True, "update-compression": "sparse-int8", "client-train-layers": 1},
            "sparse-int8 sends each client's own top-k coordinates",
        ),
        ({"secagg": True, "update-clip-factor": 3.0}, "'secagg' cannot be combined with update-clip-factor"),
        ({"secagg-drop": "1:collect"}, "'secagg-drop' applies to secagg = true only"),
        ({"secagg": True, "secagg-drop": "1:train"}, "entries must be '<partition>:<stage>'"),
        ({"secagg": True, "secagg-drop": "a:setup"}, "entries must be '<partition>:<stage>'"),
        ({"secagg": True, "secagg-drop": "1:setup,1:unmask"}, "names partition 1 twice"),
        (
            {"client-train-layers": 1, "dp-mode": "local"},
            "'client-train-layers' must be 0 with dp-mode 'local'",
        ),
        (
            {"client-train-layers": 1, "dp-mode": "central"},
            "'client-train-layers' must be 0 with dp-mode 'central' unless secagg is on",
        ),
        (
            {"lazy-enrolment": True, "dp-mode": "central"},
            "'lazy-enrolment' must be false with dp-mode 'central'",
        ),
        (
            {"lazy-enrolment": True, "dp-mode": "local", "secagg": True},
            "'lazy-enrolment' must be false with dp-mode 'local'",
        ),
        (
            {"dp-mode": "central", "update-clip-factor": 3.0},
            "'update-clip-factor' must be 0 with dp-mode 'central'",
        ),
        ({"num-server-rounds": "3"}, "'num-server-rounds' must be int"),
        ({"local-epochs": True}, "'local-epochs' must be int"),
        ({"strategy": "fedsgd"}, "'strategy' must be one of"),
        ({"new-activities": "walking"}, "'new-activities' repeats initial activities"),
        ({"new-activities-round": 9}, "'new-activities-round' must be within"),
        ({"clients-data": "uci"}, "'data-dir' must be set"),
        ({"data-dir": "relative/data"}, "'data-dir' must be an absolute path"),
        ({"out-dir": "runs/x"}, "'out-dir' must be an absolute path"),
        ({"client-eval-fraction": 1.0}, "'client-eval-fraction' must be in (0, 1)"),
        ({"sensor-input-frame": "world"}, "'sensor-input-frame' must be one of"),
        ({"walking-frame": True, "interpreter": "openai"}, "'walking-frame' needs interpreter 'rules'"),
        ({"walking-frame": True, "raw-prompt-mode": True}, "raw-prompt-mode True"),
        ({"walking-frame": True, "sensor-input-frame": "device"}, "sensor-input-frame 'device'"),
        ({"walking-frame": True, "sensor-analysis-token": False}, "sensor-analysis-token False"),
        ({"server-train-epochs": 1, "dp-mode": "central"}, "'server-train-epochs' must be 0 with dp-mode"),
        ({"dp-reproducible-noise": True}, "'dp-reproducible-noise' applies to dp-mode 'central' only"),
        ({"secagg-num-shares": 2}, "'secagg-num-shares' must be >= 3"),
        (
            {"secagg-reconstruction-threshold": 9},
            "'secagg-reconstruction-threshold' must be within 2..secagg-num-shares (7)",
        ),
        ({"secagg-clipping-range": 0.0}, "'secagg-clipping-range' must be > 0"),
        ({"secagg-quantization-range": 1}, "'secagg-quantization-range' must be within"),
        ({"interpret-on-client": True, "interpreter": "openai"}, "'interpret-on-client' needs interpreter"),
        ({"interpret-on-client": True, "raw-prompt-mode": True}, "'interpret-on-client' contradicts"),
        ({"client-sampling": "random"}, "'client-sampling' must be one of"),
        (
            {"client-sampling": "poisson", "sampling-probability": 0.0},
            "'sampling-probability' must be in (0, 1]",
        ),
        ({"sampling-probability": 0.1}, "'sampling-probability' applies to client-sampling 'poisson' only"),
        (
            {"client-sampling": "poisson", "fraction-train": 0.5},
            "'fraction-train' applies to client-sampling 'fixed' only",
        ),
        ({"client-sampling": "poisson", "lazy-enrolment": True}, "'poisson' cannot be combined with lazy"),
        (
            {"client-sampling": "poisson", "dp-mode": "central", "strategy": "fedadam"},
            "needs strategy 'fedavg' or 'fedprox'",
        ),
    ],
)
def test_bad_run_config_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        FederationConfig.from_run_config(overrides)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"secagg": True, "lazy-enrolment": True},
        {"secagg": True, "lazy-enrolment": True, "dp-mode": "central", "client-train-layers": 1},
        {"secagg": True, "client-sampling": "poisson", "sampling-probability": 0.5},
        {"secagg": True, "client-sampling": "poisson", "sampling-probability": 0.5, "dp-mode": "central"},
        {"secagg": True, "client-train-layers": 2},
    ],
)
def test_secagg_combines_with_lazy_enrolment_poisson_sampling_and_lean_clients(overrides):
    config = FederationConfig.from_run_config(overrides)
    assert config.secagg


def test_secagg_drop_names_the_stage_each_partition_stops_answering_at():
    config = FederationConfig.from_run_config({"secagg": True, "secagg-drop": "3:collect, 5:unmask"})
    assert config.secagg_drop_plan == {3: "collect", 5: "unmask"}
    assert FederationConfig().secagg_drop_plan == {}


def test_lists_are_comma_separated_strings_and_ints_are_accepted_for_floats():
    config = FederationConfig.from_run_config({"activities": " walking, sitting ,", "learning-rate": 1})
    assert config.activity_list == ["walking", "sitting"]
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.all_activities == ["walking", "sitting", "jogging", "cycling"]


def test_every_stage2_setting_reaches_the_one_sensor_train_config():
    """The server's pre-training and rounds and every client's local epochs build their stage-2 settings
    here, so a setting in the run config reaches all of them."""
    config = FederationConfig.from_run_config(
        {
            "batch-size": 16,
            "learning-rate": 0.001,
            "temperature": 0.1,
        }
    )
    train = config.sensor_train_config(epochs=3, seed=11)
    assert (train.epochs, train.seed, train.batch_size) == (3, 11, 16)
    assert (train.lr, train.temperature) == (0.001, 0.1)


@pytest.mark.parametrize("name", ["federated-real.toml", "federated-mixed.toml"])
def test_shipped_federation_configs_are_valid_run_configs(name: str):
    shipped = tomllib.loads((PYPROJECT.parent / "configs" / name).read_text())
    # scripts/run.sh adds the two absolute paths.
    config = FederationConfig.from_run_config(shipped | {"data-dir": "/data", "out-dir": "/runs/x"})
    assert config.num_server_rounds == shipped["num-server-rounds"]


def test_real_data_federation_trains_like_the_central_run_it_is_compared_with():
    """configs/federated-real.toml against CentralConfig's defaults and the central FedAvg reference
    (docs/results/federated-vs-central): the same source users, batch, epochs and rounds."""
    from simulations.central import CentralConfig, central_config

    shipped = tomllib.loads((PYPROJECT.parent / "configs" / "federated-real.toml").read_text())
    config = FederationConfig.from_run_config(shipped | {"data-dir": "/data", "out-dir": "/runs/x"})
    reference_file = PYPROJECT.parent / "docs/results/federated-vs-central/central-fedavg.toml"
    central = central_config("default", reference_file)
    assert (config.source, config.clients_data) == (central.source, central.target) == ("uci", "dsads_torso")
    assert (
        config.source_eval_users_fraction
        == central.source_eval_fraction
        == CentralConfig.source_eval_fraction
    )
    assert config.batch_size == central.stage2_batch_size
    assert config.learning_rate == central.stage2_lr and config.temperature == central.temperature
    assert config.server_pretrain_epochs == central.stage2_epochs
    assert config.num_server_rounds == central.stage2_target_rounds
    assert config.num_server_rounds * config.local_epochs == central.stage2_target_epochs
    assert config.strategy == "fedavg" and config.server_train_epochs == 0
