"""Screening of a candidate stage-2 change (not part of the product): the sensor encoder also reads the
signal analysis the interpreter reads, as one extra token.

The default central run of each pair (`central_config("default", ...)`, stage 1 reused from a text-space
cache), with `simulations.central.SensorEncoder` replaced by a subclass whose forward computes
`analyze_windows` of the batch (numpy, no gradient into it), squashes it (sign(f) log(1 + |f|)), projects it
to d_model with a 2-layer MLP and appends it to the 6 patch tokens. Everything else is unchanged. The
analysis is computed inside forward only for this screening: a product version takes it as a second input
(the client computes it anyway for its uploads) so that the model stays exportable to TorchScript.

    python docs/results/analysis-token/screen.py DATA_DIR TEXT_SPACE_CACHE OUT uci:dsads_torso,...
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import simulations.central as central
from common.data.features import FEATURE_NAMES, analyze_windows
from common.models.sensor_encoder import SensorEncoder

STAIRS = {"upstairs": "stairs", "downstairs": "stairs"}


class AnalysisTokenSensorEncoder(SensorEncoder):
    def __init__(self, config=None):
        super().__init__(config)
        width = self.config.d_model
        self.feature_projection = nn.Sequential(
            nn.Linear(len(FEATURE_NAMES), width), nn.GELU(), nn.Linear(width, width)
        )
        self.feature_norm = nn.LayerNorm(width)

    def forward(self, x):
        analysis = analyze_windows(x.detach().cpu().numpy().astype(np.float32), 20.0, True)
        analysis = torch.from_numpy(np.nan_to_num(analysis)).float()
        analysis = torch.sign(analysis) * torch.log1p(analysis.abs())
        patches = self.normalize(x.float()).reshape(x.shape[0], self.num_patches, -1)
        tokens = self.patch_norm(self.patch_projection(patches)) + self.positions
        token = self.feature_norm(self.feature_projection(analysis)).unsqueeze(1)
        tokens = self.encoder(self.dropout(torch.cat([tokens, token], dim=1)))
        return self.output_projection(tokens.mean(dim=1))


def main() -> None:
    data_dir, cache, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(1)
    central.SensorEncoder = AnalysisTokenSensorEncoder
    for pair in sys.argv[4].split(","):
        source, target = pair.split(":")
        if "wisdm_phone" in (source, target):
            space = {"activities": ("walking", "stairs", "sitting"), "merge_labels": STAIRS}
        else:
            space = {"activities": ("walking", "upstairs", "downstairs", "sitting")}
        started = time.time()
        config = central.central_config("default", source=source, target=target, **space)
        run_dir = out / f"{source}-{target}"
        trained = central.train_central(config, data_dir, run_dir, progress=False, text_space_cache=cache)
        scored = central.evaluate_central(run_dir, data_dir, target, run_dir / "eval")
        print(
            json.dumps(
                {
                    "pair": f"{source}->{target}",
                    "acc": round(scored["accuracy"], 3),
                    "f1": round(scored["macro_f1"], 3),
                    "text": round(scored["text_path_accuracy"], 3),
                    "src_val": round(trained["source_val"]["accuracy"], 3),
                    "sec": round(time.time() - started),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
