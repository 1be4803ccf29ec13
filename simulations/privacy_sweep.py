"""Accuracy vs privacy protection on a real-data federation (issue "Reliability and privacy", acceptance 3).

Source uci on the server; 8 clients = the 8 dsads_torso users, unlabeled; 3 rounds; the stage-1 text encoder
comes from a `fedlanhar train` model directory (stage 1 is not what is being measured). Settings: no
protection, central DP with three noise multipliers (clipping norm 1.0), and three levels of summary noise.

    python -m simulations.privacy_sweep --text-encoder runs/default-uci-dsads_torso/text_encoder \\
        --data-dir ../shared/data --out runs/privacy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.federation.run_config import FederationConfig
from simulations.experiments.federated import run_federated

SETTINGS: list[tuple[str, dict]] = [
    ("none", {}),
    ("central DP, noise multiplier 0.1", {"dp_mode": "central", "dp_noise_multiplier": 0.1}),
    ("central DP, noise multiplier 0.5", {"dp_mode": "central", "dp_noise_multiplier": 0.5}),
    ("central DP, noise multiplier 1.0", {"dp_mode": "central", "dp_noise_multiplier": 1.0}),
    ("summary noise 0.1", {"summary_noise": 0.1}),
    ("summary noise 0.3", {"summary_noise": 0.3}),
    ("summary noise 1.0", {"summary_noise": 1.0}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-encoder", required=True, help="a trained stage-1 text encoder directory")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    base = dict(
        num_server_rounds=3,
        source="uci",
        clients_data="dsads_torso",
        device_types="native",
        data_dir=str(Path(args.data_dir).resolve()),
        new_activities="",
        new_activities_round=1,
        text_encoder_path=str(Path(args.text_encoder).resolve()),
        server_pretrain_epochs=10,
        local_epochs=2,
        min_available_nodes=8,
        min_train_nodes=8,
        dp_clipping_norm=1.0,
        checkpoint=False,
    )
    results = []
    for index, (name, extra) in enumerate(SETTINGS):
        config = FederationConfig(out_dir=str(out / f"setting-{index}"), **base, **extra)
        metrics = run_federated(config, num_clients=8)
        results.append(
            {
                "setting": name,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "epsilon": metrics["privacy"].get("epsilon_spent"),
                "delta": config.dp_delta,
                "config": config.as_dict(),
            }
        )
        print(
            f"{name:36s} accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}", flush=True
        )
        (out / "privacy_sweep.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
