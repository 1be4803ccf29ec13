"""`fedlanhar bench`: argument checking, and the whole suite end to end at --budget small on real data with
the real MiniLM, a real llama-cpp-python OpenAI-compatible server and a real `flwr run .`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from common.data.errors import DataError
from simulations.bench import BUDGETS, PARTS, bench_settings, parse_clients, parse_parts
from simulations.cli import main


def test_parts_keep_the_suite_order_and_reject_unknown_names() -> None:
    assert parse_parts("federated, core") == ("core", "federated")
    assert parse_parts(",".join(PARTS)) == PARTS
    with pytest.raises(DataError, match="--parts: unknown \\['gpu'\\]"):
        parse_parts("core,gpu")
    with pytest.raises(DataError, match="--parts"):
        parse_parts(" , ")


def test_clients_are_positive_integers() -> None:
    assert parse_clients("10,100,1000") == (10, 100, 1000)
    with pytest.raises(DataError, match="--clients: expected comma-separated"):
        parse_clients("10,many")
    with pytest.raises(DataError, match="must be >= 1"):
        parse_clients("0")


def test_budgets_and_overrides() -> None:
    assert bench_settings("default").clients == (10, 100, 1000)
    assert bench_settings("full").stage1_max_timed_steps is None  # full: a whole stage-1 epoch, however long
    assert bench_settings("small", clients=(5,)).clients == (5,)
    assert bench_settings("small", clients=None) == BUDGETS["small"]
    with pytest.raises(DataError, match="--budget: unknown 'huge'"):
        bench_settings("huge")


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--parts", "core,gpu", "--out", str(tmp_path)]) == 2
    assert "fedlanhar bench: error: --parts: unknown ['gpu']" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def _finite_positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_suite_small(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "bench"
    assert (
        main(["bench", "--data-dir", str(data_dir), "--budget", "small", "--clients", "2", "--out", str(out)])
        == 0
    )

    results = json.loads((out / "bench.json").read_text())
    assert results["parts"] == list(PARTS) and set(results["seconds"]) == set(PARTS)
    assert results["settings"]["clients"] == [2]

    core = results["core"]
    assert _finite_positive(core["interpretation"]["windows_per_s"])
    stage1 = core["stage1"]
    # uci's rule interpretations give more than 2 batches of distinct pairs: small times 2 and extrapolates.
    assert stage1["steps_timed"] == BUDGETS["small"].stage1_max_timed_steps < stage1["steps_per_epoch"]
    assert not stage1["epoch_measured"]
    assert stage1["seconds_per_epoch"] == pytest.approx(
        stage1["seconds_per_step"] * stage1["steps_per_epoch"]
    )
    assert stage1["seconds_for_default_run"] == pytest.approx(
        stage1["cache_seconds"] + stage1["seconds_per_step"] * stage1["steps_in_default_run"]
    )
    assert core["stage2"]["windows"] == BUDGETS["small"].stage2_max_windows
    assert _finite_positive(core["stage2"]["seconds_per_epoch"])
    assert core["stage2"]["setup_seconds"] >= 0
    assert core["stage2"]["seconds_for_default_run"] == pytest.approx(
        core["stage2"]["setup_seconds"]
        + core["stage2"]["seconds_per_epoch"] * core["stage2"]["epochs_in_default_run"]
    )
    sensor = core["sensor_encoder"]
    assert sensor["parameters"] > 0 and 0 < sensor["export_mb"] <= 25
    assert _finite_positive(sensor["latency_ms_one_thread"]["median_ms"])
    assert _finite_positive(sensor["latency_ms_one_thread_onnxruntime"]["median_ms"])
    assert (out / "core" / "export" / "sensor_encoder.pt").is_file()
    assert (out / "core" / "export" / "sensor_encoder.onnx").is_file()

    llm = results["llm"]
    assert [run["concurrency"] for run in llm["live"]] == [1]
    assert llm["live"][0]["requests"] >= 1 and not llm["live"][0]["errors"]  # errors: {kind: count}
    assert _finite_positive(llm["live"][0]["windows_per_s"])
    assert _finite_positive(llm["cache_hit_prefilled"]["windows_per_s"])

    (federated,) = results["federated"]
    assert federated["clients"] == 2 and federated["failures"] == 0
    assert len(federated["round_seconds"]) == federated["run_config"]["num-server-rounds"]
    assert all(_finite_positive(s) for s in federated["round_seconds"])
    assert _finite_positive(federated["peak_rss_gb"]) and _finite_positive(federated["bytes_up_per_client"])

    table = (out / "bench.md").read_text()
    for heading in ("## Core", "## LLM interpretation service", "## Federation"):
        assert heading in table
    assert "| rules interpretations / s |" in table and "| live, concurrency 1 |" in table
    assert "| 2 | " in table  # one federation row per client count


def test_a_federated_run_that_fails_makes_bench_exit_1_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`flwr run` exits 0 when the ServerApp raises: the bench reads the run's own output instead
    (simulations/run_check.py). A metrics.json of an earlier run in the same place is not this run's."""
    import subprocess

    import simulations.federated_bench as federated_bench

    out = tmp_path / "bench"
    stale = out / "federated" / "clients-2" / "metrics.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"accuracy": 0.9}')
    log_lines = [
        "INFO :      Starting FedLanHAR ServerApp",
        "Traceback (most recent call last):",
        '  File "server/federation.py", line 412, in check_device_types',
        "common.data.errors.DataError: run config 'device-types', device type 'my_ring' (synthetic data): "
        "configs/devices/my_ring.toml: key 'placement' = 'tail' is not simulated; known placements: [...]",
    ]

    real_run = subprocess.run

    def flwr_run_whose_server_app_failed(command, *args, **kwargs):  # its log written, exit 0 as flwr's
        if not str(command[0]).endswith("flwr"):
            return real_run(command, *args, **kwargs)  # anything else the bench runs (uname, ...)
        kwargs["stdout"].write("\n".join(log_lines) + "\n")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(federated_bench.subprocess, "run", flwr_run_whose_server_app_failed)
    assert main(["bench", "--parts", "federated", "--clients", "2", "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "fedlanhar bench: error: flwr run with 2 clients failed (exit 0) and wrote no new" in error
    assert "key 'placement' = 'tail' is not simulated" in error  # the ServerApp's own error
    assert str(out / "federated" / "clients-2" / "flwr.log") in error  # where the whole log is
