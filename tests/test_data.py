"""Tests of common/data/windows.py: the WindowSet container, npz loading, validation, splits, resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.data.errors import DataError
from common.data.labels import COMMON_ACTIVITIES, default_vocabulary
from common.data.loading import load_dataset, read_npz, save_windowset
from common.data.windows import (
    GRAVITY,
    WindowSet,
    cut_windows,
    resample_signal,
    split_by_segment,
    split_by_user,
    validate_windows,
)

REAL_DATA_SETS = ("uci", "wisdm_phone", "dsads_torso", "dsads_rightleg")


@pytest.fixture(scope="module")
def real(data_dir: Path) -> dict[str, WindowSet]:
    return {name: load_dataset(name, data_dir) for name in REAL_DATA_SETS}


def make_windows(
    n: int = 12, n_users: int = 4, labels: tuple[str, ...] = ("walking", "sitting")
) -> WindowSet:
    rng = np.random.default_rng(0)
    X = rng.normal(0, 0.3, (n, 120, 6)).astype(np.float32)
    X[..., 0] += GRAVITY
    return WindowSet(
        X=X,
        y=np.arange(n) % len(labels),
        label_names=list(labels),
        user=np.arange(n) % n_users,
        segment=np.arange(n) // 2,
        name="toy",
    )


def write_npz(path: Path, **overrides: object) -> Path:
    ws = make_windows()
    arrays = {
        "X": ws.X,
        "y": ws.y,
        "label_names": np.array(ws.label_names),
        "user": ws.user,
        "segment": ws.segment,
        "position": np.full(len(ws), "waist"),
        "device": np.full(len(ws), "phone"),
    }
    arrays.update(overrides)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


# ------------------------------------------------------------------------------------------- real data sets
@pytest.mark.parametrize("name", REAL_DATA_SETS)
def test_real_data_sets_load_with_canonical_labels(real: dict[str, WindowSet], name: str) -> None:
    ws = real[name]
    assert ws.X.dtype == np.float32 and ws.X.shape[1:] == (120, 6)
    assert len(ws) == len(ws.y) == len(ws.user) == len(ws.segment) > 1000
    assert ws.sampling_rate == 20.0 and ws.has_gyro
    assert ws.position != "unknown" and ws.device != "unknown"
    vocabulary = default_vocabulary()
    assert all(vocabulary.canonical(label) == label for label in ws.label_names)
    assert set(np.unique(ws.y)) == set(range(len(ws.label_names)))
    acc_norm = np.linalg.norm(ws.X[..., :3], axis=-1)
    assert 9.0 < float(np.median(acc_norm)) < 10.5  # m/s^2 including gravity


def test_real_label_names_and_positions(real: dict[str, WindowSet]) -> None:
    assert real["uci"].label_names == ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]
    assert len(real["wisdm_phone"].label_names) == 18 and "stairs" in real["wisdm_phone"].label_names
    assert len(real["dsads_torso"].label_names) == 19 and "lying on back" in real["dsads_torso"].label_names
    assert real["uci"].position == "waist"
    assert real["dsads_torso"].position == "torso" and real["dsads_rightleg"].position == "right leg"


@pytest.mark.parametrize("name", REAL_DATA_SETS)
def test_split_by_user_is_disjoint_and_keeps_every_class(real: dict[str, WindowSet], name: str) -> None:
    ws = real[name]
    train, evaluation = split_by_user(ws, eval_fraction=0.2, seed=0)
    assert not set(train.user.tolist()) & set(evaluation.user.tolist())
    assert len(train) + len(evaluation) == len(ws)
    assert set(train.y.tolist()) == set(range(len(ws.label_names)))
    n_users = len(np.unique(ws.user))
    assert len(np.unique(evaluation.user)) == max(1, round(0.2 * n_users))


@pytest.mark.parametrize("name", ["uci", "dsads_torso"])
def test_common_activities_give_four_classes(real: dict[str, WindowSet], name: str) -> None:
    selected = real[name].select_activities(COMMON_ACTIVITIES)
    assert selected.label_names == list(COMMON_ACTIVITIES)
    assert np.bincount(selected.y, minlength=5)[:4].min() > 100
    assert selected.y.max() == 3
    assert set(selected.labels()) == set(COMMON_ACTIVITIES)
    # the kept windows are exactly those labelled with the four names in the source
    source = real[name]
    assert len(selected) == sum(label in COMMON_ACTIVITIES for label in source.labels())


def test_split_by_segment_on_real_data_is_disjoint(real: dict[str, WindowSet]) -> None:
    ws = real["dsads_rightleg"]
    train, evaluation = split_by_segment(ws, eval_fraction=0.25, seed=3)
    assert not set(train.segment.tolist()) & set(evaluation.segment.tolist())
    assert set(train.y.tolist()) == set(evaluation.y.tolist()) == set(range(19))
    assert 0.15 < len(evaluation) / len(ws) < 0.35


# ---------------------------------------------------------------------------------------------- WindowSet
def test_subset_select_and_labels() -> None:
    ws = make_windows(labels=("walking", "sitting", "upstairs"))
    ws.y[0] = -1
    assert ws.labels()[0] == "unlabeled" and ws.labels()[1] == "sitting"
    part = ws.subset(np.array([1, 2]))
    assert len(part) == 2 and part.label_names == ws.label_names
    mask_part = ws.subset(ws.user == 0)
    assert set(mask_part.user.tolist()) == {0}
    selected = ws.select_activities(["walking_upstairs", "walking"])  # alias is canonicalised
    assert selected.label_names == ["upstairs", "walking"]
    assert selected.labels() == [
        ws.labels()[i] for i in range(len(ws)) if ws.labels()[i] in ("upstairs", "walking")
    ]
    with pytest.raises(DataError, match="label_names"):
        ws.select_activities(["cycling"])
    assert ws.class_counts() == {"walking": 3, "sitting": 4, "upstairs": 4}


def test_windowset_rejects_bad_fields() -> None:
    ws = make_windows()
    with pytest.raises(DataError, match=r"WindowSet 'bad': field 'y' has shape \[3\], expected \[12\]"):
        WindowSet(ws.X, ws.y[:3], ws.label_names, ws.user, ws.segment, name="bad")
    with pytest.raises(DataError, match="field 'X' must be a float"):
        WindowSet(ws.X.astype(np.int32), ws.y, ws.label_names, ws.user, ws.segment, name="bad")
    with pytest.raises(DataError, match="field 'user' must be an integer"):
        WindowSet(ws.X, ws.y, ws.label_names, ws.user.astype(float), ws.segment, name="bad")
    with pytest.raises(DataError, match="field 'y' holds values"):
        WindowSet(ws.X, ws.y + 5, ws.label_names, ws.user, ws.segment, name="bad")
    with pytest.raises(DataError, match="field 'label_names' has duplicates"):
        WindowSet(ws.X, ws.y, ["walking", "walking"], ws.user, ws.segment, name="bad")
    with pytest.raises(DataError, match=r"field 'X' must have shape \[N, T, 6\]"):
        WindowSet(ws.X[..., :3], ws.y, ws.label_names, ws.user, ws.segment, name="bad")


def test_windowset_converts_compatible_dtypes() -> None:
    ws = make_windows()
    converted = WindowSet(
        ws.X.astype(np.float64), ws.y.astype(np.int32), ("walking", "sitting"), ws.user, ws.segment, name="ok"
    )
    assert converted.X.dtype == np.float32 and converted.y.dtype == np.int64
    assert converted.label_names == ["walking", "sitting"]


# --------------------------------------------------------------------------------------- validate_windows
def good_windows() -> np.ndarray:
    return make_windows().X.copy()


def test_validate_accepts_good_windows() -> None:
    validate_windows(good_windows(), "toy")  # no exception is the assertion
    validate_windows(good_windows()[:, :60], "toy", expected_length=None)


def test_validate_reports_nan_count_and_position() -> None:
    X = good_windows()
    X[3, 7, 2] = np.nan
    X[5, 0, 0] = np.nan
    with pytest.raises(
        DataError, match=r"toy.npz: field 'X' has 2 NaN and 0 inf values in 2 window\(s\)"
    ) as info:
        validate_windows(X, "toy.npz")
    assert "window 3, sample 7, channel 2" in str(info.value)


def test_validate_reports_inf() -> None:
    X = good_windows()
    X[1, 2, 4] = np.inf
    with pytest.raises(DataError, match=r"src: field 'W' has 0 NaN and 1 inf"):
        validate_windows(X, "src", field="W")


@pytest.mark.parametrize(
    ("shape", "message"),
    [((120, 6), "rank 3"), ((4, 120, 3), "6 channels"), ((4, 100, 6), "100 samples"), ((0, 120, 6), "empty")],
)
def test_validate_rejects_bad_shapes(shape: tuple[int, ...], message: str) -> None:
    X = np.full(shape, GRAVITY, dtype=np.float32)
    with pytest.raises(DataError, match=f"file.npz: field 'X'.*{message}"):
        validate_windows(X, "file.npz")


def test_validate_detects_acc_in_g() -> None:
    X = good_windows()
    X[..., :3] /= GRAVITY
    with pytest.raises(DataError, match=r"s.npz: field 'X'.*looks like g, multiply by 9.80665"):
        validate_windows(X, "s.npz")


def test_validate_detects_missing_gravity_and_deg_per_s() -> None:
    X = good_windows()
    X[..., 0] -= GRAVITY
    with pytest.raises(DataError, match="must include gravity"):
        validate_windows(X, "s")
    X = good_windows()
    X[..., 3:] = 60.0
    with pytest.raises(DataError, match=r"gyro looks like deg/s"):
        validate_windows(X, "s")


# -------------------------------------------------------------------------------------------- npz files
def test_save_and_read_round_trip(tmp_path: Path) -> None:
    ws = make_windows()
    ws.has_gyro = False
    ws.X[..., 3:] = 0.0
    ws.position, ws.device = "thigh", "band"
    path = save_windowset(ws, tmp_path / "round")
    assert path.name == "round.npz"
    loaded = load_dataset("round", tmp_path)
    np.testing.assert_array_equal(loaded.X, ws.X)
    np.testing.assert_array_equal(loaded.y, ws.y)
    assert loaded.label_names == ws.label_names
    assert (loaded.position, loaded.device, loaded.has_gyro, loaded.name) == ("thigh", "band", False, "round")


def test_npz_per_window_position_becomes_most_common(tmp_path: Path) -> None:
    position = np.array(["waist"] * 10 + ["hand"] * 2)
    loaded = read_npz(write_npz(tmp_path / "p.npz", position=position))
    assert loaded.position == "waist" and loaded.device == "phone"


def test_npz_aliases_are_merged(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "a.npz", label_names=np.array(["laying", "lying"]))
    loaded = read_npz(path)
    assert loaded.label_names == ["lying"]
    assert set(loaded.y.tolist()) == {0}


def test_npz_missing_field_names_file_and_field(tmp_path: Path) -> None:
    write_npz(tmp_path / "missing.npz", segment=None)
    with pytest.raises(DataError, match=r"missing.npz: missing field\(s\) \['segment'\]"):
        load_dataset("missing", tmp_path)


def test_npz_unknown_label_names_file_and_field(tmp_path: Path) -> None:
    write_npz(tmp_path / "odd.npz", label_names=np.array(["walking", "moonwalking"]))
    with pytest.raises(
        DataError, match=r"odd.npz: field 'label_names': unknown activity label 'moonwalking'"
    ):
        load_dataset("odd", tmp_path)


def test_npz_nan_names_file(tmp_path: Path) -> None:
    X = good_windows()
    X[0, 0, 0] = np.nan
    write_npz(tmp_path / "nan.npz", X=X)
    with pytest.raises(DataError, match=r"nan.npz: field 'X' has 1 NaN"):
        load_dataset("nan", tmp_path)


def test_npz_wrong_length_field(tmp_path: Path) -> None:
    write_npz(tmp_path / "short.npz", user=np.arange(3))
    with pytest.raises(DataError, match=r"short.npz: field 'user' must be integers of shape \[12\]"):
        load_dataset("short", tmp_path)


def test_missing_data_set_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data set 'nothing': neither .*nothing.npz"):
        load_dataset("nothing", tmp_path)


# ------------------------------------------------------------------------------------------------- splits
def test_split_by_user_is_deterministic_and_disjoint() -> None:
    ws = make_windows(n=40, n_users=10)
    first = split_by_user(ws, 0.3, seed=1)
    again = split_by_user(ws, 0.3, seed=1)
    np.testing.assert_array_equal(first[1].user, again[1].user)
    assert len(np.unique(first[1].user)) == 3
    assert not set(first[0].user.tolist()) & set(first[1].user.tolist())
    others = {tuple(np.unique(split_by_user(ws, 0.3, seed=s)[1].user)) for s in range(6)}
    assert len(others) > 1  # the seed matters


def test_split_by_user_keeps_a_rare_class_on_the_train_side() -> None:
    ws = make_windows(n=40, n_users=10)
    ws.y[:] = 0
    ws.y[ws.user == 7] = 1  # only user 7 does "sitting"
    for seed in range(5):
        train, _ = split_by_user(ws, 0.5, seed=seed)
        assert 7 in train.user and 1 in train.y


def test_split_by_segment_is_stratified() -> None:
    ws = make_windows(n=80, n_users=4)
    ws.segment = np.arange(80) // 4  # 20 segments of 4 windows, each of one class
    ws.y = (ws.segment % 2).astype(np.int64)
    train, evaluation = split_by_segment(ws, 0.2, seed=0)
    assert not set(train.segment.tolist()) & set(evaluation.segment.tolist())
    assert np.bincount(evaluation.y).tolist() == [8, 8]  # 2 of the 10 segments of each class, 4 windows each


def test_split_rejects_bad_arguments() -> None:
    ws = make_windows()
    with pytest.raises(DataError, match="eval_fraction"):
        split_by_user(ws, 1.0, seed=0)
    single = ws.subset(ws.user == 0)
    with pytest.raises(DataError, match="field 'user' has 1 distinct"):
        split_by_user(single, 0.2, seed=0)


# ------------------------------------------------------------------------------------------- resampling
def test_resample_keeps_a_slow_sinusoid_and_removes_a_fast_one() -> None:
    t50 = np.arange(1000) / 50.0
    slow = 9.8 + np.sin(2 * np.pi * 1.8 * t50)
    fast = np.sin(2 * np.pi * 15.0 * t50)  # above the 10 Hz Nyquist frequency of 20 Hz
    out = resample_signal(np.stack([slow, fast], axis=1), 50.0, 20.0)
    t20 = np.arange(400) / 20.0
    assert out.shape == (400, 2)
    np.testing.assert_allclose(out[10:-10, 0], 9.8 + np.sin(2 * np.pi * 1.8 * t20[10:-10]), atol=0.01)
    assert np.abs(out[10:-10, 1]).max() < 0.05  # filtered, not aliased to 5 Hz
    assert abs(out[0, 0] - 9.8) < 0.2  # no edge dip towards zero


def test_cut_windows_drops_the_tail() -> None:
    stream = np.arange(250 * 6, dtype=float).reshape(250, 6)
    windows = cut_windows(stream)
    assert windows.shape == (2, 120, 6)
    np.testing.assert_array_equal(windows[1, 0], stream[120])


def test_numpy_fallback_resampler_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "scipy.signal", None)  # makes "from scipy.signal import ..." fail
    t50 = np.arange(1000) / 50.0
    out = resample_signal(np.stack([9.8 + np.sin(2 * np.pi * 1.8 * t50)] * 2, axis=1), 50.0, 20.0)
    t20 = np.arange(400) / 20.0
    assert out.shape == (400, 2)
    np.testing.assert_allclose(out[5:-5, 0], 9.8 + np.sin(2 * np.pi * 1.8 * t20[5:-5]), atol=0.05)
