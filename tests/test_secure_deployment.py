"""The deployment that lets no one in (docs/deploy.md, "Deployment engine with TLS and SuperNode
authentication"): a SuperLink with TLS and SuperNode authentication, keys from scripts/make_certs.py, nodes
registered with `flwr supernode register`.

One SuperLink serves all checks (starting it is the slow part): a client without the CA certificate and a node
with an unregistered key are refused, then the two registered nodes run the protocol.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from flower_runs import SMALL_RUN

from common.base.network import free_port
from simulations.processes import flower_env, stop_process_trees, wait_for_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def supernode_command(port: int, certs: Path, key: str, node_config: str, with_ca: bool = True) -> list[str]:
    command = [str(BIN / "flower-supernode"), "--superlink", f"127.0.0.1:{port}"]
    if with_ca:
        command += ["--root-certificates", str(certs / "ca.crt")]
    return command + [
        "--auth-supernode-private-key",
        str(certs / key),
        "--port",
        str(free_port()),
        "--node-config",
        node_config,
    ]


def run_to_exit(command: list[str], env: dict[str, str], log_path: Path) -> tuple[int, str]:
    """Run a client that should give up by itself; return its exit code and output.

    Not subprocess.run with pipes: a SuperNode's SuperExec child keeps the pipes open until the SuperNode's
    pid is gone, which is only once this process reaps it; wait() reaps at once.
    """
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = process.wait(timeout=120)
        finally:
            stop_process_trees([process], timeout=10)  # whatever it left in its process group
    return returncode, log_path.read_text()


@pytest.mark.slow
def test_only_registered_nodes_with_the_ca_join_and_run_the_protocol(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    subprocess.run(
        [sys.executable, REPO / "scripts" / "make_certs.py", "--out", certs, "--supernodes", "3"], check=True
    )
    port = free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    # `secure` is how a user reaches this SuperLink; `no-ca` lacks the CA certificate (system CAs only).
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "secure"\n\n'
        f'[superlink.secure]\naddress = "127.0.0.1:{port}"\nroot-certificates = "{certs / "ca.crt"}"\n\n'
        f'[superlink.no-ca]\naddress = "127.0.0.1:{port}"\n'
    )
    env = flower_env(home, own_superlink=False)  # the test starts its SuperLink
    started: list[subprocess.Popen] = []
    link_log = open(tmp_path / "superlink.log", "w")
    nodes_log = open(tmp_path / "supernodes.log", "w")
    try:
        link = subprocess.Popen(
            [
                BIN / "flower-superlink",
                "--ssl-ca-certfile",
                certs / "ca.crt",
                "--ssl-certfile",
                certs / "server.crt",
                "--ssl-keyfile",
                certs / "server.key",
                "--enable-supernode-auth",
                "--database",
                tmp_path / "state.db",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=link_log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,  # its ServerApp processes stay in its group: stopped with it
        )
        started.append(link)
        wait_for_port(port, process=link)

        def flwr(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
            return subprocess.run(
                [BIN / "flwr", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path
            )

        # 1. Without the CA certificate neither the CLI nor a SuperNode gets past the TLS handshake.
        refused = flwr("supernode", "list", "no-ca")
        assert refused.returncode != 0 and "unavailable" in refused.stdout + refused.stderr
        returncode, output = run_to_exit(
            supernode_command(port, certs, "supernode-0", "partition-id=0 num-partitions=2", with_ca=False),
            env,
            tmp_path / "no-ca-supernode.log",
        )
        assert returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in output, output

        # 2. Register two of the three keys (over TLS, through the Control API).
        for index in (0, 1):
            registered = flwr("supernode", "register", certs / f"supernode-{index}.pub", "secure")
            assert registered.returncode == 0 and "registered" in registered.stdout, registered.stdout

        # 3. The third key is unknown: the SuperLink refuses to activate the node, which exits.
        returncode, output = run_to_exit(
            supernode_command(port, certs, "supernode-2", "partition-id=1 num-partitions=2"),
            env,
            tmp_path / "unknown-supernode.log",
        )
        assert returncode != 0 and "Failed to activate SuperNode" in output, output
        assert "No SuperNode found with the given public key" in (tmp_path / "superlink.log").read_text()

        # 4. The registered nodes join and the protocol runs to the end on them.
        for index, device in enumerate(("thigh_sensor", "wrist_watch")):
            node_config = f"partition-id={index} num-partitions=2 device-type='{device}'"
            started.append(
                subprocess.Popen(
                    supernode_command(port, certs, f"supernode-{index}", node_config),
                    env=env,
                    stdout=nodes_log,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                    start_new_session=True,
                )
            )
        out_dir = tmp_path / "out"
        run_config = f"out-dir='{out_dir}' {SMALL_RUN}"
        run = flwr("run", REPO, "secure", "--stream", "--run-config", run_config, timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        metrics = json.loads((out_dir / "metrics.json").read_text())
        nodes = json.loads(flwr("supernode", "list", "secure", "--format", "json").stdout)
    finally:
        stop_process_trees(started, timeout=20)  # SuperLink, SuperNodes and the app processes they started
        link_log.close()
        nodes_log.close()
    assert metrics["targets"]["clients"] == 2
    assert [r["round"] for r in metrics["rounds"]] == [1]
    assert metrics["rounds"][-1]["labels"][-1] == "jogging"
    # Only the two registered keys ever became nodes.
    assert len(nodes["nodes"]) == 2, nodes
