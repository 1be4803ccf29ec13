"""Results per device type / data set and across clients, from one round's evaluation replies.

Every evaluation reply names its client's group (common/federation/mixed.py `client_group`: the data set for
real data as recorded, "synthetic:<device type>" for synthetic clients) next to its confusion counts. Groups
are scored by pooling their clients' counts exactly as the whole federation is; the distribution over clients
is each client's own accuracy. Nothing is kept per client between rounds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from flwr.app import Message

from common.base.metrics import plot_curves
from common.federation.protocol import CLIENT_INFO as CLIENT

UNKNOWN_GROUP = "unknown"
GROUP_KEYS = ("accuracy", "macro_f1", "new_activity_accuracy", "text_path_accuracy")


def reply_group(reply: Message) -> str:
    content = reply.content
    return str(content[CLIENT]["group"]) if CLIENT in content else UNKNOWN_GROUP


def per_group(replies: list[Message], score: Callable[[list[Message]], dict]) -> dict[str, dict]:
    """Per group: `score` (the federation's pooled scoring) of its clients' replies, and how many."""
    groups: dict[str, list[Message]] = defaultdict(list)
    for reply in replies:
        groups[reply_group(reply)].append(reply)
    result = {}
    for group in sorted(groups):
        members = groups[group]
        if sum(sum(reply.content["metrics"]["confusion"]) for reply in members) == 0:
            continue  # nothing of this group can be named yet (all its windows are of unpushed labels)
        metrics = score(members)
        entry = {key: metrics.get(key) for key in GROUP_KEYS if metrics.get(key) is not None}
        entry.update(clients=len(members), windows=int(metrics["num_windows"]))
        result[group] = entry
    return result


def client_distribution(replies: list[Message]) -> dict:
    """Accuracy over clients (each client's own scored windows): mean, mean of the worst 10%, the worst."""
    accuracies, groups = [], []
    for reply in replies:
        confusion = np.asarray(reply.content["metrics"]["confusion"], dtype=np.int64)
        n = int(math.isqrt(confusion.size))
        total = int(confusion.sum())
        if total:
            accuracies.append(float(np.trace(confusion.reshape(n, n))) / total)
            groups.append(reply_group(reply))
    if not accuracies:
        return {"clients": 0}
    values = np.asarray(accuracies)
    order = np.argsort(values, kind="stable")
    worst_count = max(1, math.ceil(0.1 * len(values)))
    return {
        "clients": len(values),
        "mean": float(values.mean()),
        "worst_10pct_mean": float(values[order[:worst_count]].mean()),
        "worst": float(values[order[0]]),
        "worst_group": groups[int(order[0])],
    }


def breakdown_summary(record: dict) -> str:
    """The round log's tail: accuracy per group and over clients."""
    parts = []
    groups = record.get("per_group") or {}
    if groups:
        parts.append(
            "per device: " + ", ".join(_group_text(group, values) for group, values in groups.items())
        )
    clients = record.get("client_accuracy") or {}
    if clients.get("clients"):
        parts.append(
            f"clients: mean {clients['mean']:.3f}, worst 10% {clients['worst_10pct_mean']:.3f}, "
            f"worst {clients['worst']:.3f} ({clients['worst_group']})"
        )
    return "".join(f" | {part}" for part in parts)


def _group_text(group: str, values: dict) -> str:
    text = f"{group} {values['accuracy']:.3f} (F1 {values['macro_f1']:.3f}"
    if values.get("new_activity_accuracy") is not None:
        text += f", new {values['new_activity_accuracy']:.3f}"
    return text + ")"


def plot_group_accuracy(rounds: list[dict], path: Path, new_labels_round: int | None = None) -> None:
    """Accuracy per device type / data set over rounds (a group missing in a round is a gap)."""
    groups = sorted({group for record in rounds for group in (record.get("per_group") or {})})
    if not groups:
        return
    curves = {
        group: [(record.get("per_group") or {}).get(group, {}).get("accuracy") for record in rounds]
        for group in groups
    }
    plot_curves(
        curves,
        path,
        xlabel="round",
        ylabel="accuracy",
        title="Accuracy per device type / data set",
        new_labels_round=new_labels_round,
    )


__all__ = [
    "CLIENT",
    "breakdown_summary",
    "client_distribution",
    "per_group",
    "plot_group_accuracy",
    "reply_group",
]
