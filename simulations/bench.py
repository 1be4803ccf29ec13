"""`fedlanhar bench`: the framework's speed, size and memory figures, one suite, one command.

    fedlanhar bench --data-dir ../shared/data --budget default --out runs/bench

Parts (`--parts`, default all three):
  core       rules interpretations per second; stage-1 and stage-2 seconds per epoch of the default central
             uci -> dsads_torso run; the exported sensor encoder's size and one-thread latency (new process).
  llm        the LLM interpretation service on a real OpenAI-compatible server (simulations/llm_bench.py).
  federated  a real `flwr run .` per client count (10, 100, 1000 by default): seconds per round, peak memory
             of the run's process tree, traffic per client (simulations/federated_bench.py).

Writes `<out>/bench.json` (figures, settings, machine) after every part, so a failing part loses nothing
measured before it, and `<out>/bench.md` (tables). Training runs on torch's default threads, latency on one
thread; the goals are TARGETS below.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.base.device import resolve_device
from common.base.runtime import set_seed
from common.base.serialise import jsonable
from common.data.errors import DataError
from common.data.labels import load_vocabulary
from common.method.lanhar import describe_labels, interpret_windows, label_bank, train_text_space
from common.method.train import SensorTrainConfig, train_sensor_encoder
from common.models.export import RUNTIMES, export_sensor_model, measure_latency
from common.models.sensor_encoder import SensorEncoder
from common.models.text_encoder import TextEncoder
from simulations.central import (
    CentralConfig,
    central_config,
    central_interpreter,
    load_pair,
    sensor_encoder_config,
    stage2_windows,
    text_train_config,
)
from simulations.experiments.report import Report
from simulations.experiments.settings import machine
from simulations.federated_bench import run_size
from simulations.llm_bench import run_llm_benchmark

PARTS = ("core", "llm", "federated")
# A text space and a pair's stage 2 in a minute each, one window in 1 ms (raw window in).
TARGETS = {
    "interpretations_per_s": 1000.0,
    "export_mb": 25.0,
    "latency_ms": 1.0,
    "stage1_run_s": 60.0,
    "stage2_run_s": 60.0,
}


@dataclass(frozen=True)
class BenchSettings:
    """What a budget measures. Explicit defaults = the default budget."""

    source: str = "uci"  # the central run whose stage-1/stage-2 epochs are timed
    target: str = "dsads_torso"
    # A stage-1 epoch is ceil(distinct (text, label) pairs / batch size) steps. One epoch is timed, or only
    # this many of its steps (its time is then seconds per step x steps per epoch). None: no cap.
    stage1_max_timed_steps: int | None = 20
    stage2_max_windows: int = 0  # windows in the timed stage-2 epoch; 0: all, as in the central run
    latency_repeats: int = 500
    llm_windows: int = 4  # windows really sent to the LLM per concurrency level
    llm_concurrency: tuple[int, ...] = (1, 4)
    llm_max_tokens: int = 96
    llm_cached_windows: int = 512
    clients: tuple[int, ...] = (10, 100, 1000)
    seed: int = 0
    device: str = "auto"  # where the core part trains (common/base/device.py)


BUDGETS: dict[str, BenchSettings] = {
    # small: the whole suite in a few minutes (tests, smoke runs).
    "small": BenchSettings(
        stage1_max_timed_steps=2,
        stage2_max_windows=256,
        latency_repeats=50,
        llm_windows=1,
        llm_concurrency=(1,),
        llm_cached_windows=64,
        clients=(3,),
    ),
    "default": BenchSettings(),
    # full: a whole stage-1 epoch however long, and more LLM requests.
    "full": BenchSettings(stage1_max_timed_steps=None, llm_windows=16, llm_concurrency=(1, 2, 4)),
}


def bench_settings(budget: str, **overrides: Any) -> BenchSettings:
    """The budget's settings with the overrides that are not None."""
    if budget not in BUDGETS:
        raise DataError(f"--budget: unknown '{budget}', choose one of {sorted(BUDGETS)}")
    return dataclasses.replace(BUDGETS[budget], **{k: v for k, v in overrides.items() if v is not None})


def parse_parts(value: str) -> tuple[str, ...]:
    """ "core,federated" -> ("core", "federated"), in the suite's order; unknown names are errors."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise DataError(f"--parts: unknown {unknown or value!r}, choose from {', '.join(PARTS)}")
    return tuple(p for p in PARTS if p in parts)


def parse_clients(value: str) -> tuple[int, ...]:
    """ "10,100,1000" -> (10, 100, 1000); anything but positive integers is an error naming the flag."""
    try:
        counts = tuple(int(n) for n in value.split(","))
    except ValueError:
        raise DataError(
            f"--clients: expected comma-separated client counts like 10,100,1000, got {value!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise DataError(f"--clients: client counts must be >= 1, got {value!r}")
    return counts


# ------------------------------------------------------------------------------------------------ core


def run_core_benchmark(data_dir: Path, out_dir: Path, settings: BenchSettings) -> dict:
    """Interpretation throughput, stage-1 and stage-2 time per epoch, sensor-encoder size and latency."""
    device = resolve_device(settings.device)
    set_seed(settings.seed)
    config = central_config("default", source=settings.source, target=settings.target, seed=settings.seed)
    splits = load_pair(config, data_dir)
    activities = splits["source_train"].label_names
    interpreter = central_interpreter(config)

    interpret_windows(splits["source_train"].subset(np.arange(64)), interpreter, activities)  # warm-up
    start = time.perf_counter()
    source = interpret_windows(splits["source_train"], interpreter, activities)
    interpret_seconds = time.perf_counter() - start
    descriptions = describe_labels(interpreter, activities, config.descriptions_per_label)

    start = time.perf_counter()
    encoder = TextEncoder(config.text_encoder).to(device)
    load_seconds = time.perf_counter() - start
    stage1 = _time_stage1(
        encoder, source.texts, splits["source_train"].labels(), descriptions, config, settings
    )

    # Stage 2 as the central run has it: source-train and (unlabeled) target-train windows, one epoch.
    target = interpret_windows(splits["target_train"], interpreter, activities)
    model_config = sensor_encoder_config(config, encoder.dim)
    windows = stage2_windows(splits)
    texts = source.texts + target.texts
    if settings.stage2_max_windows:
        chosen = np.random.default_rng(settings.seed).permutation(len(windows))[: settings.stage2_max_windows]
        windows, texts = windows[chosen], [texts[i] for i in chosen]
    targets = encoder.encode(texts, progress=False)
    sensor_encoder = SensorEncoder(model_config).to(device)
    sensor_config = SensorTrainConfig(
        epochs=1, batch_size=config.stage2_batch_size, lr=config.stage2_lr, seed=settings.seed
    )
    start = time.perf_counter()
    stage2 = train_sensor_encoder(sensor_encoder, windows, targets, sensor_config, progress=False)
    # The set-up (signal analysis, distinct targets, optimiser) runs once per run, not once per epoch.
    stage2_setup_seconds = time.perf_counter() - start - stage2["seconds"]
    stage2_seconds = stage2["seconds"]

    bank = label_bank(encoder, descriptions, activities)
    export = export_sensor_model(sensor_encoder.cpu(), bank, out_dir / "export")  # as a device runs it: CPU
    latency = _export_latency(out_dir / "export", settings.latency_repeats)
    return {
        "run": f"{settings.source} -> {settings.target}, default central settings, {activities}",
        "training_threads": torch.get_num_threads(),
        "device": str(device),
        "interpretation": {
            "interpreter": config.interpreter,
            "windows": len(splits["source_train"]),
            "seconds": interpret_seconds,
            "windows_per_s": len(splits["source_train"]) / interpret_seconds,
        },
        "text_encoder": {"name": config.text_encoder, "load_seconds": load_seconds},
        "stage1": stage1,
        "stage2": {
            "windows": len(windows),
            "batch_size": sensor_config.batch_size,
            "seconds_per_epoch": stage2_seconds,
            "windows_per_s": len(windows) / stage2_seconds,
            "epochs_in_default_run": config.stage2_epochs,
            "setup_seconds": stage2_setup_seconds,
            "seconds_for_default_run": stage2_setup_seconds + stage2_seconds * config.stage2_epochs,
        },
        "sensor_encoder": {
            "parameters": sum(p.numel() for p in sensor_encoder.parameters()),
            "export_mb": export["sensor_encoder_mb"],
            "export": export,
            "latency_ms_one_thread": latency["torchscript"],
            "latency_ms_one_thread_onnxruntime": latency["onnxruntime"],
            "latency_ms_one_thread_onnxruntime_int8": latency["onnxruntime-int8"],
        },
    }


def _export_latency(export_dir: Path, repeats: int) -> dict[str, dict]:
    """One raw window, one thread, per runtime. In a fresh process, as on a device: after training in this
    one, single-window calls run slower."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return {
            runtime: pool.submit(measure_latency, export_dir, 1, repeats, runtime=runtime).result()
            for runtime in RUNTIMES
        }


def _time_stage1(
    encoder: TextEncoder,
    texts: list[str],
    labels: list[str],
    descriptions: dict[str, list[str]],
    config: CentralConfig,
    settings: BenchSettings,
) -> dict:
    """Seconds per stage-1 step at the default settings, and per epoch (measured or step-extrapolated)."""
    default = text_train_config(config)
    steps_per_epoch = math.ceil(len(set(zip(texts, labels, strict=True))) / default.batch_size)
    timed_steps = min(steps_per_epoch, settings.stage1_max_timed_steps or steps_per_epoch)
    timed = dataclasses.replace(default, max_steps=timed_steps)
    history = train_text_space(encoder, texts, labels, descriptions, load_vocabulary(), timed, progress=False)
    seconds_per_step = history["seconds"] / timed_steps
    return {
        "batch_size": default.batch_size,
        "max_length": default.max_length,
        "distinct_pairs": history["unique_pairs"],
        "steps_timed": timed_steps,
        "seconds_per_step": seconds_per_step,
        "steps_per_epoch": steps_per_epoch,
        "seconds_per_epoch": seconds_per_step * steps_per_epoch,
        "epoch_measured": timed_steps >= steps_per_epoch,
        "steps_in_default_run": default.max_steps,
        # The frozen bottom's output is computed once per distinct text before the steps (train.py).
        "cache_seconds": history["cache_seconds"],
        "seconds_for_default_run": history["cache_seconds"] + seconds_per_step * default.max_steps,
    }


# ------------------------------------------------------------------------------------------------ suite


def run_bench(
    data_dir: Path,
    out_dir: Path,
    budget: str = "default",
    parts: tuple[str, ...] = PARTS,
    llm_base_url: str | None = None,
    **overrides: Any,
) -> dict:
    """Run the chosen parts in order; bench.json and bench.md are rewritten after each."""
    settings = bench_settings(budget, **overrides)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "budget": budget,
        "parts": list(parts),
        "settings": dataclasses.asdict(settings),
        "targets": TARGETS,
        "machine": machine(),
        "seconds": {},
    }
    for part in parts:
        started = time.monotonic()
        print(f"[bench] {part} ...", flush=True)
        if part == "core":
            results["core"] = run_core_benchmark(Path(data_dir), out_dir / "core", settings)
        elif part == "llm":
            results["llm"] = run_llm_benchmark(
                data_dir,
                out_dir / "llm",
                n_windows=settings.llm_windows,
                concurrency_levels=settings.llm_concurrency,
                max_tokens=settings.llm_max_tokens,
                n_cached_windows=settings.llm_cached_windows,
                base_url=llm_base_url,
            )
        elif part == "federated":
            results["federated"] = []
            for clients in settings.clients:
                results["federated"].append(run_size(clients, out_dir / "federated"))
                _write(results, out_dir)
        results["seconds"][part] = time.monotonic() - started
        _write(results, out_dir)
    print(render_tables(results), flush=True)
    return results


def _write(results: dict, out_dir: Path) -> None:
    path = out_dir / "bench.json"
    path.with_suffix(".tmp").write_text(json.dumps(jsonable(results), indent=2, allow_nan=False))
    path.with_suffix(".tmp").replace(path)
    (out_dir / "bench.md").write_text(render_tables(results))


def render_tables(results: dict) -> str:
    """bench.md: one table per part measured so far."""
    report = Report(
        "FedLanHAR benchmark",
        f"`fedlanhar bench`, budget {results['budget']}, parts {', '.join(results['parts'])}; "
        f"{results['machine']['cpus']} CPUs, torch {results['machine']['torch']}. Figures in bench.json.",
    )
    sections = {"core": _core_section, "llm": _llm_section, "federated": _federation_section}
    for part, add_section in sections.items():
        if results.get(part):
            add_section(report, results[part])
    return report.text()


def _core_section(report: Report, core: dict) -> None:
    stage1, stage2, sensor = core["stage1"], core["stage2"], core["sensor_encoder"]
    latency, onnx_latency = sensor["latency_ms_one_thread"], sensor["latency_ms_one_thread_onnxruntime"]
    int8_latency, int8_mb = (
        sensor["latency_ms_one_thread_onnxruntime_int8"],
        sensor["export"]["sensor_encoder_onnx_int8_mb"],
    )
    epoch_note = "measured" if stage1["epoch_measured"] else f"{stage1['steps_timed']} steps timed"
    report.section("Core")
    report.paragraph(f"{core['run']}; torch threads for training: {core['training_threads']}.")
    report.table(
        ["figure", "value", "target"],
        [
            [
                "rules interpretations / s",
                f"{core['interpretation']['windows_per_s']:.0f}",
                f">= {TARGETS['interpretations_per_s']:.0f}",
            ],
            ["text encoder load (s)", f"{core['text_encoder']['load_seconds']:.1f}", ""],
            [f"stage 1: s per step (batch {stage1['batch_size']})", f"{stage1['seconds_per_step']:.2f}", ""],
            [
                f"stage 1: s per epoch ({stage1['steps_per_epoch']} steps, {epoch_note})",
                f"{stage1['seconds_per_epoch']:.0f}",
                "",
            ],
            [
                f"stage 1: s for the default run ({stage1['steps_in_default_run']} steps)",
                f"{stage1['seconds_for_default_run']:.0f}",
                f"<= {TARGETS['stage1_run_s']:.0f}",
            ],
            [f"stage 2: s per epoch ({stage2['windows']} windows)", f"{stage2['seconds_per_epoch']:.1f}", ""],
            ["stage 2: s of set-up, once per run", f"{stage2['setup_seconds']:.1f}", ""],
            [
                f"stage 2: s for the default run ({stage2['epochs_in_default_run']} epochs)",
                f"{stage2['seconds_for_default_run']:.0f}",
                f"<= {TARGETS['stage2_run_s']:.0f}",
            ],
            ["sensor encoder parameters", f"{sensor['parameters']:,}", ""],
            ["exported sensor encoder (MB)", f"{sensor['export_mb']:.1f}", f"<= {TARGETS['export_mb']:.0f}"],
            [
                "latency per raw window, analysis included, 1 thread: TorchScript median / p95 (ms)",
                f"{latency['median_ms']:.2f} / {latency['p95_ms']:.2f}",
                f"<= {TARGETS['latency_ms']:.0f}",
            ],
            [
                "the same with ONNX Runtime: median / p95 (ms)",
                f"{onnx_latency['median_ms']:.2f} / {onnx_latency['p95_ms']:.2f}",
                f"<= {TARGETS['latency_ms']:.0f}",
            ],
            [
                f"the int8 ONNX model ({int8_mb:.1f} MB): median / p95 (ms)",
                f"{int8_latency['median_ms']:.2f} / {int8_latency['p95_ms']:.2f}",
                f"<= {TARGETS['latency_ms']:.0f}",
            ],
        ],
    )


def _llm_section(report: Report, llm: dict) -> None:
    report.section("LLM interpretation service")
    report.paragraph(
        f"{llm['model']} on {llm['server']} (server threads {llm['server_threads']}), "
        f"{llm['max_tokens']} max tokens."
    )
    rows = [
        [
            f"live, concurrency {run['concurrency']}",
            run["windows"],
            f"{run['windows_per_s']:.3f}",
            f"{run['completion_tokens_per_s']:.1f}",
            run["malformed_answers"],
            run["fallbacks"],
        ]
        for run in llm["live"]
    ]
    for name in ("cache_hit_same_windows", "cache_hit_prefilled"):
        run = llm[name]
        rows.append([name.replace("_", " "), run["windows"], f"{run['windows_per_s']:.1f}", "", "", ""])
    report.table(["run", "windows", "windows / s", "completion tokens / s", "malformed", "fallbacks"], rows)


def _federation_section(report: Report, federated: list[dict]) -> None:
    report.section("Federation")
    report.paragraph("A real `flwr run .` per size (Ray simulation); peak RSS of the run's process tree.")
    header = ["clients", "s per round (each)", "mean s per round", "setup s", "peak RSS GB"]
    report.table(
        [*header, "MB up / down per client", "wall s", "failures"],
        [
            [
                run["clients"],
                ", ".join(f"{s:.1f}" for s in run["round_seconds"]),
                f"{run['round_seconds_mean']:.1f}",
                f"{run['setup_seconds']:.0f}",
                f"{run['peak_rss_gb']:.2f}",
                f"{run['bytes_up_per_client'] / 1e6:.1f} / {run['bytes_down_per_client'] / 1e6:.1f}",
                f"{run['wall_seconds']:.0f}",
                run["failures"],
            ]
            for run in federated
        ],
    )
