"""The evaluation suite (`fedlanhar experiment ...`): settings, ablation knobs, NLS-HAR sentences, the KL
measure, and every protocol end to end on real data at --budget small with a tiny settings file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from common.data import DataError, WindowSet
from common.features import analyze_windows
from common.interpreters import SIMPLE_CATEGORIES, RulesInterpreter
from common.prompts import SENSOR_VOCABULARY, SensorContext
from simulations.baselines import NLS_BASE_TEMPLATE, NLS_TEMPLATES, nls_sentences
from simulations.central import central_config, central_interpreter, rename_labels, text_train_config
from simulations.cli import main
from simulations.experiments.distribution_gap import relative_kl, symmetric_kl
from simulations.experiments.report import Report, jsonable
from simulations.experiments.settings import Pair, load_settings, parse_pairs

# Small enough for CI: stage 1 and 2 barely train, so only structure and finiteness are asserted.
TINY_CENTRAL = {
    "stage1_steps": 1,
    "stage2_epochs": 1,
    "max_windows_per_class": 16,
    "descriptions_per_label": 2,
}
SECTIONS = ("## Setup", "## Results", "## Figures", "## Notes", "## Configuration")


# ------------------------------------------------------------------------------------------ fast tests


def test_pairs_and_their_label_spaces() -> None:
    pairs = parse_pairs("all")
    assert len(pairs) == 12 and len(set(pairs)) == 12
    assert Pair("uci", "dsads_torso").activities == ("walking", "upstairs", "downstairs", "sitting")
    wisdm = parse_pairs("uci:wisdm_phone")[0]
    assert wisdm.activities == ("walking", "stairs", "sitting")
    assert wisdm.merge_labels == {"upstairs": "stairs", "downstairs": "stairs"}
    assert Pair("uci", "dsads_torso").merge_labels == {}
    assert parse_pairs(["uci:dsads_torso", "uci:dsads_torso"]) == [Pair("uci", "dsads_torso")]
    for bad in ("uci", "uci:uci", ":dsads_torso", ""):
        with pytest.raises(DataError, match="pair"):
            parse_pairs(bad)


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
    assert all(_categories(text) == set(SENSOR_VOCABULARY) for text in full)  # default unchanged
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
    assert jsonable({"v": np.float32(0.5), "n": float("nan"), "a": np.arange(2), "t": (1, 2)}) == {
        "v": 0.5,
        "n": None,
        "a": [0, 1],
        "t": [1, 2],
    }


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


@pytest.mark.slow
def test_ablation_small(tmp_path: Path, data_dir: Path) -> None:
    variants = 'variants = ["full", "no_text_training", "simple_prompt"]\n'
    results, report, _ = _run("ablation", tmp_path, data_dir, "uci:dsads_torso", variants)
    by_variant = {r["variant"]: r for r in results["runs"]}
    assert list(by_variant) == ["full", "no_text_training", "simple_prompt"]
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
    assert federated["failures"] == [] and federated["rounds"][0]["clients_trained"] == 2
    assert federated["config"]["text-encoder-path"].endswith("centralised/text_encoder")  # stage 1 shared


@pytest.mark.slow
@pytest.mark.parametrize("partitioning", ["by-user", "iid", "dirichlet"])
def test_pooled_split_is_the_union_of_the_clients(data_dir: Path, partitioning: str) -> None:
    from common.run_config import FederationConfig
    from simulations.experiments.federated import pooled_client_windows
    from simulations.partition import client_spec, load_client_data

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
