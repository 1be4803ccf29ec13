"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flwr.supercore.task_identity import TaskIdentity


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with the real npz data sets: $FEDLANHAR_DATA_DIR, else ../shared/data beside the repo."""
    configured = os.environ.get("FEDLANHAR_DATA_DIR")
    directory = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (directory / "uci.npz").is_file():
        pytest.fail(
            f"real data not found: {directory} has no uci.npz; set FEDLANHAR_DATA_DIR to the folder holding "
            f"uci.npz, wisdm_phone.npz, dsads_torso.npz and dsads_rightleg.npz",
            pytrace=False,
        )
    return directory


@pytest.fixture
def run_identity():
    """Messages need a run id (and replies a node id); Flower sets them in a real run."""
    previous = TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1  # node 0: the ServerApp
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = previous
