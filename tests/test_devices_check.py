"""`fedlanhar devices check`: the preflight's checks on a device type file, and a PNG of its windows."""

from __future__ import annotations

from pathlib import Path

import pytest
from device_recordings import write_recorded_device

from simulations.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_shipped_device_type_is_checked_summarised_and_plotted(tmp_path: Path, capsys) -> None:
    png = tmp_path / "band.png"
    assert main(["devices", "check", "cheap_band", "--out", str(png), "--activities", "walking,sitting"]) == 0
    assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "configs/devices/cheap_band.toml: ok" in printed
    assert "sampling rate 10 Hz" in printed and "placement 'wrist' -> simulated segment 'wrist'" in printed
    assert "gyroscope: no" in printed and f"wrote {png}" in printed


def test_a_device_type_with_recordings_plots_them(tmp_path: Path, capsys) -> None:
    toml = write_recorded_device(tmp_path / "ring", rate=50.0)
    png = tmp_path / "ring.png"
    assert main(["devices", "check", str(toml), "--out", str(png)]) == 0
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    printed = capsys.readouterr().out
    assert "placement 'neck' -> not simulated (its recordings are used)" in printed
    assert "recordings.npz: 24 windows of 4 user(s), activities ['sitting', 'upstairs', 'walking']" in printed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('sampling_rate = 50\nplacement = "tail"\n', "field 'placement' 'tail' is not simulated"),
        ('sampling_rate = 50\nplacement = "wrist"\ngain = 7.0\n', "field 'gain' must be a number"),
        ('sampling_rate = 50\nplacement = "wrist"\ndata = "none.npz"\n', "field 'data': no file"),
    ],
)
def test_a_bad_device_type_fails_naming_the_file_and_key(
    tmp_path: Path, capsys, content: str, message: str
) -> None:
    toml = tmp_path / "my_tail.toml"
    toml.write_text(content)
    png = tmp_path / "tail.png"
    assert main(["devices", "check", str(toml), "--out", str(png)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"fedlanhar devices: error: {toml}") and message in error
    assert not png.exists()
