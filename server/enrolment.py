"""Lazy enrolment for large federations (run config lazy-enrolment): a client is set up when first sampled.

Eagerly, every client is set up before round 1 (summaries -> targets, label bank) and the round-0 and last
evaluations score every evaluating client: at 10,000 clients that is 30,000+ client calls before anything is
learned. Lazily, each round samples from ALL connected nodes (fraction-train / fraction-evaluate of them) and
sets up only the sampled ones it has not met yet, with the current label bank; a later label push goes to
the clients met so far. What the server keeps grows with the clients that took part, not with all clients:
their role, and the ids of the clients that refused or failed their setup.

Roles are learned at enrolment: a sampled client that turns out to hold only held-out users is not used for
training (it evaluates when sampled for evaluation) and is never sampled for training again, and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from common.federation.partition import EVALUATE, TRAIN


class Enrolment:
    def __init__(
        self,
        nodes: list[int],
        setup: Callable[[list[int], tuple[list[str], list[str], int, list[str]]], dict],
        push: Callable[[list[int], list[str], list[str], int, list[str]], object],
    ) -> None:
        self.nodes = list(nodes)  # every connected node id (what the grid lists anyway)
        self._setup = setup  # send_targets for these nodes, with the current label bank -> its info dict
        self._push = push  # push_labels(nodes, labels, new, version, scoring)
        self.roles: dict[int, str] = {}  # enrolled clients only
        self.num_windows: dict[int, int] = {}  # enrolled clients' training windows (SecAgg+'s max-weight)
        self.unusable: set[int] = set()  # refused at preflight, or no reply to the setup
        self.bank: tuple[list[str], list[str], int, list[str]] | None = None
        self.windows_interpreted = 0
        self.eval_windows_interpreted = 0

    def set_labels(self, labels: list[str], new: list[str], version: int, scoring: list[str]) -> None:
        """The current label bank: pushed now to the clients met so far, and to every one enrolled later."""
        self.bank = (list(labels), list(new), version, list(scoring))
        if self.roles:
            self._push(sorted(self.roles), *self.bank)

    def enrol(self, candidates: list[int]) -> None:
        fresh = [node for node in candidates if node not in self.roles and node not in self.unusable]
        if not fresh:
            return
        if self.bank is None:
            raise RuntimeError("enrolment: set_labels must come before the first client is enrolled")
        info = self._setup(fresh, self.bank)  # the targets message carries the current label bank
        self.windows_interpreted += info["windows_interpreted"]
        self.eval_windows_interpreted += info["eval_windows_interpreted"]
        stored = info["nodes_with_targets"]
        self.roles.update(info["roles"])
        self.num_windows.update(info.get("num_windows", {}))
        self.unusable.update(set(fresh) - set(stored))

    def sample(self, rng: np.random.Generator, size: int, role: str) -> list[int]:
        """Up to `size` nodes that may take `role` (TRAIN or EVALUATE), enrolled; those that can."""
        opposite = EVALUATE if role == TRAIN else TRAIN
        pool = [n for n in self.nodes if n not in self.unusable and self.roles.get(n) != opposite]
        if not pool:
            return []
        picked = [pool[i] for i in sorted(rng.choice(len(pool), size=min(size, len(pool)), replace=False))]
        self.enrol(picked)
        return [node for node in picked if node in self.roles and self.roles[node] != opposite]

    def sample_size(self, fraction: float, minimum: int = 1) -> int:
        return max(minimum, int(round(len(self.nodes) * fraction)))


__all__ = ["Enrolment"]
