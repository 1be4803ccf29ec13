"""Pairs run side by side (`fedlanhar experiment ... --workers N`): grouping by source, record order, and the
same numbers as one process, end to end on real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from common.data.errors import DataError
from simulations.cli import main
from simulations.experiments import workers
from simulations.experiments.settings import Pair, parse_pairs
from simulations.experiments.workers import run_pairs, source_groups

PAIRS = parse_pairs("uci:wisdm_phone,dsads_torso:uci,uci:dsads_torso,dsads_torso:wisdm_phone,wisdm_phone:uci")


def _toy_run(pair: Pair) -> list[dict]:
    """Two records per pair naming the process that made them (module level: picklable for the workers)."""
    return [{"pair": pair.label, "step": step, "pid": os.getpid()} for step in ("first", "second")]


def test_pairs_of_one_source_form_one_group_in_order_of_appearance() -> None:
    groups = source_groups(PAIRS)
    assert [[p.label for p in group] for group in groups] == [
        ["uci→wisdm", "uci→dsads-t"],
        ["dsads-t→uci", "dsads-t→wisdm"],
        ["wisdm→uci"],
    ]


def test_one_worker_runs_in_this_process_and_reports_each_pair() -> None:
    seen: list[int] = []
    records = run_pairs(_toy_run, PAIRS, 1, on_progress=lambda done: seen.append(len(done)))
    assert [r["pair"] for r in records[::2]] == [p.label for p in PAIRS]
    assert {r["pid"] for r in records} == {os.getpid()}
    assert seen == [2, 4, 6, 8, 10]


def test_workers_keep_the_order_of_the_pairs_and_a_source_in_one_process() -> None:
    seen: list[list[str]] = []
    records = run_pairs(_toy_run, PAIRS, 2, on_progress=lambda done: seen.append([r["pair"] for r in done]))
    assert [(r["pair"], r["step"]) for r in records] == [
        (p.label, step) for p in PAIRS for step in ("first", "second")
    ]
    pids = {r["pair"]: r["pid"] for r in records}
    assert os.getpid() not in pids.values()
    assert pids["uci→wisdm"] == pids["uci→dsads-t"] and pids["dsads-t→uci"] == pids["dsads-t→wisdm"]
    # Progress as sources finish (two may finish together): each report holds every record so far, in order.
    assert 1 <= len(seen) <= 3 and seen[-1] == [r["pair"] for r in records]
    order = [p.label for p in PAIRS]
    for labels in seen:
        assert labels == sorted(labels, key=order.index)


def test_bad_worker_counts_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--workers: must be >= 1, got 0"):
        run_pairs(_toy_run, PAIRS, 0)
    out = tmp_path / "out"
    argv = ["experiment", "cross-dataset", "--workers", "0", "--pairs", "uci:wisdm_phone", "--out", str(out)]
    assert main(argv) == 2 and not out.exists()


def _raise_on_dsads(pair: Pair) -> list[dict]:
    if pair.source == "dsads_torso":
        raise DataError(f"{pair.label}: broken")
    return _toy_run(pair)


def test_a_failing_worker_fails_the_run_with_its_error() -> None:
    with pytest.raises(DataError, match="dsads-t→uci: broken"):
        run_pairs(_raise_on_dsads, PAIRS, 2)


TINY = """methods = ["lanhar", "cnn"]
seed = 0
[central]
stage1_steps = 1
stage2_epochs = 1
max_windows_per_class = 16
descriptions_per_label = 2
"""
SCORES = ("accuracy", "macro_f1", "confusion", "text_path_accuracy", "path_agreement", "new_activities")


@pytest.mark.slow
def test_two_workers_give_the_numbers_of_one_process(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cross-dataset protocol on two pairs of two sources: every score equal to the last digit."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    monkeypatch.setattr(workers, "threads_per_worker", lambda n: 1)  # the single process's thread count
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    results = {}
    try:
        for n in (1, 2):
            out = tmp_path / f"workers-{n}"
            argv = ["experiment", "cross-dataset", "--data-dir", str(data_dir), "--budget", "small"]
            argv += ["--config", str(config), "--pairs", "uci:dsads_torso,wisdm_phone:uci"]
            assert main([*argv, "--workers", str(n), "--out", str(out)]) == 0
            results[n] = json.loads((out / "results.json").read_text())
            assert (out / "report.md").read_text().count("uci→dsads-t") >= 2
    finally:
        torch.set_num_threads(previous)
    one, two = results[1]["runs"], results[2]["runs"]
    assert [(r["pair"], r["method"]) for r in two] == [
        (pair, method) for pair in ("uci→dsads-t", "wisdm→uci") for method in ("lanhar", "cnn")
    ]
    assert [(r["pair"], r["method"]) for r in one] == [(r["pair"], r["method"]) for r in two]
    for a, b in zip(one, two, strict=True):
        for key in SCORES:
            assert a.get(key) == b.get(key), (a["pair"], a["method"], key)
    assert results[2]["machine"]["workers"] == 2 and "--workers 2" in results[2]["command"]
    assert results[2]["summary"] == results[1]["summary"]
