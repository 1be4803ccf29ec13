"""Tests of common/data/archives.py on tiny files written in the exact formats of the original archives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.data.archives import DSADS_ACTIVITIES, WISDM_ACTIVITIES, read_dsads, read_uci_hapt, read_wisdm
from common.data.errors import DataError
from common.data.loading import load_dataset
from common.data.sources import ARCHIVE_URLS, download_archive, read_archive
from common.data.windows import GRAVITY


# ------------------------------------------------------------------------------------------------- UCI HAPT
def write_hapt(root: Path, n_rows: int = 2000, gyro_hz: float = 1.0) -> Path:
    """RawData with one experiment (user 1): x acc 1 g plus a slow wobble, gyro a 1 Hz sinusoid."""
    raw = root / "RawData"
    raw.mkdir(parents=True)
    t = np.arange(n_rows) / 50.0
    acc = np.stack(
        [1.0 + 0.05 * np.sin(2 * np.pi * 0.5 * t), np.zeros_like(t), 0.1 * np.ones_like(t)], axis=1
    )
    gyro = np.stack([0.3 * np.sin(2 * np.pi * gyro_hz * t), np.zeros_like(t), np.zeros_like(t)], axis=1)
    np.savetxt(raw / "acc_exp01_user01.txt", acc, fmt="%.8e")
    np.savetxt(raw / "gyro_exp01_user01.txt", gyro, fmt="%.8e")
    # walking 14 s -> 280 samples at 20 Hz -> 2 windows; a transition (dropped); sitting 18 s -> 3 windows
    (raw / "labels.txt").write_text("1 1 1 1 700\n1 1 7 701 800\n1 1 4 801 1700\n")
    return root


def test_hapt_windows_labels_and_units(tmp_path: Path) -> None:
    ws = read_uci_hapt(write_hapt(tmp_path / "uci"))
    assert ws.X.shape == (5, 120, 6) and ws.X.dtype == np.float32
    assert ws.label_names == ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]
    assert ws.labels() == ["walking"] * 2 + ["sitting"] * 3
    assert set(ws.user.tolist()) == {1}
    assert len(set(ws.segment[:2].tolist())) == 1 and ws.segment[0] != ws.segment[2]
    assert abs(float(ws.X[..., 0].mean()) - GRAVITY) < 0.05  # g -> m/s^2
    assert abs(float(ws.X[..., 2].mean()) - 0.1 * GRAVITY) < 0.01
    # the 1 Hz gyro sinusoid survives the 50 -> 20 Hz anti-alias filter with its amplitude
    assert 0.28 < float(np.abs(ws.X[..., 3]).max()) < 0.32
    assert (ws.position, ws.sampling_rate) == ("waist", 20.0)


def test_hapt_window_starts_at_the_labelled_sample(tmp_path: Path) -> None:
    root = write_hapt(tmp_path / "uci")
    (root / "RawData" / "labels.txt").write_text("1 1 2 501 900\n")  # 8 s of upstairs from t = 10 s
    ws = read_uci_hapt(root)
    t = 10.0 + np.arange(120) / 20.0
    np.testing.assert_allclose(ws.X[0, :, 3], 0.3 * np.sin(2 * np.pi * t), atol=0.02)
    assert ws.labels() == ["upstairs"]


def test_load_dataset_dispatches_to_the_hapt_archive(tmp_path: Path) -> None:
    write_hapt(tmp_path / "uci")
    ws = load_dataset("uci", tmp_path)
    assert len(ws) == 5 and ws.name == "uci"


def test_hapt_malformed_line_names_file_line_and_field(tmp_path: Path) -> None:
    root = write_hapt(tmp_path / "uci")
    path = root / "RawData" / "acc_exp01_user01.txt"
    lines = path.read_text().splitlines()
    lines[4] = "1.0 0.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"acc_exp01_user01.txt, line 5: expected 3 acc x/y/z \(g\) columns, got 2"
    ):
        read_uci_hapt(root)
    lines[4] = "1.0 zero 0.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"acc_exp01_user01.txt, line 5: acc x/y/z \(g\) value is not a number"
    ):
        read_uci_hapt(root)


def test_hapt_bad_label_rows(tmp_path: Path) -> None:
    root = write_hapt(tmp_path / "uci")
    labels = root / "RawData" / "labels.txt"
    labels.write_text("1 1 1 1 700\n1 1 13 701 800\n")
    with pytest.raises(DataError, match=r"labels.txt, line 2: field 'activity' = 13"):
        read_uci_hapt(root)
    labels.write_text("1 1 1 1 99999\n")
    with pytest.raises(
        DataError, match=r"labels.txt, line 1: field 'end' = 99999 is beyond the 2000 samples"
    ):
        read_uci_hapt(root)
    labels.write_text("1 2 1 1 700\n")
    with pytest.raises(DataError, match=r"gyro_exp01_user02.txt is missing|acc_exp01_user02.txt is missing"):
        read_uci_hapt(root)


# ----------------------------------------------------------------------------------------------- WISDM 2019
def wisdm_lines(subject: int, code: str, start_ns: int, seconds: float, value: float) -> list[str]:
    n = int(seconds * 20)
    times = start_ns + np.arange(n) * 50_000_000
    return [f"{subject},{code},{t},{value:.6f},{value / 2:.6f},-0.5;" for t in times]


def write_wisdm(root: Path) -> Path:
    phone = root / "wisdm-dataset" / "raw" / "phone"
    (phone / "accel").mkdir(parents=True)
    (phone / "gyro").mkdir(parents=True)
    acc = wisdm_lines(1600, "A", 10**12, 13, 9.8) + wisdm_lines(1600, "D", 2 * 10**12, 7, 9.7)
    gyro = wisdm_lines(1600, "A", 10**12 + 10_000_000, 13, 0.2) + wisdm_lines(1600, "D", 2 * 10**12, 7, 0.1)
    (phone / "accel" / "data_1600_accel_phone.txt").write_text("\n".join(acc) + "\n")
    (phone / "gyro" / "data_1600_gyro_phone.txt").write_text("\n".join(gyro) + "\n")
    # subject 1601 has no gyro file: skipped with a warning
    (phone / "accel" / "data_1601_accel_phone.txt").write_text("\n".join(wisdm_lines(1601, "B", 0, 7, 9.0)))
    return root


def test_wisdm_windows_labels_and_units(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"skipped subjects without a gyro file: \[1601\]"):
        ws = read_wisdm(write_wisdm(tmp_path / "wisdm"))
    assert ws.label_names == list(WISDM_ACTIVITIES.values()) and len(ws.label_names) == 18
    assert ws.labels() == ["walking", "walking", "sitting"]
    assert set(ws.user.tolist()) == {1600}
    assert ws.segment[0] == ws.segment[1] != ws.segment[2]
    np.testing.assert_allclose(ws.X[:2, :, 0], 9.8, atol=1e-4)  # m/s^2 kept as is
    np.testing.assert_allclose(ws.X[:2, :, 3], 0.2, atol=1e-4)
    np.testing.assert_allclose(ws.X[2, :, 1], 9.7 / 2, atol=1e-4)
    assert ws.position == "pocket"


def test_wisdm_gap_splits_a_recording(tmp_path: Path) -> None:
    root = write_wisdm(tmp_path / "wisdm")
    phone = root / "wisdm-dataset" / "raw" / "phone"
    acc = wisdm_lines(1600, "A", 0, 7, 9.8) + wisdm_lines(1600, "A", 8 * 10**9, 7, 9.8)  # 1 s pause
    gyro = wisdm_lines(1600, "A", 0, 7, 0.2) + wisdm_lines(1600, "A", 8 * 10**9, 7, 0.2)
    (phone / "accel" / "data_1600_accel_phone.txt").write_text("\n".join(acc))
    (phone / "gyro" / "data_1600_gyro_phone.txt").write_text("\n".join(gyro))
    with pytest.warns(UserWarning):
        ws = read_wisdm(root)
    assert len(ws) == 2 and ws.segment[0] != ws.segment[1]  # no window spans the pause


@pytest.mark.parametrize(
    ("bad_line", "field"),
    [
        ("1600,A,notanumber,1.0,2.0,3.0;", "timestamp_ns"),
        ("1600,N,100,1.0,2.0,3.0;", "activity_code"),
        ("1600,A,100,1.0,2.0;", "expected 6 fields"),
        ("1600,A,100,1.0,abc,3.0;", "x/y/z"),
        ("1599,A,100,1.0,2.0,3.0;", "subject"),
    ],
)
def test_wisdm_malformed_line_names_file_line_and_field(tmp_path: Path, bad_line: str, field: str) -> None:
    root = write_wisdm(tmp_path / "wisdm")
    path = root / "wisdm-dataset" / "raw" / "phone" / "gyro" / "data_1600_gyro_phone.txt"
    lines = path.read_text().splitlines()
    lines[2] = bad_line
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=rf"data_1600_gyro_phone.txt, line 3: .*{field}"):
        read_wisdm(root)


# ---------------------------------------------------------------------------------- Daily and Sports (DSADS)
def write_dsads(root: Path, files: dict[tuple[int, int], int]) -> Path:
    """files: (activity 1..19, subject) -> count of 5-s files. Torso reads +g on x, the right leg -g."""
    rows = np.zeros((125, 45))
    rows[:, 0] = GRAVITY  # torso x acc
    rows[:, 3] = 0.5  # torso x gyro
    rows[:, 27] = -GRAVITY  # right leg x acc
    rows[:, 31] = -0.25  # right leg y gyro
    rows[:, 6:9] = 0.3  # magnetometer columns, ignored
    for (activity, subject), count in files.items():
        folder = root / "data" / f"a{activity:02d}" / f"p{subject}"
        folder.mkdir(parents=True)
        for number in range(1, count + 1):
            np.savetxt(folder / f"s{number:02d}.txt", rows, fmt="%.5f", delimiter=",")
    return root


def test_dsads_windows_positions_and_labels(tmp_path: Path) -> None:
    root = write_dsads(tmp_path / "dsads", {(1, 1): 5, (9, 2): 3})  # 25 s -> 4 windows; 15 s -> 2 windows
    torso = read_dsads(root, position="torso")
    assert torso.X.shape == (6, 120, 6)
    assert torso.label_names == list(DSADS_ACTIVITIES)
    assert torso.labels() == ["sitting"] * 4 + ["walking"] * 2
    assert torso.user.tolist() == [1] * 4 + [2] * 2
    assert len(set(torso.segment.tolist())) == 2
    # a constant passes the polyphase filter with a ripple below 0.1 %
    np.testing.assert_allclose(torso.X[..., 0], GRAVITY, rtol=1e-3)
    np.testing.assert_allclose(torso.X[..., 3], 0.5, rtol=1e-3)
    leg = read_dsads(root, position="right leg")
    np.testing.assert_allclose(leg.X[..., 0], -GRAVITY, rtol=1e-3)
    np.testing.assert_allclose(leg.X[..., 4], -0.25, rtol=1e-3)
    assert (torso.position, leg.position) == ("torso", "right leg")


def test_dsads_missing_file_number_starts_a_new_segment(tmp_path: Path) -> None:
    root = write_dsads(tmp_path / "dsads", {(1, 1): 6})
    (root / "data" / "a01" / "p1" / "s03.txt").unlink()  # s01-s02 (10 s, 1 window) and s04-s06 (15 s, 2)
    ws = read_dsads(root)
    assert len(ws) == 3 and len(set(ws.segment.tolist())) == 2


def test_load_dataset_picks_the_dsads_unit_from_the_name(tmp_path: Path) -> None:
    write_dsads(tmp_path / "dsads", {(5, 1): 5})
    leg = load_dataset("dsads_rightleg", tmp_path)
    torso = load_dataset("dsads_torso", tmp_path)
    assert leg.position == "right leg" and float(leg.X[..., 0].mean()) < 0
    assert torso.position == "torso" and float(torso.X[..., 0].mean()) > 0
    assert leg.labels()[0] == "upstairs"


def test_dsads_malformed_content_names_file_and_line(tmp_path: Path) -> None:
    root = write_dsads(tmp_path / "dsads", {(1, 1): 2})
    path = root / "data" / "a01" / "p1" / "s02.txt"
    good_lines = path.read_text().splitlines()
    lines = list(good_lines)
    lines[9] = ",".join(lines[9].split(",")[:44])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"s02.txt, line 10: expected 45 comma-separated columns .* got 44"):
        read_dsads(root)
    path.write_text("\n".join(good_lines[:100]) + "\n")
    with pytest.raises(DataError, match=r"s02.txt: expected 125 rows \(5 s at 25 Hz\), got 100"):
        read_dsads(root)
    lines = list(good_lines)
    lines[0] = "x" + lines[0][1:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"s02.txt, line 1: acc/gyro column is not a number"):
        read_dsads(root)


def test_dsads_position_names(tmp_path: Path) -> None:
    root = write_dsads(tmp_path / "dsads", {(1, 1): 2})
    assert read_dsads(root, position="RL").position == "right leg"
    assert read_dsads(root, position="chest").position == "torso"
    assert read_dsads(root, position="left_leg").position == "left leg"
    with pytest.raises(DataError, match=r"position 'nose' unknown, expected one of \['torso'"):
        read_dsads(root, position="nose")


# -------------------------------------------------------------------------------------- detection, download
def test_unknown_directory_layout(tmp_path: Path) -> None:
    (tmp_path / "mystery").mkdir()
    with pytest.raises(DataError, match="mystery: not a known archive layout"):
        read_archive(tmp_path / "mystery")


def test_archive_urls_are_the_official_uci_downloads() -> None:
    assert {"uci", "wisdm", "dsads"} <= set(ARCHIVE_URLS)  # the others: tests/test_paper_archives.py
    for name in ("uci", "wisdm", "dsads"):
        url = ARCHIVE_URLS[name]
        assert url.startswith("https://archive.ics.uci.edu/static/public/") and url.endswith(".zip"), name
    assert (
        "/341/" in ARCHIVE_URLS["uci"]
        and "/507/" in ARCHIVE_URLS["wisdm"]
        and "/256/" in ARCHIVE_URLS["dsads"]
    )


def test_download_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown data set 'mystery'"):
        download_archive("mystery", tmp_path)
