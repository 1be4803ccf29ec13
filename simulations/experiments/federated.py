"""Centralised vs federated on the same split, and how the federation fares under three client partitionings.

Per pair: the server holds the labeled source, `num_clients` clients share the target's windows as recorded.
With `client_eval = "held-out-users"` (the default) the target's users are split as the central run splits
them: clients holding training users train on their unlabeled windows, clients holding held-out users only
evaluate (common/federation/partition.py). With `client_eval = "time"` every client splits its recordings
in time instead.

    stage 1        one text encoder per pair (the server's stage 1), shared by every run below
    source only    the server's pre-trained sensor encoder, before any target window is used
    centralised    that encoder trained further on all clients' training windows pooled, for as many
                   epochs as a client trains in total (rounds x local epochs)
    federated      a real Flower simulation (Ray), one per partitioning: by-user, iid, dirichlet (label skew)
All of them are scored on the same windows (the held-out users', or the union of the clients' held-out
windows, which the time split per recording makes independent of the partitioning), each run also with the
text path's accuracy there and the sensor encoder's agreement with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from client.device_client import window_summaries
from common.base.metrics import classification_metrics
from common.base.runtime import set_seed
from common.data.errors import DataError
from common.data.loading import load_dataset
from common.data.windows import WindowSet
from common.federation.partition import (
    NATIVE_DEVICE,
    client_eval_mode,
    held_out_user_split,
    run_activities,
    split_in_time,
)
from common.federation.run_config import PARTITIONINGS, FederationConfig
from common.method.lanhar import sensor_context, to_walking_frame
from common.method.train import train_sensor_encoder
from common.models.sensor_encoder import encode_windows
from server.cloud import Cloud
from simulations.experiments.report import (
    Report,
    configuration_section,
    grouped_bars,
    score_or_na,
    setup_section,
    write_report,
    write_results,
)
from simulations.experiments.settings import Experiment, Pair, pair_config, pair_label_space, parse_pairs
from simulations.run_check import RunFailed, fresh_metrics, metrics_stamp

ROUND_KEYS = ("round", "accuracy", "macro_f1", "train_loss", "clients_trained")  # kept per federated round


@dataclass
class Settings:
    pairs: tuple[str, ...] = ("uci:dsads_torso",)
    partitionings: tuple[str, ...] = PARTITIONINGS
    num_clients: int = 8
    rounds: int = 5
    local_epochs: int = 3
    strategy: str = "fedavg"
    dirichlet_alpha: float = 0.5
    client_eval: str = "held-out-users"  # or "time" (run config `client-eval`)
    client_eval_fraction: float = 0.3  # client_eval = "time": held-out share of each recording
    seed: int = 0
    # CentralConfig fields over the budget preset; used: stage1_steps, stage2_epochs (the server's
    # pre-training epochs), stage1_batch_size, stage2_batch_size, stage2_lr, temperature, text_encoder.
    central: dict[str, Any] = field(default_factory=dict)


def federation_config(
    settings: Settings, pair: Pair, experiment: Experiment, **overrides
) -> FederationConfig:
    """The run config of one federated run (also what the centralised run reproduces)."""
    space = pair_label_space(pair, experiment.data_dir)
    if space.merges_stairs:
        raise DataError(
            f"federated: pair {pair.label} needs a stairs merge (one set mixes up and down stairs), which "
            "the federation does not do; use pairs among uci, dsads_torso, dsads_rightleg"
        )
    central = pair_config(pair, experiment, settings.central, settings.seed)
    if central.stage1_steps < 1:
        raise DataError("federated: stage1_steps must be >= 1 (the server trains stage 1 once per pair)")
    values = dict(
        num_server_rounds=settings.rounds,
        seed=settings.seed,
        data_dir=str(Path(experiment.data_dir).resolve()),
        source=pair.source,
        activities=",".join(space.activities),
        new_activities="",
        text_encoder=central.text_encoder,
        stage1_steps=central.stage1_steps,
        stage1_batch_size=central.stage1_batch_size,
        server_pretrain_epochs=central.stage2_epochs,
        clients_data=pair.target,
        device_types=NATIVE_DEVICE,
        partitioning="by-user",
        dirichlet_alpha=settings.dirichlet_alpha,
        client_eval=settings.client_eval,
        eval_users_fraction=central.target_eval_fraction,  # the central run's target split
        client_eval_fraction=settings.client_eval_fraction,
        local_epochs=settings.local_epochs,
        batch_size=central.stage2_batch_size,
        learning_rate=central.stage2_lr,
        temperature=central.temperature,
        strategy=settings.strategy,
        min_available_nodes=settings.num_clients,
        min_train_nodes=min(2, settings.num_clients),
    )
    values.update(overrides)
    config = FederationConfig(**values)
    config.validate()
    return config


def pooled_client_windows(config: FederationConfig) -> tuple[WindowSet, WindowSet]:
    """All clients' training and held-out windows, pooled: the same windows whatever the partitioning.

    Held-out users: the training users' windows and the held-out users' windows (the central run's split).
    As on the clients, training takes every window, whatever its activity; scoring the run's activities.
    """
    windows = load_dataset(config.clients_data, config.data_dir)
    if config.walking_frame:  # as each client turns its own windows (partition.load_client_data)
        windows = to_walking_frame(windows)
    if client_eval_mode(config.clients_data, config) == "held-out-users":
        split = held_out_user_split(config.clients_data, config)
        train = windows.subset(np.flatnonzero(np.isin(windows.user, split.train_users)))
        held_out = windows.subset(np.flatnonzero(np.isin(windows.user, split.eval_users)))
    else:
        train, held_out = split_in_time(windows, config.client_eval_fraction)
    return train, run_activities(held_out, config.activity_list)


def evaluated_on(config: FederationConfig) -> str:
    """Which windows score a run, in words (printed and reported next to the scores)."""
    if client_eval_mode(config.clients_data, config) == "held-out-users":
        users = list(held_out_user_split(config.clients_data, config).eval_users)
        return f"held-out users {users} of {config.clients_data} (the central split)"
    return f"last {config.client_eval_fraction:.0%} of each {config.clients_data} recording"


def run_centralised(config: FederationConfig, out_dir: Path) -> dict[str, Any]:
    """Stage 1 (saved to out_dir/text_encoder for the federated runs), then the source-only and centralised
    scores, all with the server's own code path (server/cloud.py)."""
    started = time.monotonic()
    set_seed(config.seed)
    cloud = Cloud(config, out_dir)
    cloud.train_text_space()  # writes out_dir / "text_encoder"
    model, _ = cloud.pretrain_sensor_encoder()
    train, held_out = pooled_client_windows(config)
    bank = cloud.label_bank(config.activity_list)
    # The text path on the held-out windows, as the federation computes it: the server interprets their
    # summaries, and the nearest label to each interpretation's embedding is its prediction.
    text_z, _ = cloud.targets_for(window_summaries(held_out), sensor_context(held_out, config.activity_list))
    text_predicted = bank.predict(text_z)
    text_metrics = classification_metrics(
        held_out.labels(), text_predicted, bank.labels, cloud.vocabulary.category
    )

    def score(name: str) -> dict[str, Any]:
        predicted = bank.predict(encode_windows(model, held_out.X))
        metrics = classification_metrics(held_out.labels(), predicted, bank.labels, cloud.vocabulary.category)
        return {
            "setting": name,
            **{k: metrics[k] for k in ("accuracy", "macro_f1", "category_accuracy", "n")},
            "text_path_accuracy": text_metrics["accuracy"],
            "sensor_text_agreement": float(np.mean(np.array(predicted) == np.array(text_predicted))),
            "evaluated_on": evaluated_on(config),
        }

    source_only = score("source only")
    # The targets the server computes from uploaded summaries, for all clients' windows at once.
    targets, _ = cloud.targets_for(window_summaries(train), sensor_context(train, config.activity_list))
    # The same stage-2 settings as the federated run's, for all its epochs at once.
    sensor_config = config.sensor_train_config(config.num_server_rounds * config.local_epochs, config.seed)
    history = train_sensor_encoder(model, train.X, targets, sensor_config, progress=False)
    seconds = time.monotonic() - started  # stage 1, server pre-training and the centralised training
    centralised = score("centralised") | {
        "epochs": history["epochs_run"],
        "train_windows": len(train),
        "seconds": seconds,
    }
    return {
        "source_only": source_only,
        "centralised": centralised,
        "text_encoder_path": str(out_dir / "text_encoder"),
        "seconds": seconds,
    }


def run_federated(config: FederationConfig, num_clients: int) -> dict[str, Any]:
    """A Flower simulation in this process (Ray workers for the clients); returns its metrics.json."""
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    from client.client_app import app as client_app
    from server.federation import run_federation

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:  # run_simulation passes an empty run config
        set_seed(config.seed)  # as server/server_app.py: the same initial sensor encoder as centralised
        run_federation(grid, config, Path(config.out_dir))

    started, stamp = time.monotonic(), metrics_stamp(Path(config.out_dir))
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_clients,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
        )
    except (DataError, FileNotFoundError):
        raise  # the ServerApp's preflight named a wrong input: reported as one (`fedlanhar`: exit 2)
    except Exception as error:  # run_simulation raises the ServerApp's own error again
        raise RunFailed(f"the federated run in {config.out_dir} failed: {error}") from error
    metrics = fresh_metrics(Path(config.out_dir), stamp, what=f"the federated run in {config.out_dir}")
    return metrics | {"wall_seconds": time.monotonic() - started}


def run(settings: Settings, experiment: Experiment) -> dict[str, Any]:
    unknown = [p for p in settings.partitionings if p not in PARTITIONINGS]
    if unknown:
        raise DataError(f"federated partitionings: unknown {unknown}; known: {list(PARTITIONINGS)}")
    pairs = parse_pairs(settings.pairs)
    records: list[dict[str, Any]] = []
    for pair in pairs:
        base = federation_config(settings, pair, experiment)
        central_dir = experiment.run_dir(pair.name, "centralised")
        central = run_centralised(base, central_dir)
        shared = {"text_encoder_path": central["text_encoder_path"]}  # every federated run loads stage 1
        for setting in ("source_only", "centralised"):
            records.append({"pair": pair.label, **central[setting], "config": base.as_dict()})
        print(
            f"[federated] {pair.label:18s} source only {central['source_only']['accuracy']:.3f}  "
            f"centralised {central['centralised']['accuracy']:.3f}  "
            f"text path {central['centralised']['text_path_accuracy']:.3f}  ({central['seconds']:.0f} s) "
            f"on {evaluated_on(base)}",
            flush=True,
        )
        write_results(experiment, settings, {"runs": records})
        for partitioning in settings.partitionings:
            out_dir = experiment.run_dir(pair.name, f"federated-{partitioning}")
            overrides = {"partitioning": partitioning, "out_dir": str(out_dir.resolve()), **shared}
            config = federation_config(settings, pair, experiment, **overrides)
            metrics = run_federated(config, settings.num_clients)
            records.append(
                {
                    "pair": pair.label,
                    "setting": f"federated, {partitioning}",
                    "partitioning": partitioning,
                    **{key: metrics[key] for key in ("accuracy", "macro_f1", "category_accuracy")},
                    "n": metrics["rounds"][-1]["num_windows"],
                    "text_path_accuracy": metrics.get("text_path_accuracy"),
                    "sensor_text_agreement": metrics.get("sensor_text_agreement"),
                    "evaluated_on": evaluated_on(config),
                    "evaluation": metrics.get("evaluation"),
                    "rounds": [{key: r.get(key) for key in ROUND_KEYS} for r in metrics["rounds"]],
                    "failures": metrics["failures"],
                    "traffic": metrics["traffic"],
                    "seconds": metrics["wall_seconds"],
                    "config": config.as_dict(),
                }
            )
            text_path = score_or_na(metrics.get("text_path_accuracy"))
            agreement = score_or_na(metrics.get("sensor_text_agreement"))
            print(
                f"[federated] {pair.label:18s} {partitioning:10s} accuracy {metrics['accuracy']:.3f} "
                f"vs centralised {central['centralised']['accuracy']:.3f} on the same windows  "
                f"macro-F1 {metrics['macro_f1']:.3f}  text path {text_path}  "
                f"agreement {agreement}  ({metrics['wall_seconds']:.0f} s)",
                flush=True,
            )
            write_results(experiment, settings, {"runs": records})
    results = {"runs": records}
    write_results(experiment, settings, results)
    write_report(experiment, build_report(experiment, settings, pairs, records))
    return results


def build_report(
    experiment: Experiment, settings: Settings, pairs: list[Pair], records: list[dict]
) -> Report:
    report = Report(
        "Centralised vs federated, and client partitionings",
        "The same pair, stage-1 text encoder, held-out windows and training budget, with the target's "
        "unlabeled windows pooled on one machine (centralised) or spread over Flower clients that never "
        "share them (federated: only signal summaries and model updates leave a client).",
    )
    run_line = (
        f"pairs: {', '.join(p.label for p in pairs)}; {settings.num_clients} clients, {settings.rounds} "
        f"rounds x {settings.local_epochs} local epochs, strategy {settings.strategy}, Dirichlet alpha "
        f"{settings.dirichlet_alpha}"
    )
    evaluated = (
        f"the held-out users of the central run's target split (`fedlanhar train`); clients holding "
        f"them only evaluate, the others only train: {records[0].get('evaluated_on', '')}"
        if settings.client_eval == "held-out-users"
        else f"the last {settings.client_eval_fraction:.0%} of each client recording (time split)"
    )
    setup_section(report, experiment, settings, [run_line, f"evaluated on: {evaluated}"])
    results_section(report, records)
    report.section("Figures")
    groups = [p.label for p in pairs]
    settings_names = list(dict.fromkeys(r["setting"] for r in records))
    by_key = {(r["pair"], r["setting"]): r for r in records}
    figure = grouped_bars(
        experiment.out_dir / "federated_scores.png",
        groups,
        {
            title: {name: [by_key.get((g, name), {}).get(key) for g in groups] for name in settings_names}
            for key, title in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"))
        },
    )
    report.figure(
        figure, "Source only, centralised and federated (per partitioning) on the same held-out windows."
    )
    report.section("Notes")
    report.bullets(
        [
            "Centralised = the federated protocol with one client holding every client's windows: same "
            "server pre-training, same targets, rounds x local epochs of training.",
            "Scale (wall time per round and memory at 10, 100, 1000 clients, each a real `flwr run .`) "
            "and the core's speed and size are measured by `fedlanhar bench`. Not repeated here.",
            f"The whole experiment took {experiment.elapsed():.0f} s.",
        ]
    )
    configuration_section(report, experiment, settings)
    return report


def results_section(report: Report, records: list[dict]) -> None:
    """The scores of every run, then the federated runs' accuracy per round."""
    report.section("Results")
    scores = ["accuracy", "macro-F1", "category acc.", "text-path acc.", "agreement"]
    report.table(
        ["pair", "setting", *scores, "held-out windows", "seconds"],
        [
            [
                r["pair"],
                r["setting"],
                r["accuracy"],
                r["macro_f1"],
                r["category_accuracy"],
                r.get("text_path_accuracy"),
                r.get("sensor_text_agreement"),
                r["n"],
                round(r["seconds"]) if "seconds" in r else None,
            ]
            for r in records
        ],
    )
    federated = [r for r in records if "partitioning" in r]
    if federated:
        report.paragraph("Federated accuracy per round:")
        rounds = max(len(r["rounds"]) for r in federated)
        report.table(
            ["pair", "partitioning", *(f"round {i + 1}" for i in range(rounds)), "failures"],
            [
                [r["pair"], r["partitioning"], *(x["accuracy"] for x in r["rounds"]), len(r["failures"])]
                for r in federated
            ],
        )
