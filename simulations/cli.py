"""The `fedlanhar` command: data, devices, interpret, train, evaluate, export, baseline, experiment, bench.

Every command that produces results writes `<out>/metrics.json` (values + the resolved config + seed) and its
artifacts into `--out`. Errors in the input are reported in one line naming the file and field, exit code 2;
a federated run that fails or writes no fresh metrics.json (simulations/run_check.py), with its error, exit 1.
`secagg-keys` writes the identity keys and roster of signed SecAgg+ round keys (docs/privacy.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _activities(value: str) -> list[str]:
    return [a.strip() for a in value.split(",") if a.strip()]


def _print_metrics(metrics: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        if metrics.get(key) is not None:
            value = metrics[key]
            print(f"  {key:32s} {value:.4f}" if isinstance(value, float) else f"  {key:32s} {value}")


def cmd_data(args: argparse.Namespace) -> None:
    from common.data.loading import load_dataset, save_windowset
    from common.data.sources import ARCHIVE_DATA_SETS, ARCHIVE_URLS, download_archive

    if args.action == "download":
        path = download_archive(args.name, Path(args.out))
        print(f"downloaded {args.name} to {path}")
        return
    if args.action == "list":
        print("public archives (fedlanhar data download NAME --out DIR):")
        for name, url in ARCHIVE_URLS.items():
            print(f"  {name:16s} {url}")
            print(f"  {'':16s} data sets: {', '.join(ARCHIVE_DATA_SETS[name])}")
        for path in sorted(Path(args.data_dir).glob("*.npz")):
            print(f"  local: {path}")
        return
    windows = load_dataset(args.name, Path(args.data_dir))
    if args.action == "info":
        print(
            f"{windows.name}: {len(windows)} windows, {len(set(windows.user.tolist()))} users, "
            f"position {windows.position}, device {windows.device}, {windows.sampling_rate} Hz"
        )
        for label, count in windows.class_counts().items():
            print(f"  {label:40s} {count}")
    elif args.action == "convert":
        print(f"wrote {save_windowset(windows, Path(args.out))}")


def cmd_devices(args: argparse.Namespace) -> None:
    from common.data.devices import device_type_path
    from common.federation.run_config import FederationConfig
    from simulations.device_plot import check_and_plot, device_summary

    path = device_type_path(args.device_file)
    activities = _activities(args.activities) if args.activities else FederationConfig().all_activities
    out = Path(args.out) if args.out else Path(f"{path.stem}_check.png")
    device, png = check_and_plot(path, out, activities, seed=args.seed)
    print(f"{path}: ok (the checks a run's preflight makes)")
    print(device_summary(device, path))
    print(f"wrote {png}")


def cmd_interpret(args: argparse.Namespace) -> None:
    import numpy as np
    from tqdm import tqdm

    from common.data.loading import load_dataset
    from common.language.factory import make_interpreter
    from common.method.lanhar import interpret_windows

    windows = load_dataset(args.dataset, Path(args.data_dir))
    if args.limit:
        windows = windows.subset(windows.segment.argsort(kind="stable")[: args.limit])
    options = {}
    if args.interpreter == "openai":
        options = {
            "base_url": args.llm_base_url,
            "model": args.llm_model,
            "cache_path": args.cache,
            "api_key_env": args.llm_api_key_env or None,  # "" = a local server that needs no key
        }
    interpreter = make_interpreter(args.interpreter, **options)
    start = time.monotonic()
    texts: list[str] = []
    chunk = 256
    for i in tqdm(range(0, len(windows), chunk), desc="interpreting", unit="chunk"):
        part = windows.subset(np.arange(i, min(i + chunk, len(windows))))
        texts += interpret_windows(part, interpreter, windows.label_names).texts
    seconds = time.monotonic() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "interpretations.jsonl", "w") as handle:
        for label, text in zip(windows.labels(), texts, strict=True):
            handle.write(json.dumps({"label": label, "text": text}) + "\n")
    metrics = {
        "windows": len(texts),
        "distinct_texts": len(set(texts)),
        "seconds": seconds,
        "windows_per_second": len(texts) / max(seconds, 1e-9),
        "config": vars(args) | {"func": None},
        "seed": 0,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    print(f"{len(texts)} interpretations ({len(set(texts))} distinct) in {seconds:.1f} s -> {out}")


def cmd_train(args: argparse.Namespace) -> None:
    from simulations.central import central_config, train_central

    config = central_config(
        args.budget,
        Path(args.config) if args.config else None,
        source=args.source,
        target=args.target,
        activities=_activities(args.activities) if args.activities else None,
        seed=args.seed,
        interpreter=args.interpreter,
        text_encoder=args.text_encoder,
        device=args.device,
    )
    cache = Path(args.text_space_cache) if args.text_space_cache else None
    metrics = train_central(config, Path(args.data_dir), Path(args.out), text_space_cache=cache)
    print(f"trained LanHAR {config.source} -> {config.target} ({config.budget}); model in {args.out}")
    _print_metrics(metrics["source_val"], ("accuracy", "macro_f1"))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from simulations.central import evaluate_central

    metrics = evaluate_central(
        Path(args.model),
        Path(args.data_dir),
        args.target,
        Path(args.out),
        new_activities=_activities(args.new_activities) if args.new_activities else None,
        seed=args.seed,
        device=args.device,
    )
    print(f"evaluated on {metrics['evaluated_on']}")
    keys = ("accuracy", "macro_f1", "category_accuracy", "text_path_accuracy")
    _print_metrics(metrics, (*keys, "new_activity_accuracy", "new_activity_top3", "new_activity_chance"))


def cmd_export(args: argparse.Namespace) -> None:
    from common.models.export import export_sensor_model, measure_latency
    from common.models.sensor_encoder import SensorEncoder
    from common.models.zero_shot import LabelBank

    model_dir, out = Path(args.model), Path(args.out)
    report = export_sensor_model(
        SensorEncoder.load(model_dir / "sensor_encoder.pt"), LabelBank.load(model_dir / "label_bank.npz"), out
    )
    # One raw window in, the signal analysis computed inside: the whole on-device computation is timed.
    report["latency"] = measure_latency(out, threads=1, runtime="torchscript")
    report["latency_onnxruntime"] = measure_latency(out, threads=1, runtime="onnxruntime")
    report["latency_onnxruntime_int8"] = measure_latency(out, threads=1, runtime="onnxruntime-int8")
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))


def cmd_baseline(args: argparse.Namespace) -> None:
    from simulations.baselines import run_supervised_baseline

    metrics = run_supervised_baseline(
        Path(args.data_dir),
        args.source,
        args.target,
        _activities(args.activities),
        args.budget,
        Path(args.out),
        seed=args.seed,
        model=args.model,
        device=args.device,
    )
    _print_metrics(metrics, ("accuracy", "macro_f1", "category_accuracy"))


def cmd_experiment(args: argparse.Namespace) -> None:
    from simulations.experiments import run_experiment

    started = time.monotonic()
    run_experiment(
        args.protocol,
        Path(args.data_dir),
        args.budget,
        Path(args.out),
        config_file=Path(args.config) if args.config else None,
        pairs=args.pairs,
        text_space_cache=Path(args.text_space_cache) if args.text_space_cache else None,
        device=args.device,
        workers=args.workers,
        command=" ".join(
            ["fedlanhar experiment", args.protocol, "--data-dir", args.data_dir, "--budget", args.budget]
            + (["--config", args.config] if args.config else [])
            + (["--pairs", args.pairs] if args.pairs else [])
            + (["--text-space-cache", args.text_space_cache] if args.text_space_cache else [])
            + (["--workers", str(args.workers)] if args.workers != 1 else [])
            + ["--device", args.device, "--out", args.out]
        ),
    )
    seconds = time.monotonic() - started
    print(f"{args.protocol}: report.md, results.json and figures in {args.out} ({seconds:.0f} s)")


def cmd_secagg_keys(args: argparse.Namespace) -> None:
    from common.federation.secagg_identity import create_identities, key_file_name

    names = [name.strip() for name in args.names.split(",")] if args.names else None
    names = names or [str(partition) for partition in range(args.clients)]
    try:
        roster = create_identities(Path(args.out), names, force=args.force)
    except (FileExistsError, ValueError) as error:
        raise SystemExit(f"fedlanhar secagg-keys: error: {error}") from error
    print(f"wrote {roster} ({len(names)} clients) and {key_file_name('<name>')} for each (mode 0600)")
    print("give every client the roster and its own key file only, out of band (docs/deploy.md)")


def cmd_bench(args: argparse.Namespace) -> None:
    from simulations.bench import parse_clients, parse_parts, run_bench

    clients = parse_clients(args.clients) if args.clients else None
    run_bench(
        Path(args.data_dir),
        Path(args.out),
        budget=args.budget,
        parts=parse_parts(args.parts),
        llm_base_url=args.llm_base_url,
        clients=clients,
        device=args.device,
    )
    print(f"bench: bench.json and bench.md in {args.out}")


BUDGETS = ["small", "default", "full"]
ACTIVITIES = "walking,upstairs,downstairs,sitting"


def _subcommand(
    sub: argparse._SubParsersAction,
    name: str,
    summary: str,
    func: Callable[[argparse.Namespace], None],
    data: bool = False,
    device: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand running `func`, with --data-dir (`data`) and also --device (`device`)."""
    p = sub.add_parser(name, help=summary)
    p.set_defaults(func=func)
    if data or device:
        p.add_argument(
            "--data-dir", default=str(DEFAULT_DATA_DIR), help="folder of <name>.npz or raw archives"
        )
    if device:
        p.add_argument(
            "--device",
            default="auto",
            help="where the models run: auto (CUDA when present, else the CPU), cpu, cuda or cuda:N",
        )
    return p


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = _subcommand(sub, "data", "list, inspect, convert or download data sets", cmd_data, data=True)
    p.add_argument("action", choices=["list", "info", "convert", "download"])
    p.add_argument("name", nargs="?", default="uci")
    p.add_argument("--out", default="data")


def _add_devices(sub: argparse._SubParsersAction) -> None:
    p = _subcommand(sub, "devices", "check a device type TOML and plot the windows it produces", cmd_devices)
    p.add_argument("action", choices=["check"])
    p.add_argument("device_file", help="a device type: TOML file or a name in configs/devices")
    p.add_argument("--out", default=None, help="PNG to write (default: <file stem>_check.png here)")
    p.add_argument("--activities", default=None, help="activities to simulate (default: the run's)")
    p.add_argument("--seed", type=int, default=0)


def _add_interpret(sub: argparse._SubParsersAction) -> None:
    p = _subcommand(sub, "interpret", "interpret a data set's windows into texts", cmd_interpret, data=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--interpreter", default="rules", choices=["rules", "openai", "local"])
    p.add_argument("--llm-base-url", default="")
    p.add_argument("--llm-model", default="")
    p.add_argument("--llm-api-key-env", default="OPENAI_API_KEY", help="env var holding the key; '' for none")
    p.add_argument("--cache", default=None, help="SQLite cache file for LLM answers")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", required=True)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = _subcommand(sub, "train", "train LanHAR centrally (stage 1 + stage 2)", cmd_train, device=True)
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--activities", default=ACTIVITIES)
    p.add_argument("--budget", default="default", choices=BUDGETS)
    p.add_argument("--config", default=None, help="TOML file of CentralConfig fields")
    p.add_argument("--interpreter", default=None)
    p.add_argument("--text-encoder", default=None, help="name or directory of a BERT-family model")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--text-space-cache",
        default=None,
        help="directory of stage-1 text encoders to reuse and fill (e.g. an experiment's OUT/text-spaces)",
    )
    p.add_argument("--out", required=True)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = _subcommand(sub, "evaluate", "evaluate a trained model on a target", cmd_evaluate, device=True)
    p.add_argument("--model", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--new-activities", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)


def _add_export(sub: argparse._SubParsersAction) -> None:
    summary = "TorchScript and ONNX sensor encoder (raw window in) + label bank, size and latency"
    p = _subcommand(sub, "export", summary, cmd_export)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)


def _add_baseline(sub: argparse._SubParsersAction) -> None:
    summary = "source-only supervised baseline on the same split"
    p = _subcommand(sub, "baseline", summary, cmd_baseline, device=True)
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--activities", default=ACTIVITIES)
    p.add_argument("--budget", default="default", choices=BUDGETS)
    p.add_argument("--model", default="transformer", choices=["transformer", "cnn"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    from simulations.experiments import PROTOCOLS  # light: the protocols import their heavy parts lazily

    summary = "an evaluation protocol: report.md, figures, results.json"
    p = _subcommand(sub, "experiment", summary, cmd_experiment, device=True)
    p.add_argument("protocol", choices=list(PROTOCOLS))
    p.add_argument("--budget", default="default", choices=BUDGETS)
    p.add_argument(
        "--config", default=None, help="settings TOML (default: configs/experiments/<protocol>.toml)"
    )
    p.add_argument("--pairs", default=None, help="source:target pairs, comma-separated, or 'all'")
    p.add_argument(
        "--text-space-cache",
        default=None,
        help="directory of stage-1 text encoders to reuse and fill, e.g. another experiment's "
        "OUT/text-spaces (default: OUT/text-spaces); a run reuses one only if its stage-1 inputs are equal",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes running the pairs side by side, each with an equal share of the cores as torch "
        "threads; the pairs of one source stay in one process (they share a stage-1 text space). "
        "cross-dataset and ablation; a run's numbers depend on its seed and thread count, not on its worker",
    )
    p.add_argument("--out", required=True)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    summary = "speed, size and memory: interpretation, training, latency, federation"
    p = _subcommand(sub, "bench", summary, cmd_bench, device=True)
    p.add_argument("--budget", choices=BUDGETS, default="default")
    p.add_argument("--parts", default="core,llm,federated", help="comma-separated: core, llm, federated")
    p.add_argument("--clients", default=None, help="federated client counts, e.g. 10,100,1000 (budget's)")
    p.add_argument(
        "--llm-base-url",
        default=None,
        help="a running OpenAI-compatible server serving model 'm' (default: start llama-cpp-python)",
    )
    p.add_argument("--out", required=True)


def _add_secagg_keys(sub: argparse._SubParsersAction) -> None:
    summary = "identity keys and roster for signed SecAgg+ round keys (docs/privacy.md, docs/deploy.md)"
    p = _subcommand(sub, "secagg-keys", summary, cmd_secagg_keys)
    p.add_argument("--clients", type=int, default=0, help="clients named by partition id 0..N-1")
    p.add_argument("--names", default=None, help="comma-separated client names instead of --clients")
    p.add_argument("--force", action="store_true", help="replace an existing roster and its keys")
    p.add_argument(
        "--out", required=True, help="roster.json and client-<name>.key (a simulation's identity dir)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedlanhar", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    subcommands = (_add_data, _add_devices, _add_interpret, _add_train, _add_evaluate, _add_export)
    for add_subcommand in (*subcommands, _add_baseline, _add_experiment, _add_bench, _add_secagg_keys):
        add_subcommand(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from common.base.device import DeviceError, resolve_device
    from common.base.runtime import configure_logging
    from common.data.errors import DataError
    from simulations.run_check import RunFailed

    configure_logging(verbose=args.verbose)

    try:
        if getattr(args, "device", None) is not None:
            resolve_device(args.device)  # a device this machine lacks fails now, not after data loading
        args.func(args)
    except (DataError, DeviceError, FileNotFoundError) as error:
        print(f"fedlanhar {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RunFailed as failure:  # a federation that failed or wrote no fresh metrics.json: its error
        print(f"fedlanhar {args.command}: error: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
