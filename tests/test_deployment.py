"""The deployment engine on loopback: a real flower-superlink, two flower-supernodes with their own
--node-config (device type, partition), and `flwr run . <connection>` (docs/deploy.md, "A quick local
deployment")."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flower_runs import SMALL_RUN

from common.base.network import free_port
from simulations.processes import flower_env

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@pytest.mark.slow
def test_two_supernodes_on_loopback_run_the_protocol(tmp_path):
    env = flower_env(tmp_path / "flwr-home", own_superlink=False)  # the test starts its SuperLink
    link_port = free_port()
    (tmp_path / "flwr-home").mkdir()
    (tmp_path / "flwr-home" / "config.toml").write_text(
        '[superlink]\ndefault = "loopback"\n\n'
        f'[superlink.loopback]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
    )
    processes = []
    log = open(tmp_path / "processes.log", "w")
    try:
        processes.append(
            subprocess.Popen(
                [
                    BIN / "flower-superlink",
                    "--insecure",
                    "--database",
                    str(tmp_path / "state.db"),
                    "--disable-runtime-dependency-installation",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(link_port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        )
        wait_for_port(link_port)
        for partition, device in enumerate(("thigh_sensor", "wrist_watch")):
            node_config = f"partition-id={partition} num-partitions=2 device-type='{device}'"
            processes.append(
                subprocess.Popen(
                    [
                        BIN / "flower-supernode",
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{link_port}",
                        "--port",
                        str(free_port()),
                        "--node-config",
                        node_config,
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                )
            )
        out_dir = tmp_path / "out"
        run_config = f"out-dir='{out_dir}' {SMALL_RUN}"
        run = subprocess.run(
            [BIN / "flwr", "run", str(REPO), "loopback", "--stream", "--run-config", run_config],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        metrics = json.loads((out_dir / "metrics.json").read_text())
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
    assert metrics["targets"]["clients"] == 2
    assert [r["round"] for r in metrics["rounds"]] == [1]
    assert metrics["rounds"][-1]["labels"][-1] == "jogging"
    assert 0.0 <= metrics["accuracy"] <= 1.0
