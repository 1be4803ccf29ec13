"""The single-sensor ceiling (experiments/sensor_probe.py and the `ceiling` protocol): a supervised
probe on the target, for reporting only. It separates what a sensor can tell apart, trains only on users that
are not held out, scores the new-activity score's windows, is deterministic and leaves every global random
state alone."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from common.data.features import FEATURE_INDEX, analyze_windows
from common.data.loading import load_dataset
from common.data.synthetic import generate_windows
from common.method.lanhar import to_walking_frame
from simulations.central import load_pair
from simulations.cli import main
from simulations.experiments import ceiling, sensor_probe
from simulations.experiments.new_activity import per_label_table, results_table
from simulations.experiments.settings import Experiment, Pair, pair_config


def test_the_probe_tells_postures_apart_but_not_two_names_for_one_motion() -> None:
    """Lying and standing differ in the segment's inclination; "standing" and "standing too", given by the
    recording and not by the motion, do not: the probe finds the first, and is at chance on the second."""
    ws = generate_windows(["walking", "standing", "lying"], 120, seed=3, n_users=8, windows_per_recording=6)
    features = sensor_probe.probe_features(ws)
    standing = ws.y == ws.label_names.index("standing")
    labels = ["standing", "standing too", "lying"]
    y = np.full(len(ws), -1)
    y[standing] = ws.segment[standing] % 2  # two names for one motion, by recording
    y[ws.y == ws.label_names.index("lying")] = 2
    train, scored = (y >= 0) & (ws.user < 4), (y >= 0) & (ws.user >= 4)

    probe = sensor_probe.probe_recall(features, y, train, scored, labels)
    assert probe["recall"]["lying"] == 1.0
    assert probe["recall"]["standing"] + probe["recall"]["standing too"] < 2 * 0.7  # chance: 0.5 each
    assert np.sum(probe["confusion"]) == scored.sum()
    assert probe == sensor_probe.probe_recall(features, y, train, scored, labels)  # deterministic


def test_the_inclination_is_the_walking_frames_tilt(data_dir: Path) -> None:
    """As to_walking_frame computes it: the tilt from +z once each wearer's walking posture is +z."""
    ws = load_dataset("uci", data_dir)
    inclination = sensor_probe.segment_inclination(
        analyze_windows(ws.X, ws.sampling_rate, ws.has_gyro), ws.user
    )
    turned = to_walking_frame(ws)
    tilt_z = analyze_windows(turned.X, turned.sampling_rate, turned.has_gyro)[:, FEATURE_INDEX["tilt_z"]]
    np.testing.assert_allclose(inclination, tilt_z, atol=1e-3)
    lying, standing = (np.median(inclination[ws.y == ws.label_names.index(n)]) for n in ("lying", "standing"))
    assert lying > 60 > 20 > standing


def test_the_probe_trains_on_the_other_users_and_scores_the_runs_held_out_windows(
    data_dir: Path, tmp_path: Path
) -> None:
    pairs = [Pair("wisdm_phone", "uci"), Pair("dsads_torso", "uci")]
    experiment = Experiment("ceiling", data_dir, "default", tmp_path, None, "test")
    states = (
        np.random.get_state()[1].copy(),
        torch.get_rng_state(),
        random.getstate(),
        torch.get_num_threads(),
    )
    ceilings = sensor_probe.pair_ceilings(pairs, experiment, {}, 1)
    after = (np.random.get_state()[1], torch.get_rng_state(), random.getstate(), torch.get_num_threads())
    assert np.array_equal(states[0], after[0]) and torch.equal(states[1], after[1])
    assert states[2:] == after[2:]  # no global generator drawn from, the thread count as it was

    uci = load_dataset("uci", data_dir)
    for pair in pairs:
        probe = sensor_probe.pair_ceilings([pair], experiment, {}, 1)["pairs"][pair.label]
        assert probe == ceilings["pairs"][pair.label]  # deterministic, alone or beside another pair
        held_out = load_pair(pair_config(pair, experiment, {}, 1), data_dir)["target_eval"].user
        assert probe["held_out_users"] == sorted(set(held_out.tolist()))  # the run's own split
        assert not set(probe["training_users"]) & set(probe["held_out_users"])
        assert probe["labels"] == ["standing", "lying"]
        new = np.isin(uci.y, [uci.label_names.index(n) for n in probe["labels"]])
        assert probe["windows"] == np.sum(new & np.isin(uci.user, probe["held_out_users"]))
        assert probe["windows"] + probe["training_windows"] == new.sum()
        assert probe["recall"]["lying"] > 0.95 and 0.0 <= probe["accuracy"] <= 1.0
    assert ceilings["mean_accuracy"] == pytest.approx(
        np.mean([p["accuracy"] for p in ceilings["pairs"].values()])
    )


def _new_activity_record(pair: str, labels: list[str], accuracy: float) -> dict:
    """A LanHAR record as the matrix writes it, with only what the new-activity tables read."""
    per_class = {label: {"recall": accuracy} for label in labels}
    confusion = np.full((len(labels), len(labels)), 2).tolist()
    new = {"labels": labels, "windows": int(np.sum(confusion)), "chance": 1 / len(labels)}
    new |= {"accuracy_among_new": accuracy, "top3_among_new": 1.0, "accuracy_full_bank": accuracy}
    new |= {"text_path_accuracy_among_new": 0.5, "path_agreement": 0.5, "text_path": {"per_class": per_class}}
    new |= {"sensor": {"per_class": per_class, "confusion": confusion}}
    return {"pair": pair, "method": "lanhar", "accuracy": 0.8, "new_activities": new}


def test_the_command_writes_the_ceiling_tables(data_dir: Path, tmp_path: Path) -> None:
    """For a seed (the protocol's settings file or --seed), or for the split of a matrix run before."""
    pair = "dsads_torso:uci"
    assert (
        main(
            [
                "experiment",
                "ceiling",
                "--data-dir",
                str(data_dir),
                "--pairs",
                pair,
                "--out",
                str(tmp_path / "0"),
            ]
        )
        == 0
    )
    argv = ["--data-dir", str(data_dir), "--pairs", pair]
    assert ceiling.main([*argv, "--seed", "1", "--out", str(tmp_path / "1")]) == 0
    matrix = {
        "budget": "default",
        "settings": {"pairs": [pair], "seed": 2, "central": {"interpreter": "rules"}},
        "runs": [_new_activity_record("dsads-t→uci", ["standing", "lying"], 0.5)],
        "summary": {
            "new_activities": {"lanhar": {"chance": 0.5, "accuracy_among_new": 0.5, "top3_among_new": 1.0}}
        },
    }
    (tmp_path / "matrix.json").write_text(json.dumps(matrix))
    assert (
        ceiling.main(
            [
                "--data-dir",
                str(data_dir),
                "--matrix",
                str(tmp_path / "matrix.json"),
                "--out",
                str(tmp_path / "2"),
            ]
        )
        == 0
    )
    for seed in (0, 1, 2):
        results = json.loads((tmp_path / str(seed) / "results.json").read_text())
        report = (tmp_path / str(seed) / "report.md").read_text()
        probe = results["single_sensor_ceiling"]["pairs"]["dsads-t→uci"]
        assert results["seed"] == seed and probe["windows"] > 0
        assert "| pair | new labels | windows | training windows | chance | single-sensor ceiling |" in report
        assert (
            "| new label | pairs | single-sensor ceiling (recall) |" in report and "| lying | 1 |" in report
        )
    assert "--seed 1" in json.loads((tmp_path / "1" / "results.json").read_text())["command"]
    # The matrix's own tables, the ceiling beside LanHAR's two paths.
    assert (
        "| dsads-t→uci | 2 | 8 | 0.500 | 0.500 |" in report and report.count("single-sensor ceiling |") == 3
    )
    assert (
        "| new label | pairs | sensor encoder recall | text path recall | single-sensor ceiling |" in report
    )


def test_the_new_activity_tables_set_the_ceiling_beside_both_paths() -> None:
    pairs = [Pair("a", "b"), Pair("c", "b")]
    labels = ["rowing", "cycling"]
    records = [_new_activity_record("a→b", labels, 0.5), _new_activity_record("c→b", labels, 0.25)]
    probes = {"a→b": (0.9, 1.0, 0.8), "c→b": (0.7, 0.6, 0.8)}  # accuracy, recall of rowing and cycling
    ceilings = {
        "pairs": {
            p: {"accuracy": a, "recall": {"rowing": r, "cycling": c}} for p, (a, r, c) in probes.items()
        }
    }
    summary = {"lanhar": {"chance": 0.5, "accuracy_among_new": 0.375, "top3_among_new": 1.0}}
    header, rows = results_table(pairs, ["lanhar"], records, summary, ceilings)
    assert header[-1] == "single-sensor ceiling" and [row[-1] for row in rows] == [
        0.9,
        0.7,
        pytest.approx(0.8),
    ]
    header, rows = per_label_table(pairs, records, ceilings)
    assert header[2:5] == ["sensor encoder recall", "text path recall", "single-sensor ceiling"]
    assert [row[:5] for row in rows] == [["rowing", 2, 0.375, 0.375, 0.8], ["cycling", 2, 0.375, 0.375, 0.8]]
    assert results_table(pairs, ["lanhar"], records, summary)[0][-1] == "LanHAR known-activity acc."
    assert per_label_table(pairs, records)[0][-2] == "text path recall"  # no ceiling given, no column
