"""Tests of common/data/paper_archives: tiny files in each archive's own format (header rows, column order,
timestamp units, the iPhone sign, NaNs), read into windows; malformed files name file, line and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.data.errors import DataError
from common.data.loading import load_dataset
from common.data.paper_archives.hhar import HHAR_COLUMNS, read_hhar
from common.data.paper_archives.motionsense import read_motionsense
from common.data.paper_archives.pamap2 import PAMAP2_ACTIVITIES, read_pamap2
from common.data.paper_archives.shoaib import SHOAIB_BLOCK_COLUMNS, read_shoaib
from common.data.sources import ARCHIVE_DATA_SETS, ARCHIVE_URLS, read_archive, read_paper_archive
from common.data.windows import GRAVITY


def assert_windows_stay_in_one_recording(ws, marker: dict[str, float]) -> None:  # noqa: ANN001
    """Every recording's gyro x is a per-label constant (``marker``): a window mixing two recordings of
    different labels would not be constant, nor carry its own label's value."""
    gyro_x = ws.X[..., 3]
    assert np.ptp(gyro_x, axis=1).max() < 1e-3
    for label, value in zip(ws.labels(), gyro_x[:, 0], strict=True):
        assert value == pytest.approx(marker[label], abs=1e-3), label


def assert_still_units(ws) -> None:  # noqa: ANN001
    """Still devices in these files: |acc| is gravity in m/s^2, gyro in rad/s is small."""
    norm = np.linalg.norm(ws.X[..., :3], axis=-1)
    np.testing.assert_allclose(norm, GRAVITY, rtol=2e-3)
    assert np.abs(ws.X[..., 3:]).max() < 1.0


# --------------------------------------------------------------------------------------------------- HHAR
HHAR_MARKER = {"walk": 0.1, "sit": 0.2, "stairsup": 0.3}
EPOCH_NS = 1_424_696_633_908_000_000  # a real-looking Creation_Time: too large for a float's 53 bits


def hhar_rows(user: str, device: str, model: str, gt: str, start_s: float, seconds: float, rate: float,
              value: float, offset_ns: int = 0) -> list[list]:  # fmt: skip
    times = (
        EPOCH_NS
        + offset_ns
        + np.round((start_s + np.arange(int(seconds * rate)) / rate) * 1e9).astype(np.int64)
    )
    return [[int(t), 0.0, 0.0, value, user, model, device, gt] for t in times]


def write_hhar_file(path: Path, rows: list[list], header: tuple[str, ...] = HHAR_COLUMNS) -> None:
    lines = [",".join(header)]
    for index, (t, x, y, z, user, model, device, gt) in enumerate(rows):
        lines.append(f"{index},{t // 1_000_000 + 7},{t},{x},{y},{z},{user},{model},{device},{gt}")
    path.write_text("\n".join(lines) + "\n")


def write_hhar(root: Path) -> Path:
    """User a on a 200 Hz nexus4: walk 13 s, 20 s of null, sit 7 s; user b on a 150 Hz s3: stairsup 7 s, a 1 s
    pause, 7 s more. Acc: a flat phone (+9.81 on z); gyro x: the label's marker."""
    folder = root / "Activity recognition exp"
    folder.mkdir(parents=True)
    acc, gyro = [], []
    for gt, start, seconds, user, device, model, rate in [
        ("walk", 0, 13, "a", "nexus4_1", "nexus4", 200.0),
        ("null", 13, 20, "a", "nexus4_1", "nexus4", 200.0),
        ("sit", 33, 7, "a", "nexus4_1", "nexus4", 200.0),
        ("stairsup", 0, 7, "b", "s3_1", "s3", 150.0),
        ("stairsup", 8, 7, "b", "s3_1", "s3", 150.0),
    ]:
        acc += hhar_rows(user, device, model, gt, start, seconds, rate, GRAVITY)
        marker = [HHAR_MARKER.get(gt, 5.0), 0.0, 0.0]
        gyro += [[t, *marker, *rest] for t, _, _, _, *rest in hhar_rows(
            user, device, model, gt, start, seconds, rate, 0.0, offset_ns=2_500_000)]  # fmt: skip
    write_hhar_file(folder / "Phones_accelerometer.csv", acc[::-1])  # rows need not come in time order
    write_hhar_file(folder / "Phones_gyroscope.csv", gyro)
    return root


def test_hhar_windows_labels_users_and_units(tmp_path: Path) -> None:
    ws = read_hhar(write_hhar(tmp_path / "hhar"))
    assert ws.X.shape == (5, 120, 6) and ws.X.dtype == np.float32
    assert ws.label_names == ["bike", "sit", "stand", "walk", "stairsup", "stairsdown"]
    assert ws.labels() == ["sit", "walk", "walk", "stairsup", "stairsup"]  # by user, device, label
    assert ws.user.tolist() == [1, 1, 1, 2, 2]  # users a, b -> 1, 2
    np.testing.assert_allclose(ws.X[..., 2], GRAVITY, rtol=2e-3)
    assert_still_units(ws)
    assert_windows_stay_in_one_recording(ws, HHAR_MARKER)
    # the 1 s pause splits b's stairs into two recordings; a's walk is one recording, its sit another
    assert ws.segment[1] == ws.segment[2] and len(set(ws.segment.tolist())) == 4
    assert (ws.position, ws.device, ws.sampling_rate) == ("waist", "nexus4, s3", 20.0)


def test_hhar_via_load_dataset_has_canonical_labels(tmp_path: Path) -> None:
    write_hhar(tmp_path / "hhar")
    ws = load_dataset("hhar_phone", tmp_path)
    assert ws.name == "hhar_phone"
    assert ws.labels() == ["sitting", "walking", "walking", "upstairs", "upstairs"]
    with pytest.raises(DataError, match=r"no HHAR Watch_accelerometer.csv"):
        load_dataset("hhar_watch", tmp_path)


ROW = "4,1,1424696633908000000,"  # Index, Arrival_Time, Creation_Time of a malformed row


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (None, r"Phones_gyroscope.csv, line 1: header lacks column\(s\) \['gt'\]"),
        (ROW + "0.1,abc,0.0,a,nexus4,nexus4_1,walk", r"line 5: field 'y' = 'abc' is not a number"),
        (ROW + "0.1,0.0,a,nexus4,nexus4_1,walk", r"line 5: expected 10 comma-separated fields, got 9"),
        ("4,1,1.5e9,0.1,0.0,0.0,a,nexus4,nexus4_1,walk", r"line 5: field 'Creation_Time' = '1.5e9'"),
        (ROW + "0.1,0.0,0.0,a,nexus4,nexus4_1,run", r"line 5: field 'gt' = 'run'"),
        (ROW + "0.1,0.0,0.0,7,nexus4,nexus4_1,walk", r"line 5: field 'User' = '7'"),
    ],
)  # fmt: skip
def test_hhar_malformed_file_names_file_line_and_field(
    tmp_path: Path, line: str | None, message: str
) -> None:
    root = write_hhar(tmp_path / "hhar")
    path = root / "Activity recognition exp" / "Phones_gyroscope.csv"
    lines = path.read_text().splitlines()
    if line is None:
        lines[0] = ",".join(HHAR_COLUMNS[:-1])
    else:
        lines[4] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        read_hhar(root)


# -------------------------------------------------------------------------------------------- MotionSense
MOTIONSENSE_HEADER = (
    ",attitude.roll,attitude.pitch,attitude.yaw,gravity.x,gravity.y,gravity.z,"
    "rotationRate.x,rotationRate.y,rotationRate.z,userAcceleration.x,userAcceleration.y,userAcceleration.z"
)
MOTIONSENSE_MARKER = {"walking": 0.1, "sitting": 0.2}


def write_motionsense_file(
    path: Path, seconds: float, gravity: tuple[float, float, float], marker: float
) -> None:
    """Core Motion output at 50 Hz: gravity in g pointing DOWN in the device frame, no user acceleration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gx, gy, gz = gravity
    rows = [f"{i},0.1,0.2,0.3,{gx},{gy},{gz},{marker},0.0,0.0,0.0,0.0,0.0" for i in range(int(seconds * 50))]
    path.write_text(MOTIONSENSE_HEADER + "\n" + "\n".join(rows) + "\n")


def write_motionsense(root: Path) -> Path:
    data = root / "A_DeviceMotion_data"
    write_motionsense_file(
        data / "sit_5" / "sub_1.csv", 7, (0.0, 0.0, -1.0), 0.2
    )  # flat on its back, face up
    write_motionsense_file(data / "wlk_7" / "sub_1.csv", 13, (0.0, -1.0, 0.0), 0.1)  # upright in the pocket
    write_motionsense_file(data / "wlk_7" / "sub_2.csv", 7, (0.0, -1.0, 0.0), 0.1)
    (root / "__MACOSX").mkdir()  # the zip's resource-fork folder is ignored
    return root


def test_motionsense_converts_the_iphone_sign_and_units(tmp_path: Path) -> None:
    ws = read_motionsense(write_motionsense(tmp_path / "motionsense"))
    assert ws.X.shape == (4, 120, 6)
    assert ws.labels() == ["sitting", "walking", "walking", "walking"]
    assert ws.user.tolist() == [1, 1, 1, 2]
    assert ws.segment[1] == ws.segment[2] and len(set(ws.segment.tolist())) == 3
    # Core Motion's face-up gravity.z = -1 g reads +9.8 m/s^2 on z, as an Android phone lying face up does
    np.testing.assert_allclose(ws.X[0, :, 2], GRAVITY, rtol=1e-3)
    np.testing.assert_allclose(ws.X[1:, :, 1], GRAVITY, rtol=1e-3)  # upright: +g on y, the axis pointing up
    assert_still_units(ws)
    assert_windows_stay_in_one_recording(ws, MOTIONSENSE_MARKER)
    assert (ws.position, ws.device) == ("front trouser pocket", "iphone 6s")


def test_the_existing_readers_use_the_up_is_positive_convention(data_dir: Path) -> None:
    """The waist phone of UCI stands upright with x along the body: still, it reads about +9.8 on x."""
    ws = load_dataset("uci", data_dir).select_activities(["standing"])
    mean = ws.X[..., :3].mean(axis=(0, 1))
    assert mean[0] > 9.0 and abs(mean[1]) < 3 and abs(mean[2]) < 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("header", r"sub_1.csv, line 1: header lacks column\(s\) \['gravity.z'\]"),
        ("number", r"sub_1.csv, line 4: field 'rotationRate.x' = 'x' is not a number"),
        ("count", r"sub_1.csv, line 4: expected 13 comma-separated fields, got 12"),
    ],
)
def test_motionsense_malformed_file_names_file_line_and_field(
    tmp_path: Path, edit: str, message: str
) -> None:
    root = write_motionsense(tmp_path / "motionsense")
    path = root / "A_DeviceMotion_data" / "sit_5" / "sub_1.csv"
    lines = path.read_text().splitlines()
    if edit == "header":
        lines[0] = lines[0].replace("gravity.z", "gravity_z")
    elif edit == "number":
        lines[3] = "2,0.1,0.2,0.3,0.0,0.0,-1.0,x,0.0,0.0,0.0,0.0,0.0"
    else:
        lines[3] = "2,0.1,0.2,0.3,0.0,0.0,-1.0,0.0,0.0,0.0,0.0,0.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        read_motionsense(root)


# ------------------------------------------------------------------------------------------------- Shoaib
SHOAIB_MARKER = {"walking": 0.1, "upstairs": 0.3, "sitting": 0.4}
SHOAIB_BLOCKS = ("Left_pocket", "Right_pocket", "Wrist", "Upper_arm", "Belt")


def write_shoaib(root: Path) -> Path:
    """Participant 1: walking 7 s, "upsatirs" (sic) 7 s, sitting 8 s, a 2 s gap in the time stamps, sitting
    8 s. Every block holds the same phone upright (+9.81 on y), except the wrist's (+9.81 on x)."""
    root.mkdir(parents=True)
    header1 = ",".join(field for name in SHOAIB_BLOCKS for field in [name] + [""] * 13)
    header2 = ",".join(field for _ in SHOAIB_BLOCKS for field in [*SHOAIB_BLOCK_COLUMNS, ""])
    rows, time_ms = [], 1_381_238_950_000
    for label, seconds, gap_ms in [
        ("walking", 7, 0),
        ("upsatirs", 7, 0),
        ("sitting", 8, 0),
        ("sitting", 8, 2000),
    ]:
        time_ms += gap_ms
        marker = SHOAIB_MARKER["upstairs" if label == "upsatirs" else label]
        for _ in range(seconds * 50):
            time_ms += 20
            fields: list[object] = []
            for name in SHOAIB_BLOCKS:  # 14 columns: time_stamp, A, L, G, M, then the spare one
                acc = (GRAVITY, 0.0, 0.0) if name == "Wrist" else (0.0, GRAVITY, 0.0)
                fields += [time_ms, *acc, 0.0, 0.0, 0.0, marker, 0.0, 0.0, 20.0, -5.0, 30.0, ""]
            fields[-1] = label  # the last block's spare column is the activity label
            rows.append(",".join(str(field) for field in fields))
    (root / "Participant_1.csv").write_text("\n".join([header1, header2, *rows]) + "\n")
    return root


def test_shoaib_positions_labels_and_recordings(tmp_path: Path) -> None:
    root = write_shoaib(tmp_path / "shoaib")
    ws = read_shoaib(root, position="left pocket")
    assert ws.X.shape == (4, 120, 6)
    assert ws.label_names == ["walking", "standing", "jogging", "sitting", "biking", "upstairs", "downstairs"]
    assert ws.labels() == ["walking", "upstairs", "sitting", "sitting"]
    assert set(ws.user.tolist()) == {1}
    # the time stamp gap splits the 16 s of sitting into two recordings of 8 s (one window each)
    assert len(set(ws.segment.tolist())) == 4
    np.testing.assert_allclose(ws.X[..., 1], GRAVITY, rtol=1e-3)
    assert_still_units(ws)
    assert_windows_stay_in_one_recording(ws, SHOAIB_MARKER)
    wrist = read_shoaib(root, position="wrist")
    np.testing.assert_allclose(wrist.X[..., 0], GRAVITY, rtol=1e-3)
    assert (ws.position, wrist.position) == ("left trouser pocket", "right wrist")
    assert load_dataset("shoaib_wrist", tmp_path).position == "right wrist"
    with pytest.raises(DataError, match=r"position 'nose' unknown"):
        read_shoaib(root, position="nose")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("header", r"Participant_1.csv, line 2: column 2 of the 'left pocket' block is 'Bx', expected 'Ax'"),
        ("number", r"Participant_1.csv, line 6: field 'left pocket Gy' = 'n/a' is not a number"),
        ("count", r"Participant_1.csv, line 6: expected 70 comma-separated fields, got 69"),
        ("label", r"Participant_1.csv, line 6: field 'activity' \(last column\) = 'swimming'"),
    ],
)
def test_shoaib_malformed_file_names_file_line_and_field(tmp_path: Path, edit: str, message: str) -> None:
    root = write_shoaib(tmp_path / "shoaib")
    path = root / "Participant_1.csv"
    lines = path.read_text().splitlines()
    fields = lines[5].split(",")
    if edit == "header":
        lines[1] = lines[1].replace("Ax", "Bx", 1)
    elif edit == "number":
        fields[8] = "n/a"
    elif edit == "count":
        del fields[3]
    else:
        fields[-1] = "swimming"
    if edit != "header":
        lines[5] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        read_shoaib(root, position="left pocket")


# ------------------------------------------------------------------------------------------------- PAMAP2
PAMAP2_MARKER = {"lying": 0.1, "walking": 0.4, "rope jumping": 2.4}


def pamap2_row(time_s: float, activity: int, heart_rate: float) -> list[float]:
    """One 54-column row: hand acc +g on x, chest +g on z, ankle +g on y; gyro x = the activity's marker."""
    marker = PAMAP2_MARKER.get(PAMAP2_ACTIVITIES.get(activity, ""), 9.0)
    row = [time_s, activity, heart_rate]
    for acc in ((GRAVITY, 0, 0), (0, 0, GRAVITY), (0, GRAVITY, 0)):
        row += [31.5, *acc, *acc, marker, 0.0, 0.0, 20.0, -5.0, 30.0, np.nan, np.nan, np.nan, np.nan]
    return row


def write_pamap2(root: Path) -> Path:
    """subject101: transient 2 s, lying 14 s with a 1 s hole (NaN) in the chest gyro, transient 1 s, walking
    13 s with a 0.2 s hole in the chest acc, rope jumping 7 s. Heart rate NaN except every 11th row."""
    protocol = root / "PAMAP2_Dataset" / "Protocol"
    protocol.mkdir(parents=True)
    rows = []
    for activity, seconds in [(0, 2), (1, 14), (0, 1), (4, 13), (24, 7)]:
        for _ in range(seconds * 100):
            index = len(rows)
            rows.append(pamap2_row(5.64 + index * 0.01, activity, 104.0 if index % 11 == 0 else np.nan))
    rows = np.asarray(rows)
    lying_hole = slice(200 + 650, 200 + 750)  # 1 s, after 6.5 s of lying: two recordings of 6.5 s
    rows[lying_hole, 20 + 7 : 20 + 10] = np.nan
    walking_hole = slice(1700 + 600, 1700 + 620)  # 0.2 s: bridged
    rows[walking_hole, 20 + 1 : 20 + 4] = np.nan
    lines = [" ".join("NaN" if np.isnan(v) else f"{v:.6g}" for v in row) for row in rows]
    (protocol / "subject101.dat").write_text("\n".join(lines) + "\n")
    return root


def test_pamap2_drops_transients_and_splits_at_long_holes(tmp_path: Path) -> None:
    root = write_pamap2(tmp_path / "pamap2")
    ws = read_pamap2(root, position="chest")
    assert ws.X.shape == (5, 120, 6)
    # the 12 protocol activities; the optional ones (watching TV ...) only with include_optional
    assert len(ws.label_names) == 12 and "watching tv" not in ws.label_names
    assert len(read_pamap2(root, include_optional=True).label_names) == len(PAMAP2_ACTIVITIES) == 18
    assert ws.labels() == ["lying", "lying", "walking", "walking", "rope jumping"]
    assert ws.user.tolist() == [101] * 5
    assert ws.segment[0] != ws.segment[1]  # the 1 s gyro hole splits lying
    assert ws.segment[2] == ws.segment[3]  # the 0.2 s acc hole is bridged
    np.testing.assert_allclose(ws.X[..., 2], GRAVITY, rtol=1e-3)
    assert np.isfinite(ws.X).all()
    assert_windows_stay_in_one_recording(ws, PAMAP2_MARKER)
    hand = load_dataset("pamap2_hand", tmp_path)
    np.testing.assert_allclose(hand.X[..., 0], GRAVITY, rtol=1e-3)
    assert hand.labels()[-1] == "rope jumping" and hand.position == "dominant wrist"
    assert read_archive(root, name="pamap2_ankle").position == "dominant ankle"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("count", r"subject101.dat, line 3: expected 54 space-separated columns, got 53"),
        ("number", r"subject101.dat, line 3: field 'chest gyro y' = 'abc' is not a number"),
        ("activity", r"subject101.dat, line 3: field 'activityID' = '8' is not 0 or one of"),
        ("time", r"subject101.dat, line 3: field 'timestamp' = 'NaN' is missing"),
    ],
)
def test_pamap2_malformed_file_names_file_line_and_field(tmp_path: Path, edit: str, message: str) -> None:
    root = write_pamap2(tmp_path / "pamap2")
    path = root / "PAMAP2_Dataset" / "Protocol" / "subject101.dat"
    lines = path.read_text().splitlines()
    fields = lines[2].split()
    if edit == "count":
        del fields[-1]
    elif edit == "number":
        fields[20 + 8] = "abc"
    elif edit == "activity":
        fields[1] = "8"
    else:
        fields[0] = "NaN"
    lines[2] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        read_pamap2(root)


# ------------------------------------------------------------------------------------ registration, download
def test_archives_are_registered_with_their_download_links() -> None:
    paper_archives = {"hhar", "motionsense", "shoaib", "pamap2"}
    assert paper_archives <= set(ARCHIVE_URLS) and set(ARCHIVE_URLS) == set(ARCHIVE_DATA_SETS)
    assert all(ARCHIVE_URLS[name].startswith("https://") for name in paper_archives)
    assert "/344/" in ARCHIVE_URLS["hhar"] and "/231/" in ARCHIVE_URLS["pamap2"]
    assert "mmalekzadeh/motion-sense" in ARCHIVE_URLS["motionsense"]


def test_data_list_shows_the_data_set_names(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from simulations.cli import main

    main(["data", "list", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert ARCHIVE_URLS["pamap2"] in out and "pamap2_hand, pamap2_chest, pamap2_ankle" in out


def test_unknown_layout_is_none_for_the_paper_readers(tmp_path: Path) -> None:
    assert read_paper_archive(tmp_path) is None


# ------------------------------------------------------------------------------------ experiment configs
def reader_labels() -> dict[str, list[str]]:
    """Data set name -> the label names its reader produces (before canonicalisation)."""
    from common.data.archives import HAPT_ACTIVITIES
    from common.data.paper_archives.hhar import HHAR_ACTIVITIES
    from common.data.paper_archives.motionsense import MOTIONSENSE_ACTIVITIES
    from common.data.paper_archives.pamap2 import PAMAP2_OPTIONAL_IDS
    from common.data.paper_archives.shoaib import SHOAIB_ACTIVITIES

    protocol = [label for i, label in PAMAP2_ACTIVITIES.items() if i not in PAMAP2_OPTIONAL_IDS]
    labels = {"uci": list(HAPT_ACTIVITIES.values()), "motionsense": list(MOTIONSENSE_ACTIVITIES.values())}
    labels.update({name: list(HHAR_ACTIVITIES) for name in ARCHIVE_DATA_SETS["hhar"]})
    labels.update({name: list(SHOAIB_ACTIVITIES) for name in ARCHIVE_DATA_SETS["shoaib"]})
    labels.update({name: protocol for name in ARCHIVE_DATA_SETS["pamap2"]})
    return labels


@pytest.mark.parametrize(
    ("protocol", "config", "n_pairs"),
    [("cross_dataset", "paper-table2.toml", 12), ("new_activity", "paper-table2-new-activity.toml", 4)],
)
def test_paper_configs_parse_and_name_known_data_sets(
    tmp_path: Path, protocol: str, config: str, n_pairs: int
) -> None:
    import importlib

    from common.data.labels import COMMON_ACTIVITIES, default_vocabulary
    from simulations.experiments.new_activity import new_activities
    from simulations.experiments.settings import CONFIG_DIR, load_settings, pair_label_space, parse_pairs

    settings = load_settings(importlib.import_module(f"simulations.experiments.{protocol}").Settings,
                             CONFIG_DIR / config, "small")  # fmt: skip
    pairs = parse_pairs(settings.pairs)
    assert len(pairs) == n_pairs == len(set(pairs))
    labels = reader_labels()
    names = {name for pair in pairs for name in (pair.source, pair.target)}
    assert names <= set(labels), names - set(labels)  # every data set has a reader
    vocabulary = default_vocabulary()
    for name in names:  # every label is in the vocabulary; the label files stand in for the archives
        canonical = [vocabulary.canonical(label) for label in labels[name]]
        np.savez(tmp_path / f"{name}.npz", label_names=np.array(canonical))
    for pair in pairs:
        assert pair_label_space(pair, tmp_path).activities == COMMON_ACTIVITIES, pair
    if protocol == "cross_dataset":  # the paper's 12 pairs: every ordered pair of its four data sets
        assert {(p.source, p.target) for p in pairs} == {(s, t) for s in names for t in names if s != t}
    else:
        for pair in pairs:
            assert pair.target.startswith("pamap2_")
            new = new_activities(pair, tmp_path)
            assert {"rope jumping", "vacuum cleaning", "ironing", "nordic walking"} <= set(new)
            assert not set(new) & set(COMMON_ACTIVITIES)


def test_every_paper_activity_has_knowledge() -> None:
    from common.data.labels import default_vocabulary
    from common.language.knowledge import has_knowledge

    vocabulary = default_vocabulary()
    labels = {vocabulary.canonical(label) for names in reader_labels().values() for label in names}
    labels |= {vocabulary.canonical(label) for label in PAMAP2_ACTIVITIES.values()}  # the optional ones too
    assert not [label for label in sorted(labels) if not has_knowledge(label)]
