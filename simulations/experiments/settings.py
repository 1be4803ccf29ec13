"""What every protocol shares: the data sets, source->target pairs and their label space, settings files.

A protocol's settings are a dataclass with explicit defaults, filled from one TOML file
(configs/experiments/<protocol>.toml, or `--config FILE`):

    pairs = ["uci:dsads_torso", "dsads_torso:uci"]   # or ["all"]: every ordered pair of DATASETS
    seed = 0
    [central]           # CentralConfig fields on top of the --budget preset (simulations/central.py)
    stage1_steps = 150
    [small]             # optional: settings replacing the above with --budget small (also: default, full)
    rounds = 2

Precedence: dataclass default < top level of the file < the table named after the budget < `--pairs`.
Unknown keys are errors naming the file.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.base.paths import PROJECT_ROOT
from common.data.errors import DataError
from common.data.label_spaces import STAIRS_MERGE, mixes_stairs
from common.data.loading import dataset_labels
from common.data.toml_files import read_toml
from simulations.central import BUDGETS, CentralConfig, central_config

CONFIG_DIR = PROJECT_ROOT / "configs" / "experiments"

DATASETS = ("uci", "wisdm_phone", "dsads_torso", "dsads_rightleg")  # what pairs = ["all"] expands to
COMMON_ACTIVITIES = ("walking", "upstairs", "downstairs", "sitting")
# A set with one "stairs" class and no "upstairs"/"downstairs" (wisdm_phone) mixes going up and going down.
# Pairs with such a set compare in a 3-class space: the other set's upstairs and downstairs become "stairs"
# (as baselines.md's 3-class variant).
MERGED_ACTIVITIES = ("walking", "stairs", "sitting")
SHORT_NAMES = {"uci": "uci", "wisdm_phone": "wisdm", "dsads_torso": "dsads-t", "dsads_rightleg": "dsads-rl"}


def short_name(data_set: str) -> str:
    """For tables and figures: "dsads-t" for dsads_torso; any other data set by its own name."""
    return SHORT_NAMES.get(data_set, data_set)


@dataclass(frozen=True)
class Pair:
    source: str
    target: str

    @property
    def name(self) -> str:
        """File-system friendly: "uci-dsads_torso"."""
        return f"{self.source}-{self.target}"

    @property
    def label(self) -> str:
        """For tables: "uci→dsads-t"."""
        return f"{short_name(self.source)}→{short_name(self.target)}"


@dataclass(frozen=True)
class LabelSpace:
    """What a pair is compared in: labels renamed by `merge_labels` in both sets, then `activities`."""

    activities: tuple[str, ...]
    merge_labels: Mapping[str, str]

    @property
    def merges_stairs(self) -> bool:
        return bool(self.merge_labels)


def pair_label_space(pair: Pair, data_dir: str | Path) -> LabelSpace:
    """The pair's label space, from the label sets in the data (never from the data-set names).

    COMMON_ACTIVITIES; or, when either set mixes stairs, MERGED_ACTIVITIES after STAIRS_MERGE in both sets;
    restricted to the activities both sets have.
    """
    labels = {name: dataset_labels(name, data_dir) for name in (pair.source, pair.target)}
    merges = any(mixes_stairs(names) for names in labels.values())
    merge = dict(STAIRS_MERGE) if merges else {}
    renamed = [{merge.get(label, label) for label in names} for names in labels.values()]
    candidates = MERGED_ACTIVITIES if merges else COMMON_ACTIVITIES
    activities = tuple(a for a in candidates if all(a in names for names in renamed))
    if len(activities) < 2:
        raise DataError(
            f"pair {pair.source}:{pair.target}: only {list(activities)} of {list(candidates)} are shared by "
            f"'{pair.source}' {list(labels[pair.source])} and '{pair.target}' {list(labels[pair.target])}"
        )
    return LabelSpace(activities, merge)


def new_activities(pair: Pair, data_dir: str | Path) -> list[str]:
    """The target's activities outside the pair's label space (after its stairs merge, if any)."""
    space = pair_label_space(pair, data_dir)
    target = [space.merge_labels.get(label, label) for label in dataset_labels(pair.target, data_dir)]
    return [label for label in dict.fromkeys(target) if label not in space.activities]


def all_pairs() -> list[Pair]:
    return [Pair(s, t) for s in DATASETS for t in DATASETS if s != t]


def parse_pairs(items: str | list[str] | tuple[str, ...]) -> list[Pair]:
    """ "a:b,c:d" or a list of "a:b"; "all" = every ordered pair of DATASETS."""
    if isinstance(items, str):
        items = items.split(",")
    pairs: list[Pair] = []
    for item in (item.strip() for item in items):
        if not item:
            continue
        if item == "all":
            pairs.extend(all_pairs())
            continue
        source, sep, target = item.partition(":")
        if not sep or not source or not target or source == target:
            raise DataError(f"pairs: '{item}' is not 'source:target' with two different data sets")
        pairs.append(Pair(source.strip(), target.strip()))
    if not pairs:
        raise DataError("pairs: no source:target pair given")
    return list(dict.fromkeys(pairs))


def pair_config(
    pair: Pair, experiment: Experiment, central: dict[str, Any], seed: int, **overrides: Any
) -> CentralConfig:
    """The CentralConfig of one run: budget preset, the settings' [central] table, the pair, overrides."""
    space = pair_label_space(pair, experiment.data_dir)
    values = {**central, "source": pair.source, "target": pair.target, "activities": space.activities}
    values |= {"merge_labels": dict(space.merge_labels), "seed": seed, "device": experiment.device}
    return central_config(experiment.budget, **(values | overrides))


def check_central_keys(central: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(CentralConfig)}
    unknown = sorted(set(central) - known)
    if unknown:
        raise DataError(f"{where}: [central] has unknown keys {unknown}; known: {sorted(known)}")


def load_settings(cls: type, path: Path | None, budget: str, pairs: str | None = None) -> Any:
    """Settings dataclass `cls` from its defaults, the TOML file `path` (if any) and `--pairs`."""
    if budget not in BUDGETS:
        raise DataError(f"--budget: unknown '{budget}', choose one of {sorted(BUDGETS)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if path is not None:
        document = read_toml(path, "--config: experiment settings file")
        per_budget = {name: document.pop(name) for name in list(BUDGETS) if name in document}
        values.update(document)
        values.update(per_budget.get(budget, {}))
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise DataError(
                f"{path}: unknown keys {unknown}; known: {sorted(fields)} and tables {sorted(BUDGETS)}"
            )
    if pairs:
        values["pairs"] = pairs.split(",")
    for name, value in values.items():  # TOML lists -> tuples where the default is a tuple
        if isinstance(value, list) and isinstance(fields[name].default, tuple):
            values[name] = tuple(value)
    settings = cls(**values)
    if hasattr(settings, "central"):
        check_central_keys(settings.central, str(path or cls.__name__))
    if hasattr(settings, "pairs"):
        parse_pairs(settings.pairs)  # fail early on a malformed pair
    return settings


@dataclass
class Experiment:
    """One `fedlanhar experiment` invocation: where it reads and writes, and what it was asked."""

    name: str
    data_dir: Path
    budget: str
    out_dir: Path
    config_path: Path | None
    command: str
    text_space_dir: Path | None = None  # None: out_dir / "text-spaces"
    device: str = "auto"  # where every run's models train (CentralConfig.device)
    workers: int = 1  # processes running pairs side by side (experiments/workers.py); not in any number
    started: float = dataclasses.field(default_factory=time.monotonic)
    started_at: str = dataclasses.field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    @property
    def config_text(self) -> str:
        if self.config_path is None:
            return "# no settings file: dataclass defaults"
        return Path(self.config_path).read_text()

    def run_dir(self, *parts: str) -> Path:
        path = self.out_dir.joinpath("runs", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def text_space_cache(self) -> Path:
        """Stage-1 text encoders shared by the runs with the same stage-1 inputs (text_space_cache.py)."""
        return self.text_space_dir or self.out_dir / "text-spaces"

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "argv": sys.argv,
    }
