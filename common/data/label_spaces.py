"""Label merges derived from label sets themselves, never from data-set names.

A data set with one "stairs" class and no "upstairs"/"downstairs" beside it (wisdm_phone) mixes going up and
going down. Whoever compares it with a set that separates the two renames upstairs and downstairs to
"stairs" (`STAIRS_MERGE`): the cross-dataset pairs do so in both sets (simulations/experiments/settings.py),
a federated client does so on its own predictions (it scores only the labels its data has).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence

import numpy as np

from common.data.windows import WindowSet

STAIRS_MERGE = {"upstairs": "stairs", "downstairs": "stairs"}


def mixes_stairs(labels: Collection[str]) -> bool:
    """One "stairs" class for going up and down: no "upstairs" or "downstairs" beside it."""
    return "stairs" in labels and not {"upstairs", "downstairs"} & set(labels)


def label_merges(labels: Collection[str]) -> dict[str, str]:
    """The renames a set with these labels needs to compare with finer label sets ({} when none)."""
    return dict(STAIRS_MERGE) if mixes_stairs(labels) else {}


def merged_names(labels: Iterable[str], merge: dict[str, str]) -> list[str]:
    """`labels` renamed by `merge`, duplicates dropped, first-seen order kept."""
    return list(dict.fromkeys(merge.get(label, label) for label in labels))


def scoring_labels(run_labels: Sequence[str], data_label_sets: Iterable[Collection[str]]) -> list[str]:
    """The run's labels plus the merged names some data set scores instead of them (e.g. "stairs").

    The index space of every client's confusion matrix, so that the server can add them up although each
    client scores its own label space.
    """
    extended = list(run_labels)
    for labels in data_label_sets:
        for name in merged_names(run_labels, label_merges(labels)):
            if name not in extended and name in labels:
                extended.append(name)
    return extended


def client_label_space(
    run_labels: Sequence[str], data_labels: Collection[str]
) -> tuple[list[int], list[str]]:
    """Which of the run's labels (indices into `run_labels`) a client with `data_labels` chooses among, and
    the name each of them is scored as (after the merge its label set calls for).

    A client scores only the labels its data has: a run label whose (merged) name is not among `data_labels`
    is never predicted there.
    """
    merge = label_merges(data_labels)
    columns, names = [], []
    for i, label in enumerate(run_labels):
        name = merge.get(label, label)
        if name in data_labels:
            columns.append(i)
            names.append(name)
    return columns, names


def rename_labels(ws: WindowSet, mapping: dict[str, str]) -> WindowSet:
    """The same windows with labels renamed by `mapping`; several names may merge into one."""
    if not mapping:
        return ws
    names = merged_names(ws.label_names, mapping)
    old_to_new = np.array([names.index(mapping.get(name, name)) for name in ws.label_names] + [-1])
    return dataclasses.replace(ws, y=old_to_new[ws.y], label_names=names)  # y == -1 stays -1
