"""The simulation on an existing Ray cluster (docs/federation.md, "Simulation on a Ray cluster"): a Ray head
this test starts on loopback, `RAY_ADDRESS` naming it, and `flwr run .` with the default app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from flower_runs import SMALL_RUN

from common.base.network import free_ports
from simulations.processes import (
    flower_env,
    flwr_run_simulation,
    stop_process_trees,
    stop_processes_naming,
)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def start_ray_head(temp_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`ray start --head --block` as a child of this test, in its own session so that its raylet, GCS and
    workers can be stopped by process group. Every port is chosen free, so a user's Ray on the default
    ports is neither hit nor in the way. Returns the process and the cluster's address."""
    port, *ports = free_ports(8)  # distinct: Ray refuses one port for two components
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus=2",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--object-store-memory=100000000",
        f"--ray-client-server-port={ports[0]}",
        f"--dashboard-agent-listen-port={ports[1]}",
        f"--dashboard-agent-grpc-port={ports[2]}",
        f"--runtime-env-agent-port={ports[3]}",
        f"--metrics-export-port={ports[4]}",
        f"--node-manager-port={ports[5]}",
        f"--object-manager-port={ports[6]}",
    ]
    with open(log_path, "w") as log:
        # Without RAY_ADDRESS (scripts/flower-env.sh sets it to "local"): the head is a cluster, not a client.
        env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
        head = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    # `ray start` writes the address file once the head is up.
    address_file = temp_dir / "ray_current_cluster"
    deadline = time.monotonic() + 120
    while not address_file.is_file():
        if head.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Ray head did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    return head, f"127.0.0.1:{port}"


@pytest.mark.slow
def test_flwr_run_attaches_to_a_running_ray_cluster() -> None:
    # Not pytest's tmp_path: Ray's Unix socket paths under --temp-dir must stay below 108 characters.
    base = Path(tempfile.mkdtemp(prefix="fedlanhar-ray-"))
    cluster_dir, private_dir = base / "ray", base / "private"
    private_dir.mkdir()
    head = None
    try:
        head, address = start_ray_head(cluster_dir, base / "head.log")
        # `flwr run .` reuses any SuperLink on its local port, whoever started it and with whatever Ray:
        # this run gets a SuperLink of its own (flower_env), started with this cluster's address.
        env = flower_env(base / "flwr-home") | {
            "RAY_ADDRESS": address,
            # A private Ray instance, had one started, would put its session here: the test looks for it.
            "RAY_TMPDIR": str(private_dir),
        }
        out_dir = base / "out"
        started = time.monotonic()
        run = subprocess.run(
            flwr_run_simulation(f"out-dir='{out_dir}' {SMALL_RUN}", num_supernodes=2),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        print(f"flwr run on the cluster took {time.monotonic() - started:.0f} s")
        metrics = json.loads((out_dir / "metrics.json").read_text())
        assert metrics["targets"]["clients"] == 2
        assert [r["round"] for r in metrics["rounds"]] == [1]
        # The run's driver and its ClientApp actors ran on the test's cluster: their logs are in its session.
        logs = cluster_dir / "session_latest" / "logs"
        assert list(logs.glob("python-core-driver-*.log")), "no driver attached to the cluster"
        actor_logs = [
            p for p in logs.glob("worker-*.out") if "ClientAppActor" in p.read_text(errors="replace")
        ]
        assert len(actor_logs) == 2, sorted(p.name for p in logs.iterdir())
        # ... and no private Ray instance was started beside it.
        assert not list(private_dir.rglob("session_*")), sorted(private_dir.rglob("*"))
    finally:
        stop_processes_naming(str(base))  # the local SuperLink `flwr run` left and its simulation process
        if head is not None:
            stop_process_trees([head], timeout=20)  # the head with its GCS, raylet and workers, by pid
        shutil.rmtree(base, ignore_errors=True)
