"""The pairs of a protocol run side by side: `fedlanhar experiment ... --workers N`.

Each worker is a process of its own with an equal share of the cores as torch threads (the models are small,
so two single-threaded processes use two cores far better than one process with two threads). The pairs of
one source go to one worker, one after the other: they share their stage-1 text space (stage1_key),
so it is trained once and no two processes ever write the same cache entry. A run's numbers do not depend on
the worker that ran it, only on its own seed and the number of torch threads.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from common.base.runtime import configure_logging, configure_torch_threads
from common.data.errors import DataError
from simulations.experiments.settings import Pair

Record = dict[str, Any]
RunPair = Callable[[Pair], list[Record]]


def source_groups(pairs: Sequence[Pair]) -> list[list[Pair]]:
    """The pairs grouped by source, groups and pairs in their order of first appearance."""
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.source, []).append(pair)
    return list(groups.values())


def threads_per_worker(workers: int) -> int:
    """An equal share of this machine's cores, at least one."""
    return max(1, (os.cpu_count() or 1) // workers)


def run_pairs(
    run_pair: RunPair,
    pairs: Sequence[Pair],
    workers: int,
    on_progress: Callable[[list[Record]], None] | None = None,
) -> list[Record]:
    """`run_pair(pair)` for every pair, in `workers` processes; the records in the order of `pairs`.

    Each record names its pair as `record["pair"] == pair.label` (the order is restored from it). `run_pair`
    must be picklable (a module-level function, or a functools.partial of one) when workers > 1.
    `on_progress` gets the records finished so far after each pair (workers == 1) or each source (> 1), so
    results.json grows as the runs end and a crash loses only what was still running.
    """
    if workers < 1:
        raise DataError(f"--workers: must be >= 1, got {workers}")
    groups = source_groups(pairs)
    done: list[Record] = []
    if workers == 1 or len(groups) == 1:
        for pair in pairs:
            done.extend(run_pair(pair))
            if on_progress is not None:
                on_progress(done)
        return done

    order = {pair.label: index for index, pair in enumerate(pairs)}
    verbose = logging.getLogger("fedlanhar").level <= logging.INFO
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state forked mid-use
    processes = min(workers, len(groups))  # more workers than sources would sit idle
    with ProcessPoolExecutor(
        max_workers=processes,
        mp_context=context,
        initializer=_start_worker,
        initargs=(threads_per_worker(processes), verbose),
    ) as pool:
        pending: set[Future] = {pool.submit(_run_group, run_pair, group) for group in groups}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done.extend(future.result())  # a worker's exception is raised here, naming the run
            done.sort(key=lambda record: order[record["pair"]])  # stable: a pair's runs keep their order
            if on_progress is not None:
                on_progress(done)
    return done


def _start_worker(threads: int, verbose: bool) -> None:
    configure_torch_threads(threads)
    configure_logging(verbose)


def _run_group(run_pair: RunPair, group: list[Pair]) -> list[Record]:
    records: list[Record] = []
    for pair in group:
        records.extend(run_pair(pair))
    return records
