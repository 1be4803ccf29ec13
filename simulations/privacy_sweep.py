"""Accuracy vs privacy protection on a real-data federation: three studies (docs/privacy.md).

SWEEP (default): source uci on the server, the 8 dsads_torso users as unlabeled clients, 3 rounds, the
stage-1 text encoder of a `fedlanhar train` model; no protection, central DP at three noise multipliers and
three levels of summary noise (SETTINGS).

    python -m simulations.privacy_sweep --text-encoder runs/default-uci-dsads_torso/text_encoder \\
        --data-dir ../shared/data --out runs/privacy

STUDY (`--study`): enough clients for DP to mean something: source dsads_torso, the 30 UCI-HAPT users over
`--clients` (default 100) clients; the held-out users' clients only evaluate. Rows: STUDY_SETTINGS. Writes
privacy_study.{json,md,png}. Stage 1 is trained once and loaded by every row (`--text-encoder` skips it;
`--only 0,3` reruns rows into the table).

    python -m simulations.privacy_sweep --study --data-dir ../shared/data --out runs/privacy-study

SCALE (`--scale`): the study at 1,000 clients with Poisson-sampled cohorts (scale_settings), adding per row
the unamplified epsilon, the delta spent, seconds per round, peak memory of this process tree (Ray's
included) and bytes per client per round. Writes privacy_scale.{json,md}.

    python -m simulations.privacy_sweep --scale --data-dir ../shared/data --out runs/privacy-scale
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common.federation.run_config import FederationConfig
from simulations.experiments.federated import run_federated
from simulations.experiments.report import new_figure
from simulations.federated_bench import MemorySampler
from simulations.run_check import RunFailed

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
    parser.add_argument("--study", action="store_true", help="the study (>= 100 clients, SecAgg+ etc.)")
    parser.add_argument("--scale", action="store_true", help="the study at scale (1,000 clients, Poisson)")
    parser.add_argument("--clients", type=int, help="--study/--scale: number of clients (default 100 / 1000)")
    parser.add_argument("--rounds", type=int, help=f"--study/--scale: rounds (default 2 / {SCALE_ROUNDS})")
    parser.add_argument(
        "--only",
        default="",
        help="--study/--scale: comma-separated row indices to (re)run (-1: rebuild the table)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if args.study or args.scale:
        only = [int(i) for i in args.only.split(",")] if args.only else None
        encoder = str(Path(args.text_encoder).resolve()) if args.text_encoder else ""
        data_dir = Path(args.data_dir).resolve()
        if args.scale:
            clients, rounds = args.clients or SCALE_CLIENTS, args.rounds or SCALE_ROUNDS
            scale_study(data_dir, out, clients, rounds, encoder, only)
        else:
            study(data_dir, out, args.clients or 100, args.rounds or 2, encoder, only)
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
        scores = {key: metrics[key] for key in ("accuracy", "macro_f1")}
        row = {"setting": name, **scores, "epsilon": metrics["privacy"].get("epsilon_spent")}
        results.append(row | {"delta": config.dp_delta, "config": config.as_dict()})
        print(f"{name:36s} accuracy {scores['accuracy']:.3f}  macro-F1 {scores['macro_f1']:.3f}", flush=True)
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
    text_encoder = text_encoder or trained_text_encoder(data_dir, out, num_clients, rounds)
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


def trained_text_encoder(data_dir: Path, out: Path, num_clients: int, rounds: int) -> str:
    """Stage 1 once, before any row, into out/stage1; its text encoder's directory. Every row then loads the
    same text space and starts from the same RNG state (training stage 1 itself would draw another initial
    sensor encoder)."""
    from server.cloud import Cloud

    stage1_dir = out / "stage1"
    stage1_dir.mkdir(parents=True, exist_ok=True)
    Cloud(study_config(data_dir, stage1_dir, num_clients, rounds), stage1_dir).train_text_space()
    return str(stage1_dir / "text_encoder")


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
    figure = new_figure(7, 4.5)
    axis = figure.add_subplot()
    with_dp = [r for r in results if r["epsilon"] is not None]
    if with_dp:
        epsilons, accuracies = [r["epsilon"] for r in with_dp], [r["accuracy"] for r in with_dp]
        axis.plot(epsilons, accuracies, "o-", label="central DP rows")
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


# --- the study at scale (--scale) ------------------------------------------------------------------------
SCALE_CLIENTS = 1000
SCALE_ROUNDS = 5
SCALE_PROBABILITIES = (0.01, 0.05)  # Poisson q: expected cohorts of 5 and 25 of the 500 training clients
SCALE_NOISE = (1.0, 2.0)  # epsilon about 1-2 and 0.2-0.5 with amplification
SCALE_EVAL_FRACTION = 0.02  # held-out clients sampled between rounds; the last round scores all of them
# Lazy enrolment samples fraction-train of ALL clients and keeps those that train (25 of 1,000 a round, as
# q = 0.05 draws on average); its evaluation samples too, last round included: 10% of all clients a round.
SCALE_LAZY = {"lazy_enrolment": True, "fraction_train": 0.025, "fraction_evaluate": 0.1}


def scale_settings() -> list[tuple[str, dict]]:
    """(name, FederationConfig overrides) of the scale study's rows."""

    def poisson(q: float) -> dict:
        return {"client_sampling": "poisson", "sampling_probability": q}

    def secure_dp(z: float) -> dict:
        return {"secagg": True, "dp_mode": "central", "dp_noise_multiplier": z}

    # Utility without protection at the larger cohort (at 1,000 clients an eager row costs minutes of set-up).
    rows = [(f"none, Poisson q={SCALE_PROBABILITIES[-1]}", poisson(SCALE_PROBABILITIES[-1]))]
    rows += [
        (f"SecAgg+ + central DP, noise {z}, Poisson q={q}", poisson(q) | secure_dp(z))
        for z in SCALE_NOISE
        for q in SCALE_PROBABILITIES
    ]
    z = SCALE_NOISE[0]
    rows.append((f"lazy enrolment + SecAgg+ + central DP, noise {z}, fixed", SCALE_LAZY | secure_dp(z)))
    return rows


def scale_config(
    data_dir: Path, out_dir: Path, num_clients: int, rounds: int, **overrides
) -> FederationConfig:
    """The study's config (study_config) with the scale study's evaluation sample; `overrides` last."""
    return study_config(
        data_dir, out_dir, num_clients, rounds, **({"fraction_evaluate": SCALE_EVAL_FRACTION} | overrides)
    )


def scale_study(
    data_dir: Path,
    out: Path,
    num_clients: int,
    rounds: int,
    text_encoder: str = "",
    only: list[int] | None = None,
) -> list[dict]:
    """Run the scale_settings rows as `study` runs its own (`only`, stage 1 once); a row that fails is
    recorded with its error and what it measured. Writes privacy_scale.{json,md}."""
    out.mkdir(parents=True, exist_ok=True)
    text_encoder = text_encoder or trained_text_encoder(data_dir, out, num_clients, rounds)
    results: list[dict] = []
    for index, (name, extra) in enumerate(scale_settings()):
        row_dir = out / f"setting-{index}"
        config = scale_config(data_dir, row_dir, num_clients, rounds, text_encoder_path=text_encoder, **extra)
        if only and index not in only:  # not rerun: its earlier row, if there is one
            earlier = row_dir / "row.json"
            if earlier.exists():
                results.append(json.loads(earlier.read_text()))
            continue
        row = measured_scale_row(name, config, num_clients)
        (row_dir / "row.json").write_text(json.dumps(row, indent=2))
        results.append(row)
        print(scale_line(row), flush=True)
        write_scale(out, results)
    write_scale(out, results)
    return results


def measured_scale_row(name: str, config: FederationConfig, num_clients: int) -> dict:
    """Run one row with this process's tree's memory sampled (Ray's processes are its descendants)."""
    sampler = MemorySampler(pid=os.getpid())
    sampler.start()
    started = time.monotonic()
    try:
        metrics = run_federated(config, num_clients=num_clients)
    except (RunFailed, MemoryError) as error:
        metrics = {"error": str(error)}
    finally:
        sampler.stop()
    measured = {
        "wall_seconds": time.monotonic() - started,
        "peak_rss_gb": sampler.peak_rss / 1e9,
        "peak_pss_gb": sampler.peak_pss / 1e9,
    }
    if "error" in metrics:
        return {"setting": name, "error": metrics["error"], **measured, "config": config.as_dict()}
    return scale_row(name, config, metrics) | measured


def scale_row(name: str, config: FederationConfig, metrics: dict) -> dict:
    """study_row's fields and the scale study's: both epsilons, delta spent, cohorts, set-up and bytes."""
    from server.dp_poisson import small_draw_probability

    row = study_row(name, config, metrics)
    privacy, rounds = metrics["privacy"], metrics["rounds"]
    poisson, secure_dp = config.client_sampling == "poisson", config.secagg and config.dp_mode == "central"
    row.update(
        sampling=f"poisson q={config.sampling_probability}" if poisson else "fixed (lazy enrolment)",
        # Fixed sampling claims no amplification: its epsilon_spent is the unamplified one.
        epsilon_amplified=row["epsilon"] if poisson else None,
        epsilon_without_amplification=privacy.get("epsilon_without_amplification", row["epsilon"]),
        delta_spent=privacy.get("delta_spent"),
        # P[Binomial(N - 1, q) < threshold]: a round's chance that SecAgg+ cannot serve the others' draw.
        small_draw_probability=(
            small_draw_probability(
                config.sampling_probability, row["train_clients"], config.secagg_reconstruction_threshold
            )
            if poisson and secure_dp
            else None
        ),
        secagg_rounds_refused=(privacy.get("secagg") or {}).get("rounds_refused"),
        clients_trained=[r["clients_trained"] for r in rounds],
        clients_evaluated_last_round=rounds[-1]["clients_evaluated"],
        setup_seconds=metrics["seconds"]["setup"],
        client_setup_seconds=metrics["seconds"].get("client_setup"),
        train_bytes_up_per_client_round=metrics["update_bytes"]["up_per_client_per_round"],
        train_bytes_down_per_client_round=metrics["update_bytes"]["down_per_client_per_round"],
        eval_bytes_down_per_client_round=metrics["update_bytes"]["eval_down_per_client_per_round"],
    )
    return row


def scale_line(row: dict) -> str:
    """One row, printed as it finishes."""
    if "error" in row:
        return f"{row['setting']:56s} FAILED after {row['wall_seconds']:.0f} s: {row['error']}"
    return (
        f"{row['setting']:56s} accuracy {row['accuracy']:.3f}  epsilon {row['epsilon']}  "
        f"delta spent {row['delta_spent']}  peak RSS {row['peak_rss_gb']:.2f} GB  {row['wall_seconds']:.0f} s"
    )


def _number(value: float | None, spec: str) -> str:
    """`value` formatted, "-" where there is none (None, or NaN: no round trained)."""
    return "-" if value is None or value != value else format(value, spec)


def write_scale(out: Path, results: list[dict]) -> None:
    """privacy_scale.json (every field) and privacy_scale.md (the table)."""
    (out / "privacy_scale.json").write_text(json.dumps(results, indent=2))
    lines = [
        "| setting | trained/round | accuracy | macro-F1 | epsilon (amplified) | epsilon (no ampl.) "
        "| delta spent (target) | s/round | set-up s | peak RSS (PSS) GB | KB up / down per trainer-round |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(
                f"| {r['setting']} | failed after {r['wall_seconds']:.0f} s, peak RSS "
                f"{r['peak_rss_gb']:.2f} GB: {r['error'][:200]} |" + " |" * 9
            )
            continue
        trained = sum(r["clients_trained"]) / len(r["clients_trained"])
        delta = "-" if r["delta_spent"] is None else f"{r['delta_spent']:.3g} ({r['delta']:g})"
        seconds = sum(r["round_seconds"]) / len(r["round_seconds"])
        setup = r["setup_seconds"] + (r["client_setup_seconds"] or 0.0)
        up, down = r["train_bytes_up_per_client_round"] / 1e3, r["train_bytes_down_per_client_round"] / 1e3
        kilobytes = f"{_number(up, '.0f')} / {_number(down, '.0f')}"
        lines.append(
            f"| {r['setting']} | {trained:.1f} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} "
            f"| {_number(r['epsilon_amplified'], '.3f')} "
            f"| {_number(r['epsilon_without_amplification'], '.2f')} "
            f"| {delta} | {seconds:.1f} | {setup:.0f} | {r['peak_rss_gb']:.2f} ({r['peak_pss_gb']:.2f}) "
            f"| {kilobytes} |"
        )
    (out / "privacy_scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
