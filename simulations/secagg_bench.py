"""Seconds and bytes per round with and without SecAgg+, one real `flwr run .` per row.

Uses the federated benchmark's small setting (simulations/federated_bench.py: synthetic clients, sensor width
64); rows: each client count x {plain FedAvg, SecAgg+}. Writes secagg_bench.json and secagg_bench.md.

    python -m simulations.secagg_bench --clients 10,100 --out runs/secagg-bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simulations.federated_bench import run_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,100")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    rows = []
    for clients in (int(n) for n in args.clients.split(",")):
        for secure in (False, True):
            extra = {"num-server-rounds": args.rounds, "new-activities": "", "secagg": secure}
            run_dir = out / ("secagg" if secure else "plain")
            result = run_size(clients, run_dir, extra)
            metrics = json.loads((run_dir / f"clients-{clients}" / "metrics.json").read_text())
            rows.append(
                {
                    "clients": clients,
                    "secagg": secure,
                    "round_seconds": result["round_seconds"],
                    "bytes_up_per_round": result["bytes_up_per_round"],
                    "bytes_down_per_round": result["bytes_down_per_round"],
                    "stage_seconds": [r.get("secagg", {}).get("stage_seconds") for r in metrics["rounds"]],
                    "accuracy": result["final_accuracy"],
                    "wall_seconds": result["wall_seconds"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            (out / "secagg_bench.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| clients | SecAgg+ | s/round (mean) | MB up/round | MB down/round | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = len(r["round_seconds"])
        lines.append(
            f"| {r['clients']} | {'yes' if r['secagg'] else 'no'} | {sum(r['round_seconds']) / n:.2f} | "
            f"{sum(r['bytes_up_per_round']) / n / 1e6:.2f} | "
            f"{sum(r['bytes_down_per_round']) / n / 1e6:.2f} | "
            f"{r['accuracy']:.3f} |"
        )
    (out / "secagg_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
