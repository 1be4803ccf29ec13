"""Federated part of `fedlanhar bench`: wall time per round and peak memory for N simulated clients.

Each size is a real `flwr run .` (local SuperLink, Ray simulation) with small data per client. Memory is
sampled every 0.5 s as the summed RSS of this run's own process tree: the `flwr run` command, and the
SuperLink started for this run's FLWR_HOME with all its descendants (simulation process, ServerApp, Ray's
GCS/raylet and ClientApp actors). The machine's used-memory rise over its baseline is recorded too, but it
also counts anything else running on the machine.

    fedlanhar bench --parts federated --clients 10,100,1000 --out runs/bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from pathlib import Path

import psutil

from common.base.paths import PROJECT_ROOT
from simulations.processes import flower_env, flwr_run_simulation, processes_naming, stop_processes_naming
from simulations.run_check import fresh_metrics, metrics_stamp

# Small data per client and a narrow sensor encoder: the benchmark measures the federation, not training.
BENCH_RUN_CONFIG = {
    "num-server-rounds": 3,
    "windows-per-client": 24,
    "source-windows-per-activity": 40,
    "stage1-steps": 4,
    "server-pretrain-epochs": 2,
    "local-epochs": 1,
    "sensor-width": 64,
    "new-activities-round": 2,
}


class MemorySampler(threading.Thread):
    """Peak summed RSS and PSS of one run's process tree, sampled every `interval` s: the processes naming
    `marker` with their children, or (`pid`) that process with its children, e.g. this process when it runs
    the simulation itself (simulations/privacy_sweep.py: Ray's processes are its descendants)."""

    def __init__(self, marker: str = "", interval: float = 0.5, pid: int | None = None) -> None:
        super().__init__(daemon=True)
        self.marker, self.interval, self.pid = marker, interval, pid
        self.baseline_used = psutil.virtual_memory().used
        # RSS counts a page shared by several processes (torch's libraries in every Ray worker) once per
        # process; PSS splits it among them, so the tree's PSS is what the run really occupies.
        self.peak_rss = self.peak_pss = self.peak_used_rise = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss, pss = self._tree_memory()
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_used_rise = max(self.peak_used_rise, psutil.virtual_memory().used - self.baseline_used)
            self._halt.wait(self.interval)

    def _tree_memory(self) -> tuple[int, int]:
        """Summed RSS and PSS of the processes whose command line names this benchmark's directory, plus
        their children: the `flwr run` command (its out-dir) and the SuperLink (its FLWR_HOME), nothing else.
        With `pid`: that process and its children.
        """
        roots = [psutil.Process(self.pid)] if self.pid is not None else processes_naming(self.marker)
        seen: dict[int, tuple[int, int]] = {}
        for root in roots:
            try:
                for process in [root, *root.children(recursive=True)]:
                    if process.pid in seen:
                        continue
                    try:
                        info = process.memory_full_info()
                        seen[process.pid] = (info.rss, getattr(info, "pss", info.rss))
                    except psutil.AccessDenied:
                        rss = process.memory_info().rss
                        seen[process.pid] = (rss, rss)
            except psutil.Error:
                continue  # a process ended while we looked
        return sum(v[0] for v in seen.values()), sum(v[1] for v in seen.values())

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def run_size(num_clients: int, out_dir: Path, extra: dict | None = None) -> dict:
    """One `flwr run .` with `num_clients` supernodes (BENCH_RUN_CONFIG updated by `extra`): a table row."""
    run_out = out_dir / f"clients-{num_clients}"
    run_out.mkdir(parents=True, exist_ok=True)
    config = {**BENCH_RUN_CONFIG, "out-dir": str(run_out), **(extra or {})}
    if num_clients >= 100:
        config.setdefault("fraction-evaluate", 0.1)  # all clients still evaluate in the last round
    if num_clients >= 1000:
        config.setdefault("fraction-train", 0.1)  # cross-device style: 100 clients train per round
    # One TOML file, not "k=v" pairs: long strings and many keys stay readable in the run's directory.
    run_config = run_out / "run-config.toml"
    run_config.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in config.items()))
    env = flower_env(out_dir / ".flwr")  # a fresh SuperLink per benchmark, measured from its start
    # `flwr run` leaves its local SuperLink running; stop only this benchmark's (FLWR_HOME is out_dir/.flwr),
    # never another run's on the same machine.
    stop_processes_naming(str(out_dir))
    stamp = metrics_stamp(run_out)
    start = time.time()
    sampler = MemorySampler(marker=str(out_dir))
    sampler.start()
    command = flwr_run_simulation(run_config, num_supernodes=num_clients)
    log_path = run_out / "flwr.log"
    with open(log_path, "w") as log:
        process = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    wall = time.time() - start
    sampler.stop()
    stop_processes_naming(str(out_dir))
    metrics = fresh_metrics(
        run_out, stamp, process.returncode, log_path, what=f"flwr run with {num_clients} clients"
    )
    round_seconds = [r["seconds"] for r in metrics["rounds"]]
    return {
        "clients": num_clients,
        "wall_seconds": wall,
        "setup_seconds": metrics["seconds"]["setup"],
        "client_setup_seconds": metrics["seconds"].get("client_setup"),
        "round_seconds": round_seconds,
        "round_seconds_mean": sum(round_seconds) / len(round_seconds),
        "peak_rss_gb": sampler.peak_rss / 1e9,
        "peak_pss_gb": sampler.peak_pss / 1e9,
        "peak_used_memory_rise_gb": sampler.peak_used_rise / 1e9,
        "bytes_up_per_client": metrics["traffic"]["bytes_up_per_client_mean"],
        "bytes_down_per_client": metrics["traffic"]["bytes_down_per_client_mean"],
        "final_accuracy": metrics["accuracy"],
        "clients_trained_per_round": [r["clients_trained"] for r in metrics["rounds"]],
        "clients_evaluated_per_round": [r["clients_evaluated"] for r in metrics["rounds"]],
        "failures": len(metrics["failures"]),
        "bytes_up_per_round": [r.get("bytes_up") for r in metrics["rounds"]],
        "bytes_down_per_round": [r.get("bytes_down") for r in metrics["rounds"]],
        "run_config": config,
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m simulations.federated_bench --clients 100,1000,10000`: one table row per size, JSON out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="100,1000,10000", help="comma-separated client counts")
    parser.add_argument(
        "--out", default=str(PROJECT_ROOT / "runs" / "federated-bench"), help="output directory"
    )
    parser.add_argument(
        "--fraction-train", type=float, default=0.01, help="share of clients training per round"
    )
    parser.add_argument("--fraction-evaluate", type=float, default=0.01, help="share evaluating per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--final-evaluation",
        choices=("sampled", "all"),
        default="sampled",
        help="the last round scores a sample too (default) or every client",
    )
    parser.add_argument(
        "--eager", action="store_true", help="set every client up before round 1 (default: lazy enrolment)"
    )
    parser.add_argument("--set", nargs="*", default=[], help="more run-config overrides, key=value")
    args = parser.parse_args(argv)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    extra: dict = {
        "num-server-rounds": args.rounds,
        "fraction-train": args.fraction_train,
        "fraction-evaluate": args.fraction_evaluate,
        "min-train-nodes": 2,
        "final-round-evaluate-all": args.final_evaluation == "all",
        "lazy-enrolment": not args.eager,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        extra[key] = json.loads(value) if value and value[0] in "0123456789-tf[" else value
    rows = []
    for size in [int(n) for n in args.clients.split(",") if n.strip()]:
        start = time.time()
        try:
            row = run_size(size, out_dir, extra)
        except RuntimeError as error:
            row = {"clients": size, "error": str(error), "wall_seconds": time.time() - start}
        rows.append(row)
        (out_dir / "federated_bench.json").write_text(
            json.dumps({"rows": rows, "run_config": extra}, indent=2)
        )
        if "error" in row:
            print(f"{size:>6} clients: FAILED after {row['wall_seconds']:.0f} s: {row['error']}", flush=True)
            continue
        rounds = ", ".join(f"{seconds:.1f}" for seconds in row["round_seconds"])
        print(
            f"{size:>6} clients: setup {row['setup_seconds']:.1f} s server + "
            f"{row['client_setup_seconds']:.1f} s clients, rounds {rounds} s "
            f"(mean {row['round_seconds_mean']:.1f}), "
            f"peak RSS {row['peak_rss_gb']:.2f} GB (PSS {row['peak_pss_gb']:.2f} GB), "
            f"wall {row['wall_seconds']:.0f} s",
            flush=True,
        )
    print(f"written {out_dir / 'federated_bench.json'}")


if __name__ == "__main__":
    main()
