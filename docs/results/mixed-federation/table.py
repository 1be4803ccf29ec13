"""Markdown rows for the mixed-federation comparison from the runs' metrics.json files.

Usage (repository root): .venv/bin/python docs/results/mixed-federation/table.py OUT/lean OUT/float32 ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETS = ("uci", "wisdm_phone", "dsads_torso", "dsads_rightleg")


def row(run_dir: Path) -> str:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rounds = metrics["rounds"]
    accuracy = [metrics["server_pretrain_evaluation"]["accuracy"], *(r["accuracy"] for r in rounds)]
    groups = metrics["per_group"]
    clients = metrics["client_accuracy"]
    lean = metrics["update_bytes"]
    down = lean.get("downlink_messages") or {}  # absent before the lean downlink (float16 whole models)
    layers = metrics["config"].get("client-train-layers", 0)
    updates = metrics["config"].get("update-compression", "none")
    updates += f", top {layers} layer" if layers else ""
    steps = (down.get("steps") or {}).get("bytes_per_message")
    return " | ".join(
        [
            "",
            updates,
            str(metrics["seed"]),
            f"{metrics['accuracy']:.3f} ({' '.join(f'{a:.3f}'.lstrip('0') for a in accuracy)})",
            f"{metrics['macro_f1']:.3f}",
            f"{metrics['new_activity_accuracy']:.3f}",
            " / ".join(f"{groups[s]['accuracy']:.3f}".lstrip("0") for s in SETS if s in groups),
            f"{clients['mean']:.3f} / {clients['worst_10pct_mean']:.3f} / {clients['worst']:.3f} "
            f"({clients['worst_group']})".replace("0.", "."),
            f"{lean['up_per_client_per_round']:,.0f}",
            f"{lean['down_per_client_per_round']:,.0f}",
            f"{steps:,.0f}" if steps else "-",
            f"{lean['float32_model_bytes']:,}",
            f"{metrics['seconds']['total']:.0f} s",
            "",
        ]
    ).strip()


if __name__ == "__main__":
    print(
        "| updates | seed | acc. final (rounds 0-5) | macro-F1 | new act. | per set: uci / wisdm / dsads-t / "
        "dsads-rl | clients mean / worst 10% / worst | bytes up per training client per round | bytes down "
        "per training client per round | bytes of one downlink step message | float32 model bytes | "
        "run time (metrics.json) |"
    )
    print("|" + "---|" * 12)
    for path in sys.argv[1:]:
        print(row(Path(path)))
