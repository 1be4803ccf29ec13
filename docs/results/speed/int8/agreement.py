"""The int8 ONNX model against the float one: top-1 agreement, accuracy and latency on real windows.

    python docs/results/speed/int8/agreement.py RUN_DIR [RUN_DIR ...] --data-dir ../shared/data --out OUT.json

RUN_DIR is a federated run's output (sensor_encoder.onnx and label_bank.npz). Its int8 twin is written again
with the current code (common/models/export.py, quantize_onnx_model). Every window of the four data sets whose
label is in the run's label bank is scored by both models; labels are read only to report the accuracy of
each, never to choose anything. Latency: one window, one thread, 500 calls after 50, median ms.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from common.data.loading import load_dataset
from common.models.export import ONNX_FILE, onnx_session, quantize_onnx_model, time_calls
from common.models.zero_shot import LabelBank

DATA_SETS = ("uci", "wisdm_phone", "dsads_torso", "dsads_rightleg")


def embed(session, X: np.ndarray) -> np.ndarray:
    out = np.concatenate([session.run(None, {"window": X[i : i + 512]})[0] for i in range(0, len(X), 512)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def compare(run_dir: Path, data_dir: Path, int8_path: Path) -> dict:
    quantize_onnx_model(run_dir / ONNX_FILE, int8_path)
    bank = LabelBank.load(run_dir / "label_bank.npz")
    labels = np.array(bank.labels)
    sessions = {"float": onnx_session(run_dir / ONNX_FILE, 2), "int8": onnx_session(int8_path, 2)}
    rows = {}
    for name in DATA_SETS:
        windows = load_dataset(name, data_dir)
        names = np.array(windows.label_names)[windows.y]
        keep = np.isin(names, labels)
        X, y = windows.X[keep], names[keep]
        embeddings = {kind: embed(session, X) for kind, session in sessions.items()}
        predicted = {kind: labels[(e @ bank.embeddings.T).argmax(1)] for kind, e in embeddings.items()}
        cosine = (embeddings["float"] * embeddings["int8"]).sum(1)
        rows[name] = {
            "windows": int(len(X)),
            "top1_agreement": float(np.mean(predicted["float"] == predicted["int8"])),
            "accuracy_float": float(np.mean(predicted["float"] == y)),
            "accuracy_int8": float(np.mean(predicted["int8"] == y)),
            "cosine_min": float(cosine.min()),
            "cosine_mean": float(cosine.mean()),
        }
    one = X[:1]
    latency = {}
    for kind, path in (("float", run_dir / ONNX_FILE), ("int8", int8_path)):
        session = onnx_session(path, 1)
        latency[kind] = time_calls(lambda s=session: s.run(None, {"window": one}), 500, 50)["median_ms"]
    windows_total = sum(row["windows"] for row in rows.values())
    agreement = sum(row["top1_agreement"] * row["windows"] for row in rows.values()) / windows_total
    return {
        "run": str(run_dir),
        "labels": bank.labels,
        "per_data_set": rows,
        "top1_agreement": agreement,
        "latency_ms_one_thread": latency,
        "megabytes": {
            kind: path.stat().st_size / 1e6
            for kind, path in (("float", run_dir / ONNX_FILE), ("int8", int8_path))
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_files = [Path(scratch) / f"{i}.int8.onnx" for i in range(len(args.runs))]
        results = [
            compare(run, args.data_dir, int8) for run, int8 in zip(args.runs, scratch_files, strict=True)
        ]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for result in results:
        print(result["run"], f"agreement {result['top1_agreement']:.4f}", result["latency_ms_one_thread"])
        for name, row in result["per_data_set"].items():
            print(f"  {name:15s} {row}")


if __name__ == "__main__":
    main()
