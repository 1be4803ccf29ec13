#!/usr/bin/env bash
# GPU check: the small-budget central pipeline (uci -> dsads_torso) and the core bench (stage-1 seconds per
# step, stage-2 windows per second) once on CUDA and once on the CPU; prints both and the speed-ups, and
# whether the two accuracies agree. Run it on a machine with a CUDA GPU after `bash scripts/setup.sh`.
#   bash scripts/gpu-check.sh [DATA_DIR] [OUT_DIR]      (defaults: ../shared/data, runs/gpu-check)
# Without CUDA it says so and exits 2: there is nothing to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${1:-../shared/data}
out_dir=${2:-runs/gpu-check}
python=.venv/bin/python

if ! "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to compare" >&2
    exit 2
fi
mkdir -p "$out_dir"
for device in cuda cpu; do
    echo "gpu-check: small central run and core bench on $device ..."
    "$python" -m simulations.cli train --data-dir "$data_dir" --source uci --target dsads_torso \
        --budget small --device "$device" --out "$out_dir/train-$device" > "$out_dir/train-$device.log" 2>&1
    "$python" -m simulations.cli bench --data-dir "$data_dir" --parts core --budget small \
        --device "$device" --out "$out_dir/bench-$device" > "$out_dir/bench-$device.log" 2>&1
done
"$python" - "$out_dir" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = {}
for device in ("cuda", "cpu"):
    train = json.loads((out / f"train-{device}" / "metrics.json").read_text())
    core = json.loads((out / f"bench-{device}" / "bench.json").read_text())["core"]
    rows[device] = {
        "central_small_seconds": train["seconds"]["total"],
        "stage2_seconds": train["seconds"]["stage2"],
        "source_val_accuracy": train["source_val"]["accuracy"],
        "stage1_seconds_per_step": core["stage1"]["seconds_per_step"],
        "stage2_windows_per_s": core["stage2"]["windows_per_s"],
    }
speedups = {
    "central_small": rows["cpu"]["central_small_seconds"] / rows["cuda"]["central_small_seconds"],
    "stage1_step": rows["cpu"]["stage1_seconds_per_step"] / rows["cuda"]["stage1_seconds_per_step"],
    "stage2_training": rows["cuda"]["stage2_windows_per_s"] / rows["cpu"]["stage2_windows_per_s"],
}
accuracy_gap = abs(rows["cuda"]["source_val_accuracy"] - rows["cpu"]["source_val_accuracy"])
report = {"devices": rows, "speedup_over_cpu": speedups, "source_val_accuracy_gap": accuracy_gap}
(out / "gpu-check.json").write_text(json.dumps(report, indent=2))
for device, row in rows.items():
    print(f"{device:5s} " + "  ".join(f"{key} {value:.4g}" for key, value in row.items()))
print("speed-up over the CPU: " + "  ".join(f"{key} x{value:.1f}" for key, value in speedups.items()))
print(f"source-validation accuracy, CUDA vs CPU: {accuracy_gap:.3f} apart (same seed; bf16 and kernels differ)")
print(f"written: {out / 'gpu-check.json'}")
PY
