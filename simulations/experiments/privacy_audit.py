"""The leakage audit: what an honest-but-curious server learns under each protection.

`fedlanhar experiment privacy-audit --data-dir ../shared/data --out runs/privacy-audit`

One small real federation per protection setting (privacy_sweep's study configuration, one client per user:
the first training and held-out UCI-HAPT users of the central split), all loading one stage-1 text encoder.
After each run the attacks of simulations/privacy_audit.py are scored against the truth:

- per window, its activity from the uploaded feature row: a logistic regression trained on the server's own
  labeled source, and the server's text path (interpretation -> nearest label);
- per client (= user), its activity mix: from the per-window guesses, or under local interpretation from the
  distinct texts it uploads;
- membership of a window in a training client's data, against the run's exported sensor encoder: the cosine
  similarity of its embedding to its pseudo-target and to the nearest label. Non-members are the held-out
  users' windows; the server-pretrained encoder's AUC is what the two user groups differ by anyway.

The uploads are rebuilt with the client's own functions (client/privacy.py, client/local_interpretation.py)
from its own data; only windows of the run's activities are scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from client.device_client import window_summaries
from client.local_interpretation import interpret_locally
from client.privacy import uploaded_summaries
from common.data.loading import load_dataset
from common.data.windows import WindowSet
from common.federation.partition import ClientData, client_spec, load_client_data, user_layout_slots
from common.federation.run_config import FederationConfig
from common.method.lanhar import sensor_context
from common.models.export import MODEL_FILE
from common.models.sensor_encoder import encode_windows
from server.cloud import Cloud
from simulations import privacy_audit as attacks
from simulations.experiments.federated import run_federated
from simulations.experiments.report import (
    Report,
    configuration_section,
    new_figure,
    score_or_na,
    setup_section,
    write_report,
    write_results,
)
from simulations.experiments.settings import Experiment
from simulations.privacy_sweep import SETTINGS, STUDY_SETTINGS, study_config, study_row

# Setting name -> FederationConfig overrides: the study's rows and the sweep's summary-noise rows.
AUDIT_SETTINGS: dict[str, dict] = dict(STUDY_SETTINGS) | dict(SETTINGS)
NOT_PER_WINDOW = "not available: local interpretation uploads distinct texts only (no order, count or window)"


@dataclass
class Settings:
    settings: tuple[str, ...] = (
        "none",
        "SecAgg+",
        "SecAgg+ + central DP, noise 0.5",
        "SecAgg+ + central DP, noise 2.0",
        "local interpretation",
        "summary noise 0.3",
        "summary noise 1.0",
    )
    users_per_data_set: int = 8  # training users and held-out users of UCI-HAPT, one client each
    rounds: int = 2
    stage1_steps: int = 10
    server_pretrain_epochs: int = 5
    seed: int = 0


@dataclass
class ServerSide:
    """What the attacking server holds: its cloud (source, interpreter, text encoder), the attack classifier,
    the label bank and the sensor encoder it pre-trained before any client took part."""

    cloud: Cloud
    classifier: Any
    bank: Any
    activities: list[str]
    pretrained: torch.nn.Module


@dataclass
class ClientView:
    """One client as the audit sees it: its data, and the truth about the windows it uploads about."""

    data: ClientData
    windows: WindowSet  # the windows its upload describes (training windows, or evaluation windows)
    truth: np.ndarray  # their true activities
    scored: np.ndarray  # bool: the window's activity is one of the run's
    pseudo_targets: np.ndarray  # the scored windows' text-path embeddings (membership reference)

    @property
    def member(self) -> bool:
        return self.data.trains


def audit_config(settings: Settings, data_dir: Path, out_dir: Path, **overrides: Any) -> FederationConfig:
    """The study's run config with one client per user (the first `users_per_data_set` of each side)."""
    values = dict(
        clients_per_user=1,
        users_per_data_set=settings.users_per_data_set,
        stage1_steps=settings.stage1_steps,
        server_pretrain_epochs=settings.server_pretrain_epochs,
        seed=settings.seed,
        **overrides,
    )
    probe = study_config(data_dir, out_dir, 2, settings.rounds, **values)
    return study_config(data_dir, out_dir, len(user_layout_slots(probe)), settings.rounds, **values)


def server_side(config: FederationConfig, out_dir: Path) -> ServerSide:
    """The server's knowledge, built with its own code (server/cloud.py) and the run's stage-1 encoder."""
    cloud = Cloud(config, out_dir)
    activities = list(config.activity_list)
    classifier = attacks.train_activity_classifier(window_summaries(cloud.source), cloud.source.labels())
    pretrained, _ = cloud.pretrain_sensor_encoder()
    return ServerSide(cloud, classifier, cloud.label_bank(activities), activities, pretrained)


def client_views(config: FederationConfig, server: ServerSide) -> list[ClientView]:
    """Every client's data as load_client_data gives it, with the truth the audit looks up for it."""
    reference = load_dataset(config.clients_data, config.data_dir)
    num_clients = config.min_available_nodes
    views = []
    for partition_id in range(num_clients):
        data = load_client_data(client_spec(partition_id, num_clients, config), config)
        windows = data.train if data.trains else data.eval
        truth = np.array(attacks.window_truth(windows.X, reference) if data.trains else windows.labels())
        scored = np.isin(truth, server.activities)
        kept = windows.subset(np.flatnonzero(scored))
        targets, _ = server.cloud.targets_for(window_summaries(kept), sensor_context(kept, server.activities))
        views.append(ClientView(data, windows, truth, scored, targets))
    return views


def per_window_attacks(server: ServerSide, views: list[ClientView], config: FederationConfig) -> dict:
    """Activity per window and activity mix per client, from the feature rows each client uploaded."""
    if config.interpret_on_client:
        return text_set_attacks(server, views, config)
    truth, by_classifier, by_text = [], [], []
    for view in views:
        uploads = uploaded_summaries(view.data, config)
        features = uploads["features" if view.data.trains else "eval-features"][view.scored]
        kept = view.windows.subset(np.flatnonzero(view.scored))
        z, _ = server.cloud.targets_for(features, sensor_context(kept, server.activities))
        truth.append(list(view.truth[view.scored]))
        by_classifier.append(attacks.infer_activities(server.classifier, features))
        by_text.append(server.bank.predict(z))
    flat_truth = [a for client in truth for a in client]
    labels = server.activities
    return {
        "per_window": {
            "classifier": attacks.inference_scores(flat_truth, sum(by_classifier, []), labels),
            "text_path": attacks.inference_scores(flat_truth, sum(by_text, []), labels),
            "chance": attacks.chance_scores(flat_truth, labels, seed=config.seed),
        },
        "mix": {
            "classifier": attacks.mix_errors(truth, by_classifier, labels),
            "text_path": attacks.mix_errors(truth, by_text, labels),
        },
    }


def text_set_attacks(server: ServerSide, views: list[ClientView], config: FederationConfig) -> dict:
    """Local interpretation: each client's distinct texts (of its scored windows), each named once by the
    server's text path; no per-window guess is possible."""
    truth, by_text, distinct = [], [], []
    for view in views:
        per_window = interpret_locally(view.data, config)["texts" if view.data.trains else "eval-texts"]
        texts = sorted({text for text, kept in zip(per_window, view.scored, strict=True) if kept})
        truth.append(list(view.truth[view.scored]))
        by_text.append(server.bank.predict(server.cloud.embed(texts)))
        distinct.append(len(texts))
    return {
        "per_window": {"available": False, "reason": NOT_PER_WINDOW},
        "mix": {"text_path": attacks.mix_errors(truth, by_text, server.activities)},
        "distinct_texts_per_client": float(np.mean(distinct)),
    }


def deployed_encoder(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Windows -> embeddings with a run's exported TorchScript encoder (raw window in; frozen, so not the
    nn.Module that encode_windows takes)."""
    model = torch.jit.load(str(path))

    def embed(X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            chunks = [
                model(torch.as_tensor(X[i : i + 256], dtype=torch.float32)) for i in range(0, len(X), 256)
            ]
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1).numpy()

    return embed


def membership_attack(
    embed: Callable[[np.ndarray], np.ndarray], server: ServerSide, views: list[ClientView]
) -> dict:
    """AUC of the two similarity scores, members (training clients' windows) vs non-members (held-out);
    `embed` turns windows into the attacked encoder's embeddings."""
    scores: dict[str, dict[bool, list[np.ndarray]]] = {
        name: {True: [], False: []} for name in ("target", "label")
    }
    for view in views:
        embeddings = embed(view.windows.X[view.scored])
        scores["target"][view.member].append(attacks.target_similarity(embeddings, view.pseudo_targets))
        scores["label"][view.member].append(
            attacks.nearest_label_similarity(embeddings, server.bank.embeddings)
        )
    result = {
        f"auc_{name}": attacks.membership_auc(np.concatenate(by[True]), np.concatenate(by[False]))
        for name, by in scores.items()
    }
    members = sum(len(s) for s in scores["target"][True])
    return result | {"members": members, "non_members": sum(len(s) for s in scores["target"][False])}


def audit_row(name: str, config: FederationConfig, metrics: dict, leakage: dict, membership: dict) -> dict:
    """One table row: the run's utility and epsilon (privacy_sweep's study row) beside each attack."""
    return study_row(name, config, metrics) | {
        **leakage,
        "membership": membership,
        "seconds": metrics["wall_seconds"],
    }


def run(settings: Settings, experiment: Experiment) -> dict[str, Any]:
    unknown = [name for name in settings.settings if name not in AUDIT_SETTINGS]
    if unknown:
        raise ValueError(f"privacy-audit settings: unknown {unknown}; known: {list(AUDIT_SETTINGS)}")
    stage1_dir = experiment.run_dir("stage1")
    # Stage 1 once, before any row: every row loads the same text space (as privacy_sweep's study).
    Cloud(audit_config(settings, experiment.data_dir, stage1_dir), stage1_dir).train_text_space()
    encoder_path = str(stage1_dir / "text_encoder")
    base = audit_config(settings, experiment.data_dir, stage1_dir, text_encoder_path=encoder_path)
    server = server_side(base, stage1_dir)
    views = client_views(base, server)
    before = {"setting": "before federation (server-pretrained encoder)"}
    before["membership"] = membership_attack(partial(encode_windows, server.pretrained), server, views)
    rows: list[dict] = []
    for index, name in enumerate(settings.settings):
        row_dir = experiment.run_dir(f"setting-{index}")
        overrides = {"text_encoder_path": encoder_path, **AUDIT_SETTINGS[name]}
        config = audit_config(settings, experiment.data_dir, row_dir, **overrides)
        metrics = run_federated(config, num_clients=config.min_available_nodes)
        started = time.monotonic()
        leakage = per_window_attacks(server, views, config)
        membership = membership_attack(deployed_encoder(row_dir / MODEL_FILE), server, views)
        rows.append(audit_row(name, config, metrics, leakage, membership))
        rows[-1]["attack_seconds"] = time.monotonic() - started
        print(f"[privacy-audit] {summary_line(rows[-1])}", flush=True)
        write_results(experiment, settings, {"rows": rows, "reference": before})
    results = {"rows": rows, "reference": before}
    write_results(experiment, settings, results)
    figure = plot_audit(experiment.out_dir / "privacy_audit.png", rows, before)
    write_report(experiment, build_report(experiment, settings, rows, before, figure))
    return results


def summary_line(row: dict) -> str:
    per_window = row["per_window"].get("classifier", {}).get("accuracy")
    return (
        f"{row['setting']:34s} accuracy {row['accuracy']:.3f}  per-window attack {score_or_na(per_window)}  "
        f"mix TVD {score_or_na(row['mix']['text_path']['tvd'])}  "
        f"membership AUC {row['membership']['auc_target']:.3f}"
    )


def pair_cell(scores: dict | None, first: str = "accuracy", second: str = "macro_f1") -> str:
    """ "0.712 / 0.680", or "n/a" when the attack had nothing to work on."""
    if not scores or scores.get(first) is None:
        return "n/a"
    return f"{scores[first]:.3f} / {scores[second]:.3f}"


def table_rows(rows: list[dict]) -> list[list[str]]:
    """The markdown table's cells, one list per setting."""
    cells = []
    for row in rows:
        per_window, mix = row["per_window"], row["mix"]
        epsilon = f"{row['epsilon']:.2f} ({row['delta']:g})" if row["epsilon"] is not None else "-"
        mix_cells = [score_or_na(mix.get(kind, {}).get("tvd")) for kind in ("classifier", "text_path")]
        cells.append(
            [
                row["setting"],
                f"{row['accuracy']:.3f} / {row['macro_f1']:.3f}",
                epsilon,
                pair_cell(per_window.get("classifier")),
                pair_cell(per_window.get("text_path")),
                pair_cell(per_window.get("chance")),
                " / ".join([*mix_cells, score_or_na(mix["text_path"]["tvd_uniform"])]),
                pair_cell(row["membership"], "auc_target", "auc_label"),
            ]
        )
    return cells


TABLE_HEADER = [
    "setting",
    "utility acc / F1",
    "epsilon (delta)",
    "per window: classifier acc / F1",
    "per window: text path acc / F1",
    "per window: chance acc / F1",
    "mix TVD: classifier / text path / uniform",
    "membership AUC: target / nearest label",
]


def plot_audit(path: Path, rows: list[dict], before: dict) -> Path:
    """Attack success against the run's accuracy: one panel per attack, one point per setting."""
    figure = new_figure(15.0, 4.6)
    panels = [
        (
            "activity per window: attack accuracy",
            lambda r: r["per_window"].get("classifier", {}).get("accuracy"),
        ),
        ("activity mix: 1 - TVD (text path)", lambda r: 1.0 - r["mix"]["text_path"]["tvd"]),
        ("membership: AUC (cosine to pseudo-target)", lambda r: r["membership"]["auc_target"]),
    ]
    references = [
        ("chance", rows[0]["per_window"].get("chance", {}).get("accuracy")),
        ("uniform guess", 1.0 - rows[0]["mix"]["text_path"]["tvd_uniform"]),
        ("server-pretrained encoder", before["membership"]["auc_target"]),
    ]
    for column, ((title, attack), (reference_name, reference)) in enumerate(
        zip(panels, references, strict=True)
    ):
        axes = figure.add_subplot(1, 3, column + 1)
        for index, row in enumerate(rows):
            value = attack(row)
            if value is None:  # e.g. no per-window upload to attack
                continue
            # Rings shrinking row by row: settings with the same final model (none, SecAgg+) stay visible.
            ring = {"s": 160 - 18 * index, "facecolors": "none", "edgecolors": f"C{index}"}
            axes.scatter(row["accuracy"], value, **ring, label=row["setting"])
        if reference is not None:
            axes.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_name)
        axes.set_xlabel("utility: accuracy on held-out users")
        axes.set_ylabel("attack success")
        axes.set_ylim(0.0, 1.0)
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def build_report(
    experiment: Experiment, settings: Settings, rows: list[dict], before: dict, figure: Path
) -> Report:
    report = Report(
        "Privacy audit: what an honest-but-curious server learns",
        "Per protection setting, one real federation, then three attacks on what its server received "
        "(simulations/privacy_audit.py); the run's utility and epsilon beside them.",
    )
    clients = f"{rows[0]['train_clients']} training + {rows[0]['eval_clients']} held-out" if rows else "-"
    setup_section(report, experiment, settings, [f"clients (one per user): {clients}"])
    report.section("Results")
    report.table(TABLE_HEADER, table_rows(rows))
    reference = before["membership"]
    report.paragraph(
        f"Membership reference, the server-pretrained encoder (no client window seen): AUC "
        f"{reference['auc_target']:.3f} (target) / {reference['auc_label']:.3f} (nearest label), "
        f"{reference['members']} member and {reference['non_members']} non-member windows."
    )
    report.figure(figure, "Attack success against utility (accuracy on the held-out users)")
    configuration_section(report, experiment, settings)
    return report
