"""Accuracy vs privacy protection on a real-data federation.

Two commands. The SWEEP (default): source uci on the server; 8 clients = the 8 dsads_torso users, unlabeled;
3 rounds; the stage-1 text encoder comes from a `fedlanhar train` model directory. Settings: no protection,
central DP with three noise multipliers (clipping norm 1.0), and three levels of summary noise.

    python -m simulations.privacy_sweep --text-encoder runs/default-uci-dsads_torso/text_encoder \\
        --data-dir ../shared/data --out runs/privacy

The STUDY (`--study`): enough clients for DP to mean something. Source dsads_torso on the server;
the 30 UCI-HAPT users split over `--clients` (default 100) clients (partitioning by-user deals each user's
recordings over several clients; the central run's held-out users are scored by their own clients, which
never train). Settings: none, SecAgg+, central DP at several noise multipliers (with SecAgg+, as deployed),
local interpretation, and SecAgg+ with local interpretation. Writes privacy_study.{json,md} (one table) and
privacy_study.png (accuracy vs epsilon). Stage 1 is trained once (the study's start) and loaded by every row
(`--text-encoder` skips it; `--only 0,3` reruns rows into the table).

    python -m simulations.privacy_sweep --study --data-dir ../shared/data --out runs/privacy-study
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
    parser.add_argument("--text-encoder", default="", help="a trained stage-1 text encoder directory")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--study", action="store_true", help="the #14 study (>= 100 clients, SecAgg+ etc.)")
    parser.add_argument("--clients", type=int, default=100, help="--study: number of clients")
    parser.add_argument("--rounds", type=int, default=2, help="--study: federated rounds")
    parser.add_argument(
        "--only", default="", help="--study: comma-separated row indices to (re)run (-1: rebuild the table)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if args.study:
        only = [int(i) for i in args.only.split(",")] if args.only else None
        encoder = str(Path(args.text_encoder).resolve()) if args.text_encoder else ""
        study(Path(args.data_dir).resolve(), out, args.clients, args.rounds, encoder, only)
        return 0
    if not args.text_encoder:
        parser.error("--text-encoder is required for the sweep (without --study)")
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


# (name, FederationConfig overrides) of the study; DP rows share clipping norm STUDY_CLIP.
STUDY_CLIP = 0.1
STUDY_SETTINGS: list[tuple[str, dict]] = [
    ("none", {}),
    ("SecAgg+", {"secagg": True}),
    *(
        (
            f"SecAgg+ + central DP, noise {sigma}",
            {"secagg": True, "dp_mode": "central", "dp_noise_multiplier": sigma},
        )
        for sigma in (0.5, 1.0, 2.0)
    ),
    ("local interpretation", {"interpret_on_client": True}),
    ("SecAgg+ + local interpretation", {"secagg": True, "interpret_on_client": True}),
]


def study_config(
    data_dir: Path, out_dir: Path, num_clients: int, rounds: int, **overrides
) -> FederationConfig:
    values = dict(
        num_server_rounds=rounds,
        source="dsads_torso",
        clients_data="uci",
        device_types="native",
        data_dir=str(data_dir),
        activities="walking,upstairs,downstairs,sitting",
        new_activities="",
        new_activities_round=1,
        stage1_steps=10,
        server_pretrain_epochs=5,
        sensor_width=64,  # a small encoder: DP noise grows with the parameter count
        local_epochs=1,
        fraction_evaluate=1.0,
        min_available_nodes=num_clients,
        min_train_nodes=2,
        dp_clipping_norm=STUDY_CLIP,
        checkpoint=False,
        out_dir=str(out_dir),
    )
    values.update(overrides)
    return FederationConfig(**values)


def study(
    data_dir: Path,
    out: Path,
    num_clients: int,
    rounds: int,
    text_encoder: str = "",
    only: list[int] | None = None,
) -> list[dict]:
    """Run the STUDY_SETTINGS rows (`only`: these indices; the other rows are read from their earlier runs'
    metrics.json); write the table (md + json) and the accuracy-vs-epsilon figure."""
    out.mkdir(parents=True, exist_ok=True)
    if not text_encoder:
        # Stage 1 once, before any row: every row then loads the same text space and starts from the same
        # RNG state (a row that trained stage 1 itself would draw a different initial sensor encoder).
        from server.cloud import Cloud

        stage1_dir = out / "stage1"
        stage1_dir.mkdir(parents=True, exist_ok=True)
        Cloud(study_config(data_dir, stage1_dir, num_clients, rounds), stage1_dir).train_text_space()
        text_encoder = str(stage1_dir / "text_encoder")
    results: list[dict] = []
    for index, (name, extra) in enumerate(STUDY_SETTINGS):
        row_dir = out / f"setting-{index}"
        config = study_config(data_dir, row_dir, num_clients, rounds, text_encoder_path=text_encoder, **extra)
        if only and index not in only:  # not rerun: its earlier run's metrics, if there is one
            if (row_dir / "metrics.json").exists():
                results.append(study_row(name, config, json.loads((row_dir / "metrics.json").read_text())))
            continue
        metrics = run_federated(config, num_clients=num_clients)
        results.append(study_row(name, config, metrics))
        print(f"{name:56s} accuracy {metrics['accuracy']:.3f}  epsilon {results[-1]['epsilon']}", flush=True)
        write_study(out, results)
    write_study(out, results)
    return results


def study_row(name: str, config: FederationConfig, metrics: dict) -> dict:
    """One table row from a run's metrics.json."""
    privacy = metrics["privacy"]
    return {
        "setting": name,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "epsilon": privacy.get("epsilon_spent"),
        "delta": config.dp_delta if config.dp_mode == "central" else None,
        "noise_multiplier": config.dp_noise_multiplier if config.dp_mode == "central" else None,
        "protections": privacy["protections"],
        "per_window_arrays_uploaded": privacy["per_window_arrays_uploaded"],
        "train_clients": metrics["evaluation"]["train_clients"],
        "eval_clients": metrics["evaluation"]["eval_clients"],
        "round_seconds": [r["seconds"] for r in metrics["rounds"]],
        "bytes_up_per_client_mean": metrics["traffic"]["bytes_up_per_client_mean"],
        "wall_seconds": metrics["seconds"]["total"],
        "config": config.as_dict(),
    }


def write_study(out: Path, results: list[dict]) -> None:
    (out / "privacy_study.json").write_text(json.dumps(results, indent=2))
    lines = [
        "| setting | accuracy | macro-F1 | epsilon (delta) | per-window uploads | clients train/eval "
        "| s/round |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        epsilon = f"{r['epsilon']:.2f} ({r['delta']:g})" if r["epsilon"] is not None else "-"
        uploads = ", ".join(name.split(":")[1] for name in r["per_window_arrays_uploaded"]) or "none"
        seconds = sum(r["round_seconds"]) / len(r["round_seconds"])
        lines.append(
            f"| {r['setting']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {epsilon} | {uploads} | "
            f"{r['train_clients']}/{r['eval_clients']} | {seconds:.1f} |"
        )
    (out / "privacy_study.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    with_dp = [r for r in results if r["epsilon"] is not None]
    if with_dp:
        axis.plot(
            [r["epsilon"] for r in with_dp], [r["accuracy"] for r in with_dp], "o-", label="central DP rows"
        )
        for r in with_dp:
            axis.annotate(r["setting"].replace("central DP, ", ""), (r["epsilon"], r["accuracy"]), fontsize=6)
    for r in results:
        if r["epsilon"] is None:  # no DP: epsilon is infinite, drawn as a level line
            axis.axhline(r["accuracy"], linestyle="--", linewidth=0.8, label=f"{r['setting']} (no DP)")
    axis.set_xlabel("epsilon spent (RDP accountant, no sampling amplification)")
    axis.set_ylabel("accuracy (held-out users)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "privacy_study.png", dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
