"""One training step in float32 against bf16 autocast on the CPU, one thread: MiniLM's stage-1 step and the
384-wide sensor encoder's stage-2 step (random inputs of the real shapes). The trial it measured lost
(README.md, "bf16 training on the CPU"); this script is what its speed figures came from.

    .venv/bin/python docs/results/speed/bf16_step.py
"""

from __future__ import annotations

import time

import torch

from common.models.sensor_encoder import SensorEncoder, SensorEncoderConfig
from common.models.text_encoder import TextEncoder


def seconds_per_step(model: torch.nn.Module, loss_of, bf16: bool, repeats: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(model)
        loss.float().backward()
        optimizer.step()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    text = TextEncoder("minilm").train()
    # A stage-1 step: about 30 distinct interpretations of ~57 tokens and 10 descriptions of ~116.
    batches = [
        (torch.randint(1000, 30000, (n, length)), torch.ones(n, length, dtype=torch.long))
        for n, length in ((30, 57), (10, 116))
    ]

    def text_loss(model):
        return sum(model.embed_tokens(ids, mask).float().pow(2).mean() for ids, mask in batches)

    sensor = SensorEncoder(SensorEncoderConfig()).train()
    windows = torch.randn(64, 120, 6)
    analysis = torch.randn(64, len(SensorEncoderConfig().analysis_features))

    def sensor_loss(model):
        return model(windows, analysis).float().pow(2).mean()

    for name, model, loss_of, repeats in (
        ("stage-1 step (MiniLM)", text, text_loss, 3),
        ("stage-2 step (batch 64, 384 wide)", sensor, sensor_loss, 10),
    ):
        for bf16 in (False, True, False, True):
            label = "bf16 autocast" if bf16 else "float32"
            print(f"{name}: {label} {seconds_per_step(model, loss_of, bf16, repeats):.3f} s", flush=True)


if __name__ == "__main__":
    main()
