"""The evaluation suite: the paper's protocols on real data (`fedlanhar experiment NAME`).

    cross-dataset      every source->target pair, LanHAR vs Transformer, 1D-CNN, NLS-HAR (Table 2)
    new-activity       target activities never trained on, named from their descriptions (section 4.3)
    ablation           w/o subtasks, w/o text-encoder training, w/o re-generation, simple prompt (4.6)
    baselines          supervised Transformer / 1D-CNN and three NLS-HAR variants on the same protocol
    distribution-gap   relative KL of the same activity across data sets, raw vs language space (Table 1)
    federated          centralised vs federated on the same split; by-user, iid, Dirichlet partitions
    privacy-audit      what an honest-but-curious server learns under each privacy protection (issue #36)
    ceiling            what one sensor at the target's placement can tell apart among the new labels (#38)

Each writes report.md, PNG figures and results.json into --out (per-run artifacts under --out/runs/).
Settings: configs/experiments/<name>.toml, or --config FILE (see simulations/experiments/settings.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# Protocol name -> module of this package. Every module defines a `Settings` dataclass (explicit defaults)
# and `run(settings, experiment) -> dict`. Imported on use: the CLI lists the names without loading torch.
PROTOCOLS = {
    "cross-dataset": "cross_dataset",
    "new-activity": "new_activity",
    "ablation": "ablation",
    "baselines": "baseline_comparison",
    "distribution-gap": "distribution_gap",
    "federated": "federated",
    "privacy-audit": "privacy_audit",
    "ceiling": "ceiling",
}


def run_experiment(
    name: str,
    data_dir: Path,
    budget: str,
    out_dir: Path,
    config_file: Path | None = None,
    pairs: str | None = None,
    command: str = "",
    text_space_cache: Path | None = None,
    device: str = "auto",
    workers: int = 1,
) -> dict[str, Any]:
    """Run protocol `name`; settings from `config_file` (default configs/experiments/<name>.toml)."""
    from common.data.errors import DataError
    from simulations.experiments.settings import CONFIG_DIR, Experiment, load_settings

    if workers < 1:
        raise DataError(f"--workers: must be >= 1, got {workers}")
    module = importlib.import_module(f"simulations.experiments.{PROTOCOLS[name]}")
    if config_file is None and (CONFIG_DIR / f"{name}.toml").is_file():
        config_file = CONFIG_DIR / f"{name}.toml"
    settings = load_settings(module.Settings, config_file, budget, pairs)
    experiment = Experiment(
        name=name,
        data_dir=Path(data_dir).resolve(),
        budget=budget,
        out_dir=Path(out_dir).resolve(),
        config_path=Path(config_file).resolve() if config_file else None,
        command=command or f"fedlanhar experiment {name} --budget {budget} --out {out_dir}",
        text_space_dir=Path(text_space_cache).resolve() if text_space_cache else None,
        device=device,
        workers=workers,
    )
    experiment.out_dir.mkdir(parents=True, exist_ok=True)
    return module.run(settings, experiment)


__all__ = ["PROTOCOLS", "run_experiment"]
