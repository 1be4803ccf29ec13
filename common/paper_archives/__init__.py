"""Readers of the ORIGINAL archives of the LanHAR paper's own data sets: HHAR, MotionSense, Shoaib, PAMAP2.

Each module reads one archive family into the same WindowSet as common/archives.py (20 Hz, 120-sample
windows, acc m/s^2 incl. gravity in the Android/UCI sign convention, gyro rad/s, users, one segment per
continuous recording of one activity) and cites the documentation its format knowledge comes from:

- hhar.py         hhar_phone, hhar_watch
- motionsense.py  motionsense
- shoaib.py       shoaib_leftpocket, shoaib_rightpocket, shoaib_wrist, shoaib_upperarm, shoaib_belt
- pamap2.py       pamap2_hand, pamap2_chest, pamap2_ankle

This module stays free of reader imports: common.archives imports it for the download links, and the readers
import common.archives, so they are loaded only when read_paper_archive needs them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from common.data import DataError

if TYPE_CHECKING:
    from common.data import WindowSet

# Official download links (fedlanhar data download NAME): the UCI repository for HHAR and PAMAP2, the
# authors' GitHub repository for MotionSense, the University of Twente's data set page for Shoaib (a RAR).
PAPER_ARCHIVE_URLS = {
    "hhar": "https://archive.ics.uci.edu/static/public/344/heterogeneity+activity+recognition.zip",
    "motionsense": "https://github.com/mmalekzadeh/motion-sense/raw/master/data/A_DeviceMotion_data.zip",
    "shoaib": "https://www.utwente.nl/en/eemcs/ps/dataset-folder/sensors-activity-recognition-dataset-shoaib.rar",
    "pamap2": "https://archive.ics.uci.edu/static/public/231/pamap2+physical+activity+monitoring.zip",
}

# Archive family -> the data set names it provides (load_dataset finds the family's folder by the prefix).
PAPER_DATA_SETS = {
    "hhar": ("hhar_phone", "hhar_watch"),
    "motionsense": ("motionsense",),
    "shoaib": ("shoaib_leftpocket", "shoaib_rightpocket", "shoaib_wrist", "shoaib_upperarm", "shoaib_belt"),
    "pamap2": ("pamap2_hand", "pamap2_chest", "pamap2_ankle"),
}


def read_paper_archive(directory: str | Path, name: str = "", **options: object) -> WindowSet | None:
    """Read ``directory`` if it holds one of the four archives, else None; ``name``'s suffix picks a variant.

    "hhar_watch" reads the watch files (default: phone), "shoaib_wrist" the wrist block (default: right
    pocket), "pamap2_ankle" the ankle IMU (default: chest); options go to the reader.
    """
    from common.paper_archives import hhar, motionsense, pamap2, shoaib

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
