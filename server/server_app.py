"""FedLanHAR ServerApp: thin Flower wiring around server/federation.py."""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from common.base.runtime import configure_logging, configure_torch_threads, set_seed
from common.federation.run_config import FederationConfig
from server.federation import run_federation

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    configure_logging()
    config = FederationConfig.from_run_config(context.run_config)
    # The ServerApp's working directory is wherever the SuperLink started: never write relative paths.
    default_out_dir = Path.home() / "fedlanhar-runs" / time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(config.out_dir) if config.out_dir else default_out_dir
    configure_torch_threads(1)
    set_seed(config.seed)
    run_federation(grid, config, out_dir)
