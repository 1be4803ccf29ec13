"""`fedlanhar devices check`: a device type checked as a run's preflight checks it, and a picture of it.

The PNG has one row per activity: a few windows of the device (simulated through its TOML, or cut from its
own recordings when it has `data`) beside the same activity simulated at the waist with an ideal sensor, the
reference the shipped types are tuned against. Each side shows |acc| (m/s^2, gravity included) and |gyro|
(rad/s) over the 6 s window at the model's 20 Hz, so a user sees what the device produces before a run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.data.device_data import check_device_type, device_recordings
from common.data.devices import DeviceType
from common.data.errors import DataError
from common.data.synthetic import SUPPORTED_ACTIVITIES, generate_windows, simulated_segment
from common.data.windows import WindowSet

WINDOWS_PER_ACTIVITY = 3
REFERENCE_PLACEMENT = "waist"


def device_summary(device: DeviceType, path: Path) -> str:
    """A few lines for people: rate, placement and the segment simulated for it, gyroscope, recordings."""
    try:
        segment = f"simulated segment '{simulated_segment(device.placement)}'"
    except DataError:
        segment = "not simulated (its recordings are used)"
    lines = [
        f"{device.name} ({path}): {device.description or 'no description'}",
        f"  sampling rate {device.sampling_rate:g} Hz (windows resampled to 20 Hz, 120 samples)",
        f"  placement '{device.placement}' -> {segment}",
        f"  gyroscope: {'yes' if device.has_gyro else 'no'}",
    ]
    if device.data:
        recordings = device_recordings(device)
        labels = sorted({label for label in recordings.labels()})
        lines.append(
            f"  recordings {device.data}: {len(recordings)} windows of {len(np.unique(recordings.user))} "
            f"user(s), activities {labels}"
        )
    return "\n".join(lines)


def check_and_plot(
    device_file: str | Path, out: str | Path, activities: list[str], seed: int = 0
) -> tuple[DeviceType, Path]:
    """The device type of ``device_file`` after the preflight's checks, and the PNG written to ``out``."""
    device = check_device_type(device_file)
    if device.data:
        shown = _recorded_by_activity(device_recordings(device))
    else:
        simulated = generate_windows(activities, WINDOWS_PER_ACTIVITY, device=device, seed=seed, n_users=1)
        shown = {label: simulated.select_activities([label]).X for label in simulated.label_names}
    simulable = [label for label in shown if label in SUPPORTED_ACTIVITIES]
    reference = generate_windows(simulable, WINDOWS_PER_ACTIVITY, seed=seed, n_users=1) if simulable else None
    waist = {label: reference.select_activities([label]).X for label in simulable} if reference else {}
    return device, _plot(device, shown, waist, Path(out))


def _recorded_by_activity(recordings: WindowSet) -> dict[str, np.ndarray]:
    """The first few recorded windows of every label (of the unlabeled windows when none has a label)."""
    names = np.array(recordings.labels())
    return {
        str(label): recordings.X[np.flatnonzero(names == label)[:WINDOWS_PER_ACTIVITY]]
        for label in dict.fromkeys(names.tolist())
    }


def _plot(device: DeviceType, shown: dict[str, np.ndarray], waist: dict[str, np.ndarray], out: Path) -> Path:
    """Rows: activities; columns: device |acc|, device |gyro|, waist |acc|, waist |gyro|."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13.0, 1.9 * len(shown) + 0.8))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(shown), 4, squeeze=False, sharex=True)
    source = "recorded" if device.data else "simulated"
    titles = (
        f"{device.name} ({source}) |acc| m/s^2",
        f"{device.name} |gyro| rad/s",
        f"{REFERENCE_PLACEMENT} (simulated, ideal) |acc| m/s^2",
        f"{REFERENCE_PLACEMENT} |gyro| rad/s",
    )
    for row, (label, windows) in enumerate(shown.items()):
        sides = ((windows, device.has_gyro), (waist.get(label), True))
        for side, (side_windows, has_gyro) in enumerate(sides):
            for part, channels in enumerate((slice(0, 3), slice(3, 6))):
                panel = axes[row, 2 * side + part]
                if side_windows is None or (part == 1 and not has_gyro):
                    reason = "not simulated" if side_windows is None else "no gyroscope"
                    panel.text(0.5, 0.5, reason, ha="center", va="center", transform=panel.transAxes)
                    continue
                time_s = np.arange(side_windows.shape[1]) / 20.0
                for window in side_windows:
                    panel.plot(time_s, np.linalg.norm(window[:, channels], axis=-1), linewidth=0.8)
        axes[row, 0].set_ylabel(label, fontsize=9)
        for part in (0, 1):  # the device and the waist on one scale, so their sizes compare at a glance
            drawn = [axes[row, column] for column in (part, 2 + part) if axes[row, column].lines]
            limits = np.array([panel.get_ylim() for panel in drawn])
            for panel in drawn:
                panel.set_ylim(limits[:, 0].min(), limits[:, 1].max())
    for column, title in enumerate(titles):
        axes[0, column].set_title(title, fontsize=9)
        axes[-1, column].set_xlabel("time (s)")
    figure.suptitle(
        f"device type {device.name}: {device.placement}, {device.sampling_rate:g} Hz", fontsize=11
    )
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    return out
