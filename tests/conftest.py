"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
