"""Every public archive the loaders know: download links, the data sets each provides, and which reader
reads a folder.

`read_archive(directory, name)` recognises the archive by its files and hands it to its reader:
common/data/archives.py (UCI-HAPT, WISDM 2019, Daily and Sports) or common/data/paper_archives/ (the LanHAR
paper's HHAR, MotionSense, Shoaib and PAMAP2). `download_archive` fetches and extracts an official archive.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
import zipfile
from pathlib import Path

from common.data.archives import (
    find_dsads_root,
    find_hapt_root,
    find_wisdm_root,
    read_dsads,
    read_uci_hapt,
    read_wisdm,
)
from common.data.errors import DataError
from common.data.paper_archives import hhar, motionsense, pamap2, shoaib
from common.data.windows import WindowSet

# Official download links: the UCI repository's (all CC BY 4.0), the MotionSense authors', Twente's (Shoaib).
ARCHIVE_URLS = {
    "uci": "https://archive.ics.uci.edu/static/public/341/"
    "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip",
    "wisdm": "https://archive.ics.uci.edu/static/public/507/"
    "wisdm+smartphone+and+smartwatch+activity+and+biometrics+dataset.zip",
    "dsads": "https://archive.ics.uci.edu/static/public/256/daily+and+sports+activities.zip",
    "hhar": "https://archive.ics.uci.edu/static/public/344/heterogeneity+activity+recognition.zip",
    "motionsense": "https://github.com/mmalekzadeh/motion-sense/raw/master/data/A_DeviceMotion_data.zip",
    "shoaib": "https://www.utwente.nl/en/eemcs/ps/dataset-folder/sensors-activity-recognition-dataset-shoaib.rar",
    "pamap2": "https://archive.ics.uci.edu/static/public/231/pamap2+physical+activity+monitoring.zip",
}

# Archive -> the data set names it provides (load_dataset finds an archive's folder by the name's prefix).
ARCHIVE_DATA_SETS = {
    "uci": ("uci",),
    "wisdm": ("wisdm_phone", "wisdm_watch"),
    "dsads": ("dsads_torso", "dsads_rightarm", "dsads_leftarm", "dsads_rightleg", "dsads_leftleg"),
    "hhar": ("hhar_phone", "hhar_watch"),
    "motionsense": ("motionsense",),
    "shoaib": ("shoaib_leftpocket", "shoaib_rightpocket", "shoaib_wrist", "shoaib_upperarm", "shoaib_belt"),
    "pamap2": ("pamap2_hand", "pamap2_chest", "pamap2_ankle"),
}


def read_archive(directory: str | Path, name: str = "", **options: object) -> WindowSet:
    """Detect which archive ``directory`` holds and read it; a suffix of ``name`` picks the variant.

    "dsads_rightleg" reads the right-leg unit, "dsads_torso" (or plain "dsads") the torso unit,
    "wisdm_watch" the watch streams instead of the phone's; options are passed to the reader
    (e.g. position="left leg").
    """
    directory = Path(directory)
    if find_hapt_root(directory) is not None:
        return read_uci_hapt(directory, name=name or "uci", **options)
    if find_wisdm_root(directory, "phone") is not None or find_wisdm_root(directory, "watch") is not None:
        if "device" not in options and name.endswith("_watch"):
            options["device"] = "watch"
        return read_wisdm(directory, name=name or "wisdm_phone", **options)
    if find_dsads_root(directory) is not None:
        if "position" not in options and "_" in name:
            options["position"] = name.split("_", 1)[1]
        return read_dsads(directory, name=name or "dsads_torso", **options)
    windows = read_paper_archive(directory, name, **options)
    if windows is not None:
        return windows
    raise DataError(
        f"{directory}: not a known archive layout (expected UCI HAPT RawData/labels.txt, WISDM "
        f"wisdm-dataset/raw/phone/accel, DSADS data/aXX/pY/sZZ.txt, HHAR Phones_accelerometer.csv, "
        f"MotionSense A_DeviceMotion_data/dws_1, Shoaib Participant_1.csv or PAMAP2 Protocol/subject101.dat)"
    )


def read_paper_archive(directory: str | Path, name: str = "", **options: object) -> WindowSet | None:
    """Read ``directory`` if it holds one of the four archives, else None; ``name``'s suffix picks a variant.

    "hhar_watch" reads the watch files (default: phone), "shoaib_wrist" the wrist block (default: right
    pocket), "pamap2_ankle" the ankle IMU (default: chest); options go to the reader.
    """
    directory = Path(directory)
    variant = name.split("_", 1)[1] if "_" in name else ""
    if hhar.find_hhar_root(directory, "phone") or hhar.find_hhar_root(directory, "watch"):
        options.setdefault("device", variant or "phone")
        return hhar.read_hhar(directory, name=name or f"hhar_{options['device']}", **options)
    if motionsense.find_motionsense_root(directory):
        return motionsense.read_motionsense(directory, name=name or "motionsense", **options)
    if shoaib.find_shoaib_root(directory):
        options.setdefault("position", variant or "right pocket")
        return shoaib.read_shoaib(directory, name=name or "shoaib_rightpocket", **options)
    if pamap2.find_pamap2_root(directory):
        options.setdefault("position", variant or "chest")
        return pamap2.read_pamap2(directory, name=name or f"pamap2_{options['position']}", **options)
    return None


def download_archive(name: str, dest_dir: str | Path) -> Path:
    """Download the official archive of ``name`` (a key of ARCHIVE_URLS) and extract it into dest_dir/name.

    Nested zips (the WISDM download wraps wisdm-dataset.zip) are extracted too; the Shoaib RAR needs unrar, 7z
    or bsdtar. Needs internet access; returns the directory to pass to read_archive / load_dataset.
    """
    if name not in ARCHIVE_URLS:
        raise DataError(
            f"download_archive: unknown data set {name!r}, expected one of {sorted(ARCHIVE_URLS)}"
        )
    target = Path(dest_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    is_rar = ARCHIVE_URLS[name].endswith(".rar")
    zip_path = target / f"{name}.rar" if is_rar else target / f"{name}.zip"
    try:
        with urllib.request.urlopen(ARCHIVE_URLS[name], timeout=60) as response, open(zip_path, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as error:
        raise DataError(f"download_archive: could not fetch {ARCHIVE_URLS[name]}: {error}") from error
    if is_rar:
        extract_rar(zip_path)
        return target
    pending = [zip_path]
    while pending:
        archive_path = pending.pop()
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(archive_path.parent)
            inner = [archive_path.parent / n for n in archive.namelist() if n.lower().endswith(".zip")]
        archive_path.unlink()
        pending += inner
    return target


def extract_rar(path: Path) -> None:
    """Extract a downloaded .rar next to itself with the first tool found (unrar, 7z, bsdtar), then delete it.

    Python's standard library reads zip but not RAR; without one of these tools the file is kept and the
    error says how to extract it by hand.
    """
    commands = {
        "unrar": ["unrar", "x", "-o+", str(path), str(path.parent) + "/"],
        "7z": ["7z", "x", "-y", f"-o{path.parent}", str(path)],
        "bsdtar": ["bsdtar", "-xf", str(path), "-C", str(path.parent)],
    }
    for tool, command in commands.items():
        if shutil.which(tool) is None:
            continue
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DataError(f"{path}: {tool} could not extract it: {result.stderr.strip()[-300:]}")
        path.unlink()
        return
    raise DataError(
        f"{path}: downloaded, but it is a RAR archive and none of unrar, 7z, bsdtar is installed; extract it "
        f"into {path.parent} by hand"
    )
