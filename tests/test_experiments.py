"""The evaluation suite (`fedlanhar experiment ...`): settings, ablation knobs, NLS-HAR sentences, the KL
measure, and every protocol end to end on real data at --budget small with a tiny settings file."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.base.serialise import jsonable
from common.data.errors import DataError
from common.data.features import analyze_windows
from common.data.label_spaces import rename_labels
from common.data.loading import dataset_labels, save_windowset
from common.data.windows import WindowSet
from common.language.prompts import STANDARD_CATEGORIES, SensorContext
from common.language.rules import SIMPLE_CATEGORIES, RulesInterpreter
from simulations.baselines import NLS_BASE_TEMPLATE, NLS_TEMPLATES, nls_sentences
from simulations.central import central_config, central_interpreter, text_train_config
from simulations.cli import main
from simulations.experiments.cross_dataset import lanhar_diagnostics, matrix_axes, recall_rows
from simulations.experiments.distribution_gap import relative_kl, symmetric_kl
from simulations.experiments.new_activity import new_activities, per_label_table
from simulations.experiments.report import Report
from simulations.experiments.settings import (
    Pair,
    load_settings,
    pair_label_space,
    parse_pairs,
    short_name,
)

# Small enough for CI: stage 1 and 2 barely train, so only structure and finiteness are asserted.
TINY_CENTRAL = {
    "stage1_steps": 1,
    "stage2_epochs": 1,
    "max_windows_per_class": 16,
    "descriptions_per_label": 2,
}
SECTIONS = ("## Setup", "## Results", "## Figures", "## Notes", "## Configuration")


# ------------------------------------------------------------------------------------------ fast tests


UCI_LABELS = ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]
WISDM_LABELS = ["walking", "jogging", "stairs", "sitting", "standing", "typing"]
DSADS_LABELS = ["sitting", "standing", "lying on back", "upstairs", "downstairs", "walking", "jumping"]


def _write_labels(directory: Path, name: str, labels: list[str]) -> None:
    """A tiny valid npz window file with one window per label."""
    n = len(labels)
    ws = WindowSet(
        X=np.zeros((n, 120, 6), dtype=np.float32),
        y=np.arange(n),
        label_names=labels,
        user=np.arange(n),
        segment=np.arange(n),
        name=name,
    )
    save_windowset(ws, directory / f"{name}.npz")


def test_an_in_process_federated_run_fails_with_the_server_apps_error_not_a_stale_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fedlanhar experiment federated` runs its federations in this process (run_simulation raises the
    ServerApp's error again): a run that failed, or that left only an earlier run's metrics.json, raises
    RunFailed with the error (the CLI: exit 1); a wrong input the preflight names stays a DataError (exit 2).
    """
    import flwr.simulation

    from common.federation.run_config import FederationConfig
    from simulations.experiments.federated import run_federated
    from simulations.run_check import RunFailed

    config = FederationConfig(out_dir=str(tmp_path))
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.9}')  # an earlier run's

    def server_app_raises(error: Exception):
        def run_simulation(**kwargs) -> None:
            raise error

        return run_simulation

    monkeypatch.setattr(flwr.simulation, "run_simulation", lambda **kwargs: None)  # wrote nothing
    with pytest.raises(RunFailed, match=f"wrote no new {tmp_path / 'metrics.json'}"):
        run_federated(config, num_clients=2)
    refused = RuntimeError("every client of a device type the run config names refused: 'wrist_watch'")
    monkeypatch.setattr(flwr.simulation, "run_simulation", server_app_raises(refused))
    with pytest.raises(RunFailed, match="failed: every client of a device type .* 'wrist_watch'"):
        run_federated(config, num_clients=2)
    placement = DataError("configs/devices/my_ring.toml: key 'placement' = 'tail' is not simulated")
    monkeypatch.setattr(flwr.simulation, "run_simulation", server_app_raises(placement))
    with pytest.raises(DataError, match="'tail' is not simulated"):
        run_federated(config, num_clients=2)

    def writes_metrics(**kwargs) -> None:
        (tmp_path / "metrics.tmp").write_text('{"accuracy": 0.5}')
        (tmp_path / "metrics.tmp").replace(tmp_path / "metrics.json")  # as the ServerApp writes it

    monkeypatch.setattr(flwr.simulation, "run_simulation", writes_metrics)
    assert run_federated(config, num_clients=2)["accuracy"] == 0.5


def test_pairs_and_their_label_spaces(tmp_path: Path) -> None:
    pairs = parse_pairs("all")
    assert len(pairs) == 12 and len(set(pairs)) == 12
    for name, labels in (("uci", UCI_LABELS), ("wisdm_phone", WISDM_LABELS), ("dsads_torso", DSADS_LABELS)):
        _write_labels(tmp_path, name, labels)
    plain = pair_label_space(Pair("uci", "dsads_torso"), tmp_path)
    assert plain.activities == ("walking", "upstairs", "downstairs", "sitting")
    assert plain.merge_labels == {} and not plain.merges_stairs
    wisdm = pair_label_space(parse_pairs("uci:wisdm_phone")[0], tmp_path)
    assert wisdm.activities == ("walking", "stairs", "sitting")
    assert wisdm.merge_labels == {"upstairs": "stairs", "downstairs": "stairs"} and wisdm.merges_stairs
    assert parse_pairs(["uci:dsads_torso", "uci:dsads_torso"]) == [Pair("uci", "dsads_torso")]
    for bad in ("uci", "uci:uci", ":dsads_torso", ""):
        with pytest.raises(DataError, match="pair"):
            parse_pairs(bad)


def test_label_space_comes_from_the_data_not_the_name(tmp_path: Path) -> None:
    """Any name works; a set with one mixed "stairs" class merges the pair's stairs, whatever it is called."""
    _write_labels(tmp_path, "my_chest", DSADS_LABELS)
    _write_labels(tmp_path, "my_pocket", WISDM_LABELS)
    _write_labels(tmp_path, "wisdm_phone", UCI_LABELS)  # a known name with up/down stairs: no merge
    _write_labels(tmp_path, "no_walking", ["sitting", "standing", "stairs"])
    _write_labels(tmp_path, "still_only", ["sitting", "standing"])
    _write_labels(tmp_path, "spelled", ["Walking", "walking_upstairs", "walking_downstairs", "sitting"])
    assert dataset_labels("spelled", tmp_path) == ("walking", "upstairs", "downstairs", "sitting")
    merged = pair_label_space(Pair("my_pocket", "my_chest"), tmp_path)
    assert (merged.activities, merged.merges_stairs) == (("walking", "stairs", "sitting"), True)
    assert pair_label_space(Pair("wisdm_phone", "my_chest"), tmp_path).merge_labels == {}
    assert pair_label_space(Pair("spelled", "my_chest"), tmp_path).activities == (
        "walking",
        "upstairs",
        "downstairs",
        "sitting",
    )
    partial = pair_label_space(Pair("no_walking", "my_chest"), tmp_path)  # restricted to what both have
    assert (partial.activities, partial.merges_stairs) == (("stairs", "sitting"), True)
    with pytest.raises(DataError, match="shared"):
        pair_label_space(Pair("still_only", "my_chest"), tmp_path)  # "sitting" alone is no label space
    with pytest.raises(DataError, match="nowhere"):
        pair_label_space(Pair("nowhere", "my_chest"), tmp_path)
    assert new_activities(Pair("my_pocket", "my_chest"), tmp_path) == [
        "standing",
        "lying on back",
        "jumping",
    ]
    assert short_name("my_chest") == "my_chest" and short_name("dsads_torso") == "dsads-t"
    assert matrix_axes(parse_pairs("dsads_rightleg:my_set,uci:my_set,my_set:uci")) == [
        "dsads_rightleg",
        "my_set",
        "uci",
    ]


def test_settings_file_budget_table_and_unknown_keys(tmp_path: Path) -> None:
    from simulations.experiments.federated import Settings

    path = tmp_path / "federated.toml"
    path.write_text("rounds = 7\nnum_clients = 3\n[small]\nrounds = 2\n[central]\nstage1_steps = 5\n")
    small = load_settings(Settings, path, "small")
    default = load_settings(Settings, path, "default", pairs="dsads_torso:uci")
    assert (small.rounds, small.num_clients, small.central) == (2, 3, {"stage1_steps": 5})
    assert (default.rounds, default.pairs) == (7, ("dsads_torso:uci",))
    assert default.partitionings == ("by-user", "iid", "dirichlet")  # the dataclass default
    path.write_text("round = 7\n")
    with pytest.raises(DataError, match="unknown keys \\['round'\\]"):
        load_settings(Settings, path, "small")
    path.write_text("[central]\nstage_one = 1\n")
    with pytest.raises(DataError, match="stage_one"):
        load_settings(Settings, path, "small")


def test_ablation_knobs_reach_stage_one() -> None:
    full = text_train_config(central_config("small"))
    assert full is not None and (full.alpha, full.beta, full.max_steps) == (0.5, 0.1, 12)
    no_subtasks = text_train_config(central_config("small", text_alpha=0.0, text_beta=0.0))
    assert (no_subtasks.alpha, no_subtasks.beta) == (0.0, 0.0)
    assert text_train_config(central_config("small", stage1_steps=0)) is None  # w/o TTE: stage 1 skipped
    with pytest.raises(DataError, match="stage1_steps"):
        central_config("small", stage1_steps=-1)
    with pytest.raises(DataError, match="simple_prompt"):
        central_config("small", simple_prompt=True, interpreter="openai")


def test_lanhar_diagnostics_and_per_class_recall() -> None:
    def per_class(recalls: dict[str, float]) -> dict:
        return {label: {"recall": recall} for label, recall in recalls.items()}

    records = [
        {
            "pair": "a→b",
            "method": "lanhar",
            "labels": ["walking", "sitting"],
            "accuracy": 0.5,
            "per_class": per_class({"walking": 1.0, "sitting": 0.0}),
            "text_path_accuracy": 0.75,
            "text_path": {"accuracy": 0.75, "per_class": per_class({"walking": 0.5, "sitting": 1.0})},
            "path_agreement": 0.25,
        },
        {"pair": "a→b", "method": "cnn", "labels": ["walking", "sitting"], "accuracy": 0.9},
        {
            "pair": "c→b",
            "method": "lanhar",
            "labels": ["walking", "stairs"],
            "accuracy": 1.0,
            "per_class": per_class({"walking": 1.0, "stairs": 1.0}),
            "text_path_accuracy": 0.25,
            "text_path": {"accuracy": 0.25, "per_class": per_class({"walking": 0.0, "stairs": 0.5})},
            "path_agreement": 0.75,
        },
    ]
    diagnostics = lanhar_diagnostics(records)
    assert diagnostics["pairs"]["a→b"] == {
        "sensor_accuracy": 0.5,
        "text_path_accuracy": 0.75,
        "agreement": 0.25,
    }
    assert diagnostics["mean"] == {"sensor_accuracy": 0.75, "text_path_accuracy": 0.5, "agreement": 0.5}
    assert lanhar_diagnostics(records[1:2]) is None  # baselines only
    header, rows = recall_rows(records)
    assert header == ["pair", "path", "walking recall", "sitting recall", "stairs recall", "accuracy"]
    assert rows == [
        ["a→b", "sensor encoder", 1.0, 0.0, "", 0.5],
        ["a→b", "text path", 0.5, 1.0, "", 0.75],
        ["c→b", "sensor encoder", 1.0, "", 1.0, 1.0],
        ["c→b", "text path", 0.0, "", 0.5, 0.25],
    ]


def test_new_activity_recall_per_label_over_pairs() -> None:
    def new_record(
        pair: str, labels: list[str], confusion: list[list[int]], text_recall: list[float]
    ) -> dict:
        def recalls(values: list[float]) -> dict:
            return {label: {"recall": value} for label, value in zip(labels, values, strict=True)}

        sensor_recall = [row[i] / sum(row) for i, row in enumerate(confusion)]
        return {
            "pair": pair,
            "method": "lanhar",
            "new_activities": {
                "labels": labels,
                "sensor": {"confusion": confusion, "per_class": recalls(sensor_recall)},
                "text_path": {"per_class": recalls(text_recall)},
            },
        }

    records = [
        new_record("a→b", ["rowing", "cycling"], [[1, 3], [0, 4]], [0.5, 1.0]),
        {"pair": "a→b", "method": "nls-knowledge", "new_activities": {"labels": ["rowing", "cycling"]}},
        new_record("c→b", ["rowing", "jumping"], [[3, 1], [1, 3]], [0.0, 1.0]),
        new_record("d→e", ["rowing", "jumping"], [[4, 0], [0, 4]], [1.0, 1.0]),  # a pair not asked for
    ]
    header, rows = per_label_table([Pair("a", "b"), Pair("c", "b")], records)
    assert header[:4] == ["new label", "pairs", "sensor encoder recall", "text path recall"]
    # rowing: recalls 1/4 and 3/4; its 8 windows were named rowing 4, cycling 3 and jumping once
    assert rows == [
        ["rowing", 2, 0.5, 0.25, "rowing"],
        ["cycling", 1, 1.0, 1.0, "cycling"],
        ["jumping", 1, 0.75, 1.0, "jumping"],
    ]


def _gait_and_still_windows() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(120) / 20.0
    windows = np.zeros((6, 120, 6), dtype=np.float32)
    windows[:, :, 2] = 9.80665
    windows[3:, :, 2] += 2.5 * np.sin(2 * np.pi * 1.8 * t)  # walking-like bounce in half of them
    windows[3:, :, 0] += 1.2 * np.sin(np.pi * 1.8 * t)
    windows[:, :, :3] += rng.normal(0, 0.02, (6, 120, 3))
    return windows


def _categories(text: str) -> set[str]:
    """Categories named in a canonical interpretation "category: phrase; category: phrase."."""
    return {part.split(":")[0] for part in text.rstrip(".").split("; ")}


def test_simple_prompt_reports_only_amplitude_and_periodicity() -> None:
    features = analyze_windows(_gait_and_still_windows())
    context = SensorContext(20.0, "waist", "phone", ["walking", "sitting"])
    full = RulesInterpreter().interpret(features, context)
    simple = RulesInterpreter(categories=SIMPLE_CATEGORIES).interpret(features, context)
    assert all(_categories(text) == set(STANDARD_CATEGORIES) for text in full)  # default unchanged
    assert all(_categories(text) == set(SIMPLE_CATEGORIES) for text in simple)
    assert simple[0] != simple[-1]  # still tells still from moving
    careful = RulesInterpreter(categories=SIMPLE_CATEGORIES).reinterpret(features, simple, context)
    assert all(_categories(text) == set(SIMPLE_CATEGORIES) for text in careful)
    assert central_interpreter(central_config("small", simple_prompt=True)).categories == SIMPLE_CATEGORIES
    with pytest.raises(ValueError, match="categories"):
        RulesInterpreter(categories=["loudness"])


def test_rename_labels_merges_up_and_down_stairs() -> None:
    ws = WindowSet(
        X=np.zeros((5, 120, 6), dtype=np.float32),
        y=np.array([0, 1, 2, 3, -1]),
        label_names=["walking", "upstairs", "downstairs", "sitting"],
        user=np.zeros(5, dtype=np.int64),
        segment=np.arange(5),
        name="toy",
    )
    merged = rename_labels(ws, {"upstairs": "stairs", "downstairs": "stairs"})
    assert merged.label_names == ["walking", "stairs", "sitting"]
    assert merged.labels() == ["walking", "stairs", "stairs", "sitting", "unlabeled"]
    assert rename_labels(ws, {}) is ws


def test_nls_sentences_per_variant() -> None:
    base = nls_sentences(["upstairs", "sitting"], "base")
    assert base["upstairs"] == [NLS_BASE_TEMPLATE.format(activity="walking upstairs")]
    diverse = nls_sentences(["sitting"], "diverse")["sitting"]
    assert len(diverse) == len(NLS_TEMPLATES) == len(set(diverse)) and all("sitting" in s for s in diverse)
    knowledge = nls_sentences(["sitting"], "knowledge")["sitting"]
    assert all(
        k.startswith(d.rstrip(".")) and len(k) > len(d) + 40 for k, d in zip(knowledge, diverse, strict=True)
    )
    with pytest.raises(DataError, match="variant"):
        nls_sentences(["sitting"], "fancy")


def test_relative_kl_is_small_for_matching_activities() -> None:
    rng = np.random.default_rng(0)
    centres = {"walking": 0.0, "sitting": 6.0, "upstairs": 12.0}

    def draw(shift: float) -> dict[str, np.ndarray]:
        return {label: rng.normal(c + shift, 1.0, (200, 5)) for label, c in centres.items()}

    aligned = relative_kl(draw(0.0), draw(0.0), dims=4, ridge=1e-3)
    shifted = relative_kl(draw(0.0), draw(3.0), dims=4, ridge=1e-3)
    assert set(aligned) == set(centres)
    assert all(0 <= value < 0.05 for value in aligned.values())
    assert all(shifted[label] > 5 * aligned[label] for label in centres)
    gaussian = (np.zeros(2), np.eye(2))
    assert symmetric_kl(gaussian, gaussian) == pytest.approx(0.0, abs=1e-12)
    assert symmetric_kl(gaussian, (np.array([2.0, 0.0]), np.eye(2))) == pytest.approx(2.0)


def test_report_markdown_and_strict_json() -> None:
    report = Report("T", "summary")
    report.section("Results")
    report.table(["a", "b"], [[0.12345, None], ["x", float("nan")]])
    text = report.text()
    assert "| 0.123 | – |" in text and "| x | – |" in text and text.startswith("# T\n")
    value = {"v": np.float32(0.5), "n": float("nan"), "a": np.arange(2), "t": (1, 2), 3: Path("/p")}
    assert jsonable(value) == {"v": 0.5, "n": None, "a": [0, 1], "t": [1, 2], "3": "/p"}


# ----------------------------------------------------------------------- real data, end to end (slow)


def _run(
    protocol: str,
    tmp_path: Path,
    data_dir: Path,
    pairs: str,
    extra: str = "",
    argv_extra: tuple[str, ...] = (),
    **central: int,
) -> tuple[dict, str, Path]:
    """`fedlanhar experiment` in-process with a tiny settings file; checks what every report must hold."""
    config = tmp_path / f"{protocol}.toml"
    table = "\n".join(f"{key} = {value}" for key, value in (TINY_CENTRAL | central).items())
    config.write_text(f"{extra}seed = 0\n[central]\n{table}\n")
    out = tmp_path / protocol
    argv = ["experiment", protocol, "--data-dir", str(data_dir), "--budget", "small"]
    assert main([*argv, "--config", str(config), "--pairs", pairs, *argv_extra, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    for section in SECTIONS:
        assert section in report, section
    assert "budget: `small`; seed: 0" in report and "stage1_steps = 1" in report  # config copied in
    assert results["experiment"] == protocol and results["budget"] == "small" and results["seed"] == 0
    assert results["settings_text"] == config.read_text()
    for figure in (line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    return results, report, out


def _assert_scores(record: dict, keys=("accuracy", "macro_f1", "category_accuracy")) -> None:
    for key in keys:
        assert isinstance(record[key], float) and 0.0 <= record[key] <= 1.0, (key, record[key])


@pytest.mark.slow
def test_cross_dataset_small(tmp_path: Path, data_dir: Path) -> None:
    results, report, out = _run("cross-dataset", tmp_path, data_dir, "uci:dsads_torso")
    runs = results["runs"]
    assert [r["method"] for r in runs] == ["lanhar", "transformer", "cnn", "nls-knowledge"]
    for record in runs:
        _assert_scores(record)
        assert record["n"] == runs[0]["n"] > 0  # every method scored on the same held-out windows
        assert record["config"]["stage1_steps"] == 1 and record["config"]["seed"] == 0
    goal = results["summary"]["goal"]
    assert goal["best_supervised"] in ("transformer", "cnn")
    assert goal["minus_paper"]["accuracy"] == pytest.approx(runs[0]["accuracy"] - 0.774)
    assert "**Goal table**" in report and "| LanHAR | Accuracy |" in report and "uci→dsads-t" in report
    assert (out / "runs" / "uci-dsads_torso" / "lanhar" / "eval" / "confusion.png").exists()
    assert not (out / "runs" / "uci-dsads_torso" / "lanhar" / "model" / "text_encoder").exists()
    assert [p.name.startswith("stage1-") for p in (out / "text-spaces").iterdir()] == [True]
    for record in (runs[0], runs[3]):  # LanHAR and NLS-HAR also named the target's other 15 activities
        new = record["new_activities"]
        assert len(new["labels"]) == 15 and 0.0 <= new["accuracy_among_new"] <= new["top3_among_new"] <= 1.0
    assert runs[1].get("new_activities") is None  # a supervised classifier cannot name unseen labels
    assert results["summary"]["new_activities"]["lanhar"]["chance"] == pytest.approx(1 / 15)
    assert "New activities, same models" in report and "| uci→dsads-t | 15 |" in report
    # The single-sensor ceiling beside them, on the same held-out windows of the same new labels.
    probe = results["single_sensor_ceiling"]["pairs"]["uci→dsads-t"]
    assert probe["labels"] == runs[0]["new_activities"]["labels"]
    assert probe["windows"] == runs[0]["new_activities"]["windows"]
    assert "| single-sensor ceiling |\n" in report  # the per-pair table's last column
    assert "| text path recall | single-sensor ceiling | most often named (sensor) |" in report


@pytest.mark.slow
def test_cross_dataset_on_any_data_set_with_diagnostics(tmp_path: Path, data_dir: Path) -> None:
    """A data set under a name the code never saw; wisdm_phone's mixed stairs merge found from its labels."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(data_dir / "dsads_torso.npz", data / "my_chest.npz")
    for name in ("uci", "wisdm_phone"):
        (data / f"{name}.npz").symlink_to((data_dir / f"{name}.npz").resolve())
    extra = 'methods = ["lanhar", "cnn"]\n'
    results, report, out = _run("cross-dataset", tmp_path, data, "uci:my_chest,wisdm_phone:my_chest", extra)
    runs = {(r["pair"], r["method"]): r for r in results["runs"]}
    assert list(runs) == [(p, m) for p in ("uci→my_chest", "wisdm→my_chest") for m in ("lanhar", "cnn")]
    for (pair, _), record in runs.items():
        _assert_scores(record)
        assert record["target"] == "my_chest"
        if pair == "wisdm→my_chest":  # my_chest's upstairs and downstairs merged into wisdm's "stairs"
            assert record["labels"] == ["walking", "stairs", "sitting"]
            assert record["config"]["merge_labels"] == {"upstairs": "stairs", "downstairs": "stairs"}
        else:
            assert record["labels"] == ["walking", "upstairs", "downstairs", "sitting"]
            assert record["config"]["merge_labels"] == {}
    for pair in ("uci→my_chest", "wisdm→my_chest"):
        lanhar = runs[(pair, "lanhar")]
        assert lanhar["n"] == runs[(pair, "cnn")]["n"] > 0  # the same held-out windows
        _assert_scores(lanhar, ("text_path_accuracy", "path_agreement"))
        labels, n = lanhar["labels"], lanhar["n"]
        for confusion in (
            lanhar["confusion"],
            lanhar["text_path"]["confusion"],
        ):  # rows truth, cols predicted
            assert np.asarray(confusion).shape == (len(labels), len(labels)) and np.sum(confusion) == n
        text_confusion = np.asarray(lanhar["text_path"]["confusion"])
        assert np.trace(text_confusion) / n == pytest.approx(lanhar["text_path_accuracy"])
        assert set(lanhar["text_path"]["per_class"]) == set(labels)
        assert len(lanhar["new_activities"]["labels"]) == 15
    diagnostics = results["summary"]["lanhar_diagnostics"]
    assert set(diagnostics["pairs"]) == {"uci→my_chest", "wisdm→my_chest"}
    for key in ("sensor_accuracy", "text_path_accuracy", "agreement"):
        value = diagnostics["mean"][key]
        assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0, (key, value)
    assert diagnostics["mean"]["agreement"] == pytest.approx(
        np.mean([runs[(p, "lanhar")]["path_agreement"] for p in diagnostics["pairs"]])
    )
    assert "| source \\ target | uci | my_chest | wisdm_phone |" in report  # axes: the data sets run
    assert "| my_chest | – | – | – |" in report and "uci→my_chest" in report
    assert (
        "**LanHAR diagnostics**" in report
        and "| pair | sensor-encoder acc. | text-path acc. | agreement |" in report
    )
    assert "| wisdm→my_chest | text path |" in report and "stairs recall" in report
    assert (out / "lanhar_matrix.png").exists()


@pytest.mark.slow
def test_new_activity_small(tmp_path: Path, data_dir: Path) -> None:
    shared = tmp_path / "shared-text-spaces"  # e.g. the cross-dataset experiment's, to reuse its stage 1
    results, report, _ = _run(
        "new-activity", tmp_path, data_dir, "uci:dsads_torso", argv_extra=("--text-space-cache", str(shared))
    )
    lanhar, nls = results["runs"]
    assert len(list(shared.glob("stage1-*/text_encoder"))) == 1 and lanhar["stage1_reused"] is None
    assert f"--text-space-cache {shared}" in report
    assert (lanhar["method"], nls["method"]) == ("lanhar", "nls-knowledge")
    for record in (lanhar, nls):
        new = record["new_activities"]
        assert len(new["labels"]) == 15 and "walking" not in new["labels"] and "jumping" in new["labels"]
        assert new["chance"] == pytest.approx(1 / 15) and new["windows"] > 0
        assert 0.0 <= new["accuracy_among_new"] <= new["top3_among_new"] <= 1.0
    assert 0.0 <= lanhar["new_activities"]["accuracy_full_bank"] <= 1.0
    assert "| uci→dsads-t | 15 |" in report
    # The known labels' diagnostics, among the new ones: both paths' confusions on the same windows.
    new = lanhar["new_activities"]
    sensor_confusion = np.asarray(new["sensor"]["confusion"])
    text_confusion = np.asarray(new["text_path"]["confusion"])
    for confusion in (sensor_confusion, text_confusion):
        assert confusion.shape == (15, 15) and confusion.sum() == new["windows"]
    assert np.trace(sensor_confusion) / new["windows"] == pytest.approx(new["accuracy_among_new"])
    assert np.trace(text_confusion) / new["windows"] == pytest.approx(new["text_path_accuracy_among_new"])
    assert 0.0 <= new["path_agreement"] <= 1.0
    assert "| new label | pairs | sensor encoder recall | text path recall |" in report
    assert "| jumping | 1 |" in report
    probe = results["single_sensor_ceiling"]["pairs"]["uci→dsads-t"]
    assert probe["labels"] == new["labels"] and probe["windows"] == new["windows"]
    assert "| text path recall | single-sensor ceiling |" in report


@pytest.mark.slow
def test_ablation_small(tmp_path: Path, data_dir: Path) -> None:
    names = [
        "full",
        "no_text_training",
        "simple_prompt",
        "device_frame",
        "no_analysis_token",
        "closed_target_pool",
        "source_then_target_fedavg",
        "walking_frame",
    ]
    variants = f"variants = {names}\n".replace("'", '"')
    results, report, _ = _run("ablation", tmp_path, data_dir, "uci:dsads_torso", variants)
    by_variant = {r["variant"]: r for r in results["runs"]}
    assert list(by_variant) == names
    for record in by_variant.values():
        _assert_scores(record, ("accuracy", "macro_f1", "category_accuracy", "text_path_accuracy"))
    assert by_variant["full"]["config"]["regeneration"] is True  # set by the variant, not the small budget
    assert by_variant["full"]["regeneration"]["fraction_regenerated"] >= 0.0
    assert by_variant["no_text_training"]["config"]["stage1_steps"] == 0
    simple = by_variant["simple_prompt"]
    assert simple["config"]["simple_prompt"] is True and simple["regeneration"] is None
    assert (
        simple["distinct_interpretations"]["source"]
        < by_variant["full"]["distinct_interpretations"]["source"]
    )
    assert "Δ acc. vs full" in report and "MPNet was not run" in report
    # The stage-2 switches reach stage 2 only: same text space (reused), other sensor encoder settings.
    assert by_variant["full"]["config"]["sensor_input_frame"] == "gravity"
    assert by_variant["device_frame"]["config"]["sensor_input_frame"] == "device"
    assert by_variant["full"]["config"]["sensor_analysis_token"] is True
    assert by_variant["no_analysis_token"]["config"]["sensor_analysis_token"] is False
    assert by_variant["no_analysis_token"]["stage1_reused"]
    assert by_variant["device_frame"]["stage1_reused"]
    assert by_variant["closed_target_pool"]["config"]["stage2_target_all_activities"] is False
    assert by_variant["full"]["config"]["stage2_target_all_activities"] is True  # the open pool
    assert by_variant["closed_target_pool"]["stage1_reused"]
    assert by_variant["full"]["config"]["stage2_schedule"] == "joint"
    fedavg = by_variant["source_then_target_fedavg"]
    assert fedavg["config"]["stage2_schedule"] == "source-then-target-fedavg"
    assert fedavg["config"]["stage2_target_rounds"] == 5 and fedavg["stage1_reused"]
    # The walking frame changes the texts (an inclination category and sentence), so stage 1 trains anew.
    walking = by_variant["walking_frame"]
    assert (
        walking["config"]["walking_frame"] is True and by_variant["full"]["config"]["walking_frame"] is False
    )
    assert not walking["stage1_reused"]
    assert (
        walking["distinct_interpretations"]["source"]
        > by_variant["full"]["distinct_interpretations"]["source"]
    )
    summary = results["summary"]["device_frame"]
    assert summary["worst_pair"] == "uci→dsads-t" and 0.0 <= summary["worst_pair_accuracy"] <= 1.0
    assert "worst pair acc." in report and "Largest loss of `full`" in report


@pytest.mark.slow
def test_baselines_small_with_the_three_class_space(tmp_path: Path, data_dir: Path) -> None:
    results, report, _ = _run("baselines", tmp_path, data_dir, "wisdm_phone:uci")
    runs = results["runs"]
    assert [r["method"] for r in runs] == ["transformer", "cnn", "nls-base", "nls-diverse", "nls-knowledge"]
    for record in runs:
        _assert_scores(record)
        assert record["labels"] == ["walking", "stairs", "sitting"]  # uci's up/down merged into stairs
        assert record["config"]["merge_labels"] == {"upstairs": "stairs", "downstairs": "stairs"}
    assert "random forest" in report and "wisdm→uci" in report


@pytest.mark.slow
def test_distribution_gap_small(tmp_path: Path, data_dir: Path) -> None:
    extra = "max_windows_per_activity = 40\ntsne_points_per_group = 15\n"
    results, report, out = _run(
        "distribution-gap", tmp_path, data_dir, "uci:dsads_torso", extra, max_windows_per_class=48
    )
    (record,) = results["runs"]
    assert set(record["relative_kl"]) == {"raw", "sensor", "text_pretrained", "text_lanhar"}
    for space, values in record["relative_kl"].items():
        assert set(values) == {"walking", "upstairs", "downstairs", "sitting"}, space
        assert all(math.isfinite(v) and v >= 0 for v in values.values()), space
    assert all(math.isfinite(v) for v in results["summary"].values())
    assert set(results["change_vs_raw"]) == {"sensor", "text_pretrained", "text_lanhar"}
    assert (out / "tsne_uci-dsads_torso.png").exists() and "Change of the average relative KL" in report


@pytest.mark.slow
def test_federated_small(tmp_path: Path, data_dir: Path) -> None:
    extra = 'num_clients = 2\nrounds = 1\nlocal_epochs = 1\npartitionings = ["by-user"]\n'
    results, report, _ = _run("federated", tmp_path, data_dir, "uci:dsads_torso", extra)
    settings = [r["setting"] for r in results["runs"]]
    assert settings == ["source only", "centralised", "federated, by-user"]
    for record in results["runs"]:
        _assert_scores(record)
    assert len({r["n"] for r in results["runs"]}) == 1  # the same held-out windows everywhere
    federated = results["runs"][-1]
    # Held-out users (the central split): one client trains, the other holds the held-out users.
    assert federated["failures"] == [] and federated["rounds"][0]["clients_trained"] == 1
    assert federated["evaluation"]["data_sets"]["dsads_torso"]["split"] == "held-out-users"
    assert 0.0 <= federated["text_path_accuracy"] <= 1.0
    assert federated["config"]["text-encoder-path"].endswith("centralised/text_encoder")  # stage 1 shared


@pytest.mark.slow
@pytest.mark.parametrize("partitioning", ["by-user", "iid", "dirichlet"])
def test_pooled_split_is_the_union_of_the_clients(data_dir: Path, partitioning: str) -> None:
    from common.federation.partition import client_spec, load_client_data
    from common.federation.run_config import FederationConfig
    from simulations.experiments.federated import pooled_client_windows

    config = FederationConfig(
        source="uci",
        clients_data="dsads_torso",
        device_types="native",
        data_dir=str(data_dir.resolve()),
        partitioning=partitioning,
        new_activities="",
    )
    train, held_out = pooled_client_windows(config)
    client_train, client_eval = [], []
    for partition in range(4):
        try:
            data = load_client_data(client_spec(partition, 4, config), config)
        except DataError:  # a Dirichlet draw may leave a client without windows
            continue
        client_train.append(data.train.X)
        client_eval.append(data.eval.X)

    def rows(X: np.ndarray) -> set[bytes]:
        return {window.tobytes() for window in X}

    assert rows(np.concatenate(client_eval)) == rows(held_out.X)
    assert rows(np.concatenate(client_train)) == rows(train.X)
