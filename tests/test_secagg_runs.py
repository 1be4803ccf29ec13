"""SecAgg+ through a real `flwr run` (issue #36): dropouts over the transport, and the combinations.

Each run is the smallest that exercises the path: synthetic clients, one round, tiny models. The expected
aggregate comes from the clients themselves: with $FEDLANHAR_SECAGG_TEST_DUMP_DIR set (the clients' own
environment, which the SuperLink's simulation passes on to them; the run config cannot set it) each client
writes, on its own side, the global model it received, its plain update (after any DP clipping) and its
weight, right before masking them (client/secagg.py). The server records nothing more than it sees; the test
compares the model it released (its checkpoint) with the plain weighted mean of the survivors' dumped updates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flower_runs import run_flwr

from client.secagg import IDENTITY_DIR_ENV, TEST_DUMP_DIR_ENV
from common.federation.secagg_identity import create_identities
from server.checkpoint import load_checkpoint

TINY_RUN = [
    "num-server-rounds=1",
    "new-activities=''",
    "source-windows-per-activity=16",
    "stage1-steps=1",
    "server-pretrain-epochs=1",
    "windows-per-client=24",
    "local-epochs=1",
    "sensor-width=32",
    "secagg=true",
]
# 2 x secagg-clipping-range / secagg-quantization-range (defaults): one quantisation step of a masked value.
QUANTISATION_STEP = 2 * 1.0 / 4194304


def run_flower(
    tmp_path: Path, settings: list[str], num_supernodes: int, env: dict[str, str] | None = None
) -> tuple[dict, Path]:
    """`flwr run` with a SuperLink of its own, `env` added to the clients' environment; (metrics.json, the
    client dump directory)."""
    out_dir, dumps = tmp_path / "out", tmp_path / "client-dumps"
    overridden = {setting.split("=")[0] for setting in settings}
    tiny = [setting for setting in TINY_RUN if setting.split("=")[0] not in overridden]
    run_config = " ".join([f"out-dir='{out_dir}'", *tiny, *settings])
    run_flwr(tmp_path, run_config, num_supernodes, env={TEST_DUMP_DIR_ENV: str(dumps)} | (env or {}))
    return json.loads((out_dir / "metrics.json").read_text()), dumps


def plain_weighted_mean(dumps: Path, server_round: int) -> tuple[dict, dict, list[str]]:
    """(the global model the clients received, global + the weighted mean of their dumped updates, the
    tensors they sent), over every client that masked an update in `server_round`."""
    files = sorted(dumps.glob(f"round-{server_round}-partition-*.npz"))
    assert files, f"no client dumped an update in round {server_round}"
    loaded = [dict(np.load(path)) for path in files]
    received = {key[len("global:") :]: value for key, value in loaded[0].items() if key.startswith("global:")}
    for dump in loaded[1:]:  # every client trained from the same global model
        assert all(np.array_equal(dump[f"global:{key}"], value) for key, value in received.items())
    sent = [key[len("update:") :] for key in loaded[0] if key.startswith("update:")]
    total_weight = sum(float(dump["weight"]) for dump in loaded)
    expected = dict(received)
    for key in sent:
        mean = sum(float(dump["weight"]) * dump[f"update:{key}"] for dump in loaded) / total_weight
        expected[key] = received[key].astype(np.float64) + mean
    return received, expected, sent


def check_release(out_dir: Path, received: dict, expected: dict, sent: list[str], tolerance: float) -> None:
    """The server's model after the round equals the plain mean (sent tensors), the global (the others)."""
    released = load_checkpoint(out_dir).arrays
    assert set(released) == set(received)
    moved = max(float(np.abs(expected[key] - received[key]).max()) for key in sent)
    assert moved > 100 * tolerance  # the round did move the model: the comparison below means something
    for key in sent:
        assert float(np.abs(released[key] - expected[key]).max()) < tolerance, key
    for key in set(received) - set(sent):  # frozen: not sent, not moved
        assert np.array_equal(released[key], received[key]), key


def masked_vector_only(metrics: dict, sent_values: int) -> None:
    """What the server got from training: one masked vector per client, [weight, update..., loss]."""
    assert metrics["uploaded_fields"]["train"] == {"secagg-masked.vector": [1 + sent_values + 1]}


@pytest.mark.slow
def test_secagg_with_a_dropout_after_share_keys_and_one_during_unmasking(tmp_path):
    """10 clients, neighbourhoods of 7 (threshold 4): partition 2 stops answering after share-keys (it
    never sends its masked update), partition 7 sends it but does not answer the unmask stage. The survivors'
    sum is recovered from the others' shares and equals the plain weighted mean of the 9 updates."""
    settings = [
        "secagg-drop='2:collect,7:unmask'",
        "min-train-nodes=10",
        "min-available-nodes=10",
    ]
    metrics, dumps = run_flower(tmp_path, settings, num_supernodes=10)
    record = metrics["rounds"][0]
    assert record["secagg"]["refused"] is None and record["aggregated"] is True
    assert record["secagg"]["sampled"] == 10
    assert record["secagg"]["survivors"] == 9  # partition 7's vector is in the sum, its mask was rebuilt
    assert record["secagg"]["dropped_after_share_keys"] == 1  # partition 2: its pairwise masks removed
    failed = {failure["phase"] for failure in metrics["failures"]}
    assert {"train", "secagg-unmask"} <= failed
    received, expected, sent = plain_weighted_mean(dumps, server_round=1)
    assert len(list(dumps.glob("round-1-partition-*.npz"))) == 9 and sorted(sent) == sorted(received)
    masked_vector_only(metrics, sum(received[key].size for key in sent))
    # Stochastic rounding: at most one step per client in the weighted sum, divided by the weight sum; and
    # the float32 model.
    check_release(tmp_path / "out", received, expected, sent, tolerance=4 * QUANTISATION_STEP)


@pytest.mark.slow
def test_secagg_central_dp_lazy_enrolment_and_lean_clients_together(tmp_path):
    """8 clients enrolled lazily (6 sampled for training), client-train-layers = 1, central DP with a noise
    multiplier of 1e-6 (noise std 1e-6 x C / 6: below the quantisation step). Only the trained tensors are
    masked and move; the release equals the plain mean of the clipped updates."""
    settings = [
        "lazy-enrolment=true",
        "fraction-train=0.75",
        "fraction-evaluate=0.5",
        "client-train-layers=1",
        "dp-mode='central'",
        "dp-clipping-norm=1.0",
        "dp-noise-multiplier=0.000001",
        "secagg-num-shares=5",
        "secagg-reconstruction-threshold=4",
        "min-train-nodes=2",
        "min-available-nodes=8",
    ]
    metrics, dumps = run_flower(tmp_path, settings, num_supernodes=8)
    record = metrics["rounds"][0]
    assert record["secagg"]["refused"] is None and record["aggregated"] is True
    assert record["secagg"]["sampled"] == 6 and record["secagg"]["survivors"] == 6
    assert metrics["privacy"]["protections"]["secagg"] is True and metrics["privacy"]["epsilon_spent"] > 0
    received, expected, sent = plain_weighted_mean(dumps, server_round=1)
    assert 0 < len(sent) < len(received)  # lean: the top layer and the projection only
    sent_values = sum(received[key].size for key in sent)
    assert sent_values < sum(value.size for value in received.values()) / 2
    masked_vector_only(metrics, sent_values)
    # Every client clipped its update to the clipping norm over the tensors it sent (and no more).
    for path in dumps.glob("round-1-partition-*.npz"):
        dump = np.load(path)
        assert np.sqrt(sum(float(np.sum(dump[f"update:{key}"] ** 2)) for key in sent)) <= 1.0 + 1e-5
    # Quantisation (uniform weights: at most one step), the noise (about 6 std at most) and float32.
    check_release(tmp_path / "out", received, expected, sent, tolerance=4 * QUANTISATION_STEP + 6e-6 / 6)


@pytest.mark.slow
def test_secagg_with_signed_keys_from_a_roster_in_the_clients_environment(tmp_path):
    """5 clients over 2 rounds, each with the roster and its own identity key in its environment
    ($FEDLANHAR_SECAGG_IDENTITY_DIR: roster.json, client-<partition-id>.key; the run config cannot set it).
    Every client signs its keys for the round and checks its neighbours' (a refusal would leave the round
    and, with threshold 4 of 5, refuse it); each round releases the plain weighted mean, and metrics.json
    names the malicious-server model."""
    identities = tmp_path / "identities"
    create_identities(identities, [str(partition) for partition in range(5)])
    settings = [
        "num-server-rounds=2",
        "secagg-num-shares=5",
        "secagg-reconstruction-threshold=4",
        "min-train-nodes=5",
        "min-available-nodes=5",
    ]
    metrics, dumps = run_flower(tmp_path, settings, 5, env={IDENTITY_DIR_ENV: str(identities)})
    for record in metrics["rounds"]:
        assert record["secagg"]["refused"] is None and record["aggregated"] is True
        assert record["secagg"]["survivors"] == 5 and record["secagg"]["keys_signed"] is True
    assert len(metrics["rounds"]) == 2
    secure_phases = [
        f for f in metrics["failures"] if f["phase"] == "train" or f["phase"].startswith("secagg")
    ]
    assert not secure_phases  # no client refused or dropped out
    report = metrics["privacy"]["secagg"]
    assert report["keys_signed"] is True and report["threat_model"] == "malicious-server"
    assert "secagg-keys.signature" in metrics["uploaded_fields"]["secagg-setup"]
    received, expected, sent = plain_weighted_mean(dumps, server_round=2)
    assert len(list(dumps.glob("round-2-partition-*.npz"))) == 5
    masked_vector_only(metrics, sum(received[key].size for key in sent))
    check_release(tmp_path / "out", received, expected, sent, tolerance=4 * QUANTISATION_STEP)
