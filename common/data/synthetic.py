"""A physics-inspired IMU generator: the framework's embedded default data (no download) and fast test data.

The generator simulates one body segment carrying the sensor (waist, chest, thigh or wrist) and what its
accelerometer and gyroscope read:

- world frame: x up, y to the person's right, z forward (right-handed). The segment frame coincides with it
  when the person stands upright; its orientation is given by three angles: pitch about the right axis
  (positive tilts the segment's x axis backwards: thigh or arm flexion, trunk leaning back, lying on the
  back = +90 deg), roll about the forward axis (lying on the right side = +90 deg) and yaw about x;
- accelerometer = specific force in the segment frame: R^T (a_world + g * up), plus for a swinging limb the
  tangential and centripetal acceleration of a point at distance r below its pivot (hip or shoulder);
- gyroscope = the rates of the three angles (small-angle approximation for roll and yaw).

Locomotion is a gait model: step frequency per user and activity, vertical and anterior-posterior
acceleration with harmonics, heel-strike transients (sharp for downstairs, soft for upstairs), medio-lateral
sway and trunk rotation at the stride frequency, and limb swing. Postures are gravity directions plus
breathing, sway and tremor; cycling is a smooth pedalling rotation; jumping alternates free fall and landing.
The motion is computed at 4x the output rate and bin-averaged (an anti-alias low-pass), per-user traits and a
per-window orientation jitter are added, then either a device type (common.data.devices.apply_device) or a
default sensor noise. Windows of one segment are consecutive pieces of one continuous recording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.data.devices import DeviceType, apply_device
from common.data.errors import DataError
from common.data.labels import canonical
from common.data.windows import GRAVITY, WindowSet

OVERSAMPLING = 4  # motion is simulated at 4x the output rate, then bin-averaged
DEFAULT_PLACEMENT = "waist"
DEFAULT_ACC_NOISE = 0.03  # m/s^2, sensor noise when no device type is given
DEFAULT_GYRO_NOISE = 0.005  # rad/s
TREMOR_ACC = 0.02  # m/s^2, physiological tremor and soft-tissue wobble at the output rate
TREMOR_GYRO = 0.005  # rad/s
USER_MOUNT_DEG = 4.0  # std of a user's own sensor mounting offset per axis (deg)
WINDOW_JITTER_DEG = 2.0  # std of the per-window orientation jitter per axis (deg)
# The thigh's swing is not a sinusoid at the stride frequency: stance and swing phases differ, which puts a
# strong component at the step frequency. It matters for the accelerometer: at the stride frequency a thigh
# is close to a pendulum, whose tangential acceleration nearly cancels the swing of gravity's projection, so
# the horizontal acceleration a thigh sensor reads (dsads right leg: ~5 m/s^2 rms in walking) comes mostly
# from this faster component.
THIGH_STEP_HARMONIC = 0.4  # its amplitude relative to the stride-frequency swing
_CHUNK = 512  # windows simulated at once (bounds memory at ~10 MB per array)

# Body placement words -> the simulated segment.
PLACEMENTS = {
    "waist": "waist",
    "hip": "waist",
    "belt": "waist",
    "chest": "chest",
    "torso": "chest",
    "trunk": "chest",
    "thigh": "thigh",
    "trouser pocket": "thigh",
    "pocket": "thigh",
    "leg": "thigh",
    "right leg": "thigh",
    "left leg": "thigh",
    "wrist": "wrist",
    "arm": "wrist",
    "right arm": "wrist",
    "left arm": "wrist",
    "hand": "wrist",
}


def simulated_segment(placement: str, source: str = "placement") -> str:
    """The simulated body segment for a placement word such as "waist" or "right leg".

    Raises DataError naming ``source``, the value and the placements the simulator knows.
    """
    segment_name = PLACEMENTS.get(placement.strip().lower()) if isinstance(placement, str) else None
    if segment_name is None:
        raise DataError(f"{source} {placement!r} is not simulated; known placements: {sorted(PLACEMENTS)}")
    return segment_name


@dataclass(frozen=True)
class SegmentModel:
    """How the body segment carrying the sensor moves relative to the pelvis."""

    pivot_distance: float  # m from the pivot (hip, shoulder) to the sensor; 0 for the trunk
    translation_gain: float  # share of the pelvis' translational acceleration the sensor sees
    impact_gain: float  # share of the heel-strike transient reaching the sensor
    swing_gain: float  # 1 for a limb that swings with the gait (thigh, arm: left/right steps differ), 0 trunk
    trunk_rotation_gain: float  # multiplies the trunk's pitch/roll/yaw oscillation


SEGMENTS = {
    "waist": SegmentModel(0.0, 1.0, 1.0, 0.0, 1.0),
    "chest": SegmentModel(0.0, 0.85, 0.7, 0.0, 0.8),
    "thigh": SegmentModel(0.1, 1.0, 1.0, 1.0, 0.5),
    "wrist": SegmentModel(0.55, 0.7, 0.45, 1.0, 0.6),
}


@dataclass(frozen=True)
class GaitProfile:
    """Mean parameters of one locomotion activity at the pelvis (a user varies them)."""

    step_hz: float  # steps per second (two steps per stride)
    vertical: float  # m/s^2, amplitude of the vertical acceleration at the step frequency
    vertical_harmonic: float  # m/s^2, second harmonic (push-off asymmetry; larger for stair climbing)
    forward: float  # m/s^2, anterior-posterior amplitude
    lateral: float  # m/s^2, medio-lateral sway at the stride frequency
    impact: float  # m/s^2, heel-strike transient peak
    impact_time: float  # s, rise time of the transient (short = sharp)
    trunk_lean_deg: float  # forward lean of the trunk (deg, positive = forward)
    thigh_mean_deg: float  # mean thigh flexion (deg)
    thigh_swing_deg: float  # thigh swing amplitude (deg) at the stride frequency
    arm_swing_deg: float  # arm swing amplitude (deg) at the stride frequency
    trunk_sway_deg: float  # trunk roll/yaw oscillation amplitude (deg)
    # Step-to-step variability: std of the slow wander of the step phase (in steps) and, relative, of the
    # step amplitude. Level gait on flat ground is very regular; on stairs every flight has its first and
    # last steps, landings and turns, so the rhythm and the effort change within seconds.
    irregularity: float = 0.1


GAITS = {
    "walking": GaitProfile(1.85, 2.0, 2.0, 2.4, 0.9, 4.0, 0.02, 3.0, 8.0, 22.0, 18.0, 6.0, 0.06),
    "upstairs": GaitProfile(1.55, 2.6, 1.2, 2.0, 1.1, 1.4, 0.05, 10.0, 30.0, 28.0, 12.0, 10.0, 0.15),
    "downstairs": GaitProfile(2.0, 2.8, 0.8, 1.3, 1.1, 7.0, 0.02, 2.0, 15.0, 18.0, 14.0, 9.0, 0.15),
    "jogging": GaitProfile(2.7, 7.0, 1.8, 3.0, 1.4, 9.0, 0.025, 8.0, 20.0, 35.0, 35.0, 8.0, 0.06),
    "running": GaitProfile(2.85, 8.5, 2.2, 3.5, 1.5, 11.0, 0.022, 10.0, 22.0, 40.0, 40.0, 9.0, 0.06),
}
# Treadmill variants move the body like their outdoor versions.
GAIT_ALIASES = {"walking on treadmill": "walking", "running on treadmill": "running"}


@dataclass(frozen=True)
class PostureProfile:
    """A held posture: segment angles (deg) per placement group, plus sway/breathing amplitude (deg)."""

    trunk_pitch: float  # deg, negative = leaning forward
    trunk_roll: float
    thigh_pitch: float  # deg, 90 = horizontal thigh
    arm_pitch: float  # deg, forearm flexion (90 = horizontal forearm)
    sway_deg: float  # postural sway amplitude
    breath_deg: float  # breathing-induced trunk pitch amplitude


POSTURES = {
    "standing": PostureProfile(-2.0, 0.0, 0.0, 10.0, 0.8, 0.4),
    "sitting": PostureProfile(-8.0, 0.0, 88.0, 75.0, 0.4, 0.5),
    "lying": PostureProfile(90.0, 0.0, 90.0, 80.0, 0.15, 0.8),
    "lying on back": PostureProfile(90.0, 0.0, 90.0, 80.0, 0.15, 0.8),
    "lying on right side": PostureProfile(0.0, 90.0, 10.0, 60.0, 0.15, 0.6),
    "standing in elevator": PostureProfile(-2.0, 0.0, 0.0, 10.0, 0.6, 0.4),
}

SUPPORTED_ACTIVITIES = tuple(sorted([*GAITS, *GAIT_ALIASES, "stairs", *POSTURES, "cycling", "jumping"]))


@dataclass
class _Batch:
    """Per-window inputs of one activity chunk."""

    time: np.ndarray  # [n, T] s since the start of the recording
    step_hz: np.ndarray  # [n]
    amplitude: np.ndarray  # [n] user amplitude factor
    phase: np.ndarray  # [n] recording phase (cycles)
    lean_deg: np.ndarray  # [n] user's extra trunk lean
    goes_up: np.ndarray  # [n] bool, direction of a mixed "stairs" recording
    rng: np.random.Generator


def generate_windows(
    activities: Sequence[str],
    n_per_activity: int,
    device: DeviceType | None = None,
    seed: int = 0,
    n_users: int = 10,
    sampling_rate: float = 20.0,
    window: int = 120,
    windows_per_recording: int = 10,
    name: str = "synthetic",
) -> WindowSet:
    """``n_per_activity`` windows of every activity, spread over ``n_users`` simulated users.

    With ``device`` the motion is simulated at the device's placement and passed through apply_device
    (rotation, gain, bias, noise, device rate, missing gyro); without it the sensor sits on the waist with
    a default noise. Each user's windows of one activity are cut from recordings of at most
    ``windows_per_recording`` consecutive windows (one segment id each). Deterministic for ``seed``.
    """
    labels = _check_request(activities, n_per_activity, n_users, window, windows_per_recording, sampling_rate)
    placement_word = device.placement if device is not None else DEFAULT_PLACEMENT
    segment_name = simulated_segment(placement_word, source="generate_windows: device placement")

    rng = np.random.default_rng(seed)
    user_traits = _draw_user_traits(rng, n_users)
    X_parts, y_parts, user_parts, segment_parts = [], [], [], []
    next_segment = 0
    for label_index, label in enumerate(labels):
        user, recording, offset = _recording_layout(n_per_activity, n_users, windows_per_recording)
        X_parts.extend(
            _simulate_activity(
                label, segment_name, user, recording, offset, user_traits, window, sampling_rate, rng
            )
        )
        y_parts.append(np.full(n_per_activity, label_index))
        user_parts.append(user)
        segment_parts.append(recording + next_segment)
        next_segment += int(recording.max()) + 1

    windows = WindowSet(
        X=_add_tremor_and_noise(np.concatenate(X_parts), device, rng),
        y=np.concatenate(y_parts).astype(np.int64),
        label_names=labels,
        user=np.concatenate(user_parts).astype(np.int64),
        segment=np.concatenate(segment_parts).astype(np.int64),
        name=name,
        sampling_rate=sampling_rate,
        position=placement_word,
        device="synthetic",
    )
    if device is not None:
        return apply_device(windows, device, seed=int(rng.integers(2**31)))
    return windows


def _check_request(
    activities: Sequence[str],
    n_per_activity: int,
    n_users: int,
    window: int,
    windows_per_recording: int,
    sampling_rate: float,
) -> list[str]:
    """The canonical labels of `activities`, once the arguments of generate_windows are checked."""
    labels = [canonical(activity, allow_unknown=True) for activity in activities]
    unsupported = [label for label in labels if label not in SUPPORTED_ACTIVITIES]
    if unsupported:
        raise DataError(
            f"generate_windows: field 'activities' has unsupported {unsupported}; "
            f"supported: {list(SUPPORTED_ACTIVITIES)}"
        )
    if len(set(labels)) != len(labels):
        raise DataError(f"generate_windows: field 'activities' has duplicates {list(activities)}")
    for field_name, value in (("n_per_activity", n_per_activity), ("n_users", n_users), ("window", window)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise DataError(
                f"generate_windows: field {field_name!r} must be a positive integer, got {value!r}"
            )
    if windows_per_recording < 1 or sampling_rate <= 0:
        raise DataError("generate_windows: windows_per_recording must be >= 1 and sampling_rate > 0 Hz")
    return labels


def _simulate_activity(
    label: str,
    segment_name: str,
    user: np.ndarray,
    recording: np.ndarray,
    offset: np.ndarray,
    user_traits: dict[str, np.ndarray],
    window: int,
    sampling_rate: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """One activity's windows (laid out by _recording_layout), before tremor and sensor noise: [n, T, 6]
    readings in chunks of at most _CHUNK windows."""
    internal_rate = sampling_rate * OVERSAMPLING
    t_window = np.arange(window * OVERSAMPLING) / internal_rate
    n_windows = len(user)
    # A recording's phase, pace and (for "stairs") direction are shared by its consecutive windows.
    n_recordings = int(recording.max()) + 1
    recording_phase = rng.uniform(0, 1, n_recordings)[recording]
    recording_pace = rng.normal(1.0, 0.03, n_recordings)[recording]
    recording_goes_up = (rng.uniform(size=n_recordings) < 0.5)[recording]
    window_amplitude = rng.normal(1.0, 0.05, n_windows)
    segment = SEGMENTS[segment_name]
    chunks = []
    for start in range(0, n_windows, _CHUNK):
        part = slice(start, min(start + _CHUNK, n_windows))
        # float32 halves the cost of the trigonometry; 6 s windows need nowhere near float64 precision.
        batch = _Batch(
            time=((offset[part] * window / sampling_rate)[:, None] + t_window[None, :]).astype(np.float32),
            step_hz=(user_traits["cadence"][user[part]] * recording_pace[part]).astype(np.float32),
            amplitude=(user_traits["amplitude"][user[part]] * window_amplitude[part]).astype(np.float32),
            phase=recording_phase[part].astype(np.float32),
            lean_deg=user_traits["lean_deg"][user[part]].astype(np.float32),
            goes_up=recording_goes_up[part],
            rng=rng,
        )
        mount_deg = user_traits["mount_deg"][user[part]]
        chunks.append(_simulate(label, segment, segment_name, batch, mount_deg, internal_rate))
    return chunks


def _add_tremor_and_noise(X: np.ndarray, device: DeviceType | None, rng: np.random.Generator) -> np.ndarray:
    """Physiological tremor and soft-tissue wobble (always), plus the sensor's own noise when no device type
    adds it: independent white noise, so the standard deviations add in quadrature."""
    acc_noise = TREMOR_ACC if device is not None else float(np.hypot(TREMOR_ACC, DEFAULT_ACC_NOISE))
    gyro_noise = TREMOR_GYRO if device is not None else float(np.hypot(TREMOR_GYRO, DEFAULT_GYRO_NOISE))
    noise = rng.standard_normal(X.shape, dtype=np.float32)
    noise[..., :3] *= acc_noise
    noise[..., 3:] *= gyro_noise
    return (X + noise).astype(np.float32)


def _draw_user_traits(rng: np.random.Generator, n_users: int) -> dict[str, np.ndarray]:
    """Per-user physical traits, drawn once so that a user is recognisably the same across activities."""
    return {
        "cadence": rng.normal(1.0, 0.05, n_users).clip(0.88, 1.12),  # step-frequency factor
        "amplitude": rng.lognormal(0.0, 0.15, n_users),  # movement-intensity factor
        "lean_deg": rng.normal(0.0, 3.0, n_users),  # habitual extra forward lean
        "mount_deg": rng.normal(0.0, USER_MOUNT_DEG, (n_users, 3)),  # how this user wears the sensor
    }


def _recording_layout(n_windows: int, n_users: int, per_recording: int) -> tuple[np.ndarray, ...]:
    """user, recording id and window offset within the recording for each of one activity's windows."""
    user = np.arange(n_windows) % n_users
    order = np.argsort(user, kind="stable")  # group each user's windows together
    user = user[order]
    index_in_user = np.arange(n_windows) - np.searchsorted(user, user)
    recording_in_user = index_in_user // per_recording
    recordings_per_user = -(-np.bincount(user, minlength=n_users) // per_recording)
    first_recording = np.concatenate([[0], np.cumsum(recordings_per_user)[:-1]])
    recording = first_recording[user] + recording_in_user
    offset = index_in_user % per_recording
    return user, recording, offset


def _simulate(
    label: str,
    segment: SegmentModel,
    segment_name: str,
    batch: _Batch,
    mount_deg: np.ndarray,
    internal_rate: float,
) -> np.ndarray:
    """[n, T, 6] readings of one activity chunk: simulated at the internal rate, then bin-averaged.

    Inside, vectors are stored component-first ([3, n, T]) so that each component is contiguous.
    """
    shape = batch.time.shape
    a_world = np.zeros(
        (3, *shape), dtype=np.float32
    )  # translational acceleration: up, right, forward (m/s^2)
    angles = np.zeros(
        (3, *shape), dtype=np.float32
    )  # pitch (about right), roll (about forward), yaw (about up), rad

    gait_name = GAIT_ALIASES.get(label, label)
    if label == "stairs":  # each recording goes either up or down
        going_up = batch.goes_up
        a_up, ang_up = _gait(GAITS["upstairs"], segment, segment_name, batch)
        a_down, ang_down = _gait(GAITS["downstairs"], segment, segment_name, batch)
        a_world = np.where(going_up[None, :, None], a_up, a_down)
        angles = np.where(going_up[None, :, None], ang_up, ang_down)
    elif gait_name in GAITS:
        a_world, angles = _gait(GAITS[gait_name], segment, segment_name, batch)
    elif label in POSTURES:
        angles = _posture(POSTURES[label], segment_name, batch)
        if label == "standing in elevator":  # the lift's start and stop: slow vertical accelerations
            a_world[0] = 0.4 * np.sin(2 * np.pi * 0.1 * batch.time + 2 * np.pi * batch.phase[:, None])
    elif label == "cycling":
        a_world, angles = _cycling(segment, segment_name, batch)
    elif label == "jumping":
        a_world, angles = _jumping(segment, segment_name, batch)
    else:  # guarded by generate_windows; kept so a new table entry without a model fails loudly
        raise DataError(f"generate_windows: no motion model for {label!r}")

    # The user's way of wearing the sensor and a small per-window shift (a strap or pocket never sits still).
    n = batch.time.shape[0]
    offset_deg = mount_deg + batch.rng.normal(0, WINDOW_JITTER_DEG, (n, 3))
    angles = angles + np.deg2rad(offset_deg).T[:, :, None].astype(np.float32)
    readings = _sense(a_world, angles, segment, internal_rate)  # [6, n, T * OVERSAMPLING]
    n_out = readings.shape[2] // OVERSAMPLING
    binned = readings.reshape(6, n, n_out, OVERSAMPLING).mean(axis=-1)  # bin means: anti-alias low-pass
    return np.ascontiguousarray(binned.transpose(1, 2, 0), dtype=np.float32)


def _slow_wander(batch: _Batch, frequencies_hz: tuple[float, ...]) -> np.ndarray:
    """[n, T] zero-mean, unit-std slow fluctuation: sines at `frequencies_hz` with phases fixed per recording.

    The phases derive from the recording's own phase, so consecutive windows of one recording continue the
    same fluctuation.
    """
    total = np.zeros(batch.time.shape, dtype=np.float32)
    for k, frequency in enumerate(frequencies_hz):
        phase = 2 * np.pi * ((batch.phase * (k + 1) * 7.31) % 1.0)
        total += np.sin(2 * np.pi * frequency * batch.time + phase[:, None])
    return total * np.float32(np.sqrt(2.0 / len(frequencies_hz)))


def _gait(
    gait: GaitProfile, segment: SegmentModel, segment_name: str, batch: _Batch
) -> tuple[np.ndarray, np.ndarray]:
    """Pelvis acceleration (world) and segment angles of a gait."""
    step_hz = gait.step_hz * batch.step_hz
    wander = gait.irregularity * _slow_wander(batch, (0.13, 0.29, 0.47))  # steps
    steps = step_hz[:, None] * batch.time + batch.phase[:, None] + wander  # step phase in cycles
    theta = 2 * np.pi * steps
    amplitude = batch.amplitude[:, None] * (1.0 + gait.irregularity * _slow_wander(batch, (0.19, 0.37, 0.61)))
    time_since_strike = (steps % 1.0) / step_hz[:, None]
    # Heel strike: an alpha-function transient peaking impact_time after contact; the ipsilateral strike of
    # a limb-mounted sensor (every other step) is stronger.
    impact = (
        gait.impact
        * (time_since_strike / gait.impact_time)
        * np.exp(1 - time_since_strike / gait.impact_time)
    )
    if segment.swing_gain > 0:
        impact *= np.where(np.floor(steps) % 2 == 0, 1.0, 0.45)
    impact -= impact.mean(axis=1, keepdims=True)  # the body does not drift: acceleration has zero mean

    a_world = np.zeros((3, *batch.time.shape), dtype=np.float32)
    a_world[0] = (
        amplitude
        * (gait.vertical * np.cos(theta) + gait.vertical_harmonic * np.cos(2 * theta + 0.8))
        * segment.translation_gain
        + impact * segment.impact_gain * amplitude
    )
    a_world[2] = amplitude * gait.forward * np.sin(theta + 0.3) * segment.translation_gain
    a_world[1] = amplitude * gait.lateral * np.sin(theta / 2) * segment.translation_gain

    angles = np.zeros_like(a_world)
    sway = np.deg2rad(gait.trunk_sway_deg) * segment.trunk_rotation_gain * amplitude
    lean = -np.deg2rad(gait.trunk_lean_deg + batch.lean_deg[:, None])
    if segment_name in ("waist", "chest"):
        angles[0] = lean + 0.4 * sway * np.sin(theta + 1.0)
    elif segment_name == "thigh":
        angles[0] = np.deg2rad(gait.thigh_mean_deg) + np.deg2rad(gait.thigh_swing_deg) * amplitude * (
            np.sin(theta / 2) + THIGH_STEP_HARMONIC * np.sin(theta + 0.5)
        )
    else:  # wrist: arm swing opposite to the same-side leg, elbow slightly flexed
        angles[0] = np.deg2rad(20.0) + np.deg2rad(gait.arm_swing_deg) * amplitude * np.sin(theta / 2 + np.pi)
    angles[1] = sway * np.sin(theta / 2 + 0.5)
    angles[2] = 1.3 * sway * np.sin(theta / 2)
    return a_world, angles


def _posture(posture: PostureProfile, segment_name: str, batch: _Batch) -> np.ndarray:
    """Segment angles of a held posture with breathing and slow postural sway."""
    shape = batch.time.shape
    rng = batch.rng
    angles = np.zeros((3, *shape), dtype=np.float32)
    breath_hz = rng.uniform(0.2, 0.33, shape[0])[:, None]
    breathing = np.deg2rad(posture.breath_deg) * np.sin(
        2 * np.pi * breath_hz * batch.time + 2 * np.pi * batch.phase[:, None]
    )
    sway = np.zeros(shape, dtype=np.float32)
    for _ in range(3):  # slow sway: a few low-frequency components with random phases
        frequency = rng.uniform(0.05, 0.6, shape[0])[:, None]
        sway += np.sin(2 * np.pi * frequency * batch.time + rng.uniform(0, 2 * np.pi, shape[0])[:, None])
    sway *= np.deg2rad(posture.sway_deg) / 3
    if segment_name in ("waist", "chest"):
        trunk_gain = 1.0 if segment_name == "chest" else 0.4
        angles[0] = np.deg2rad(posture.trunk_pitch) + trunk_gain * breathing + sway
        angles[1] = np.deg2rad(posture.trunk_roll) + 0.5 * sway
    elif segment_name == "thigh":
        angles[0] = np.deg2rad(posture.thigh_pitch) + 0.3 * sway
        angles[1] = np.deg2rad(posture.trunk_roll) + 0.2 * sway
    else:
        angles[0] = np.deg2rad(posture.arm_pitch) + 2.0 * sway
        angles[1] = np.deg2rad(posture.trunk_roll) + sway
    return angles


def _cycling(segment: SegmentModel, segment_name: str, batch: _Batch) -> tuple[np.ndarray, np.ndarray]:
    """Pedalling at 1.2-1.5 Hz: smooth thigh rotation, little vertical impact, road vibration."""
    cadence = 1.35 * batch.step_hz[:, None]
    crank = 2 * np.pi * (cadence * batch.time + batch.phase[:, None])
    amplitude = batch.amplitude[:, None]
    shape = batch.time.shape
    a_world = np.zeros((3, *shape), dtype=np.float32)
    vibration = 0.35 * batch.rng.standard_normal(
        (3, *shape), dtype=np.float32
    )  # road texture via saddle, bars
    a_world += vibration * segment.translation_gain
    # Calibrated on the DSADS torso exercise-bike recordings (tests/test_synthetic.py): the pelvis and trunk
    # rock from side to side once per crank turn and bob twice per turn, so the trunk sees mostly horizontal
    # motion (rms ~0.7-1.1 m/s^2 against a vertical std ~0.4) and a rhythmic roll of a few degrees.
    # The rider keeps shifting on the saddle, so the rocking waxes and wanes (the real trunk signal is only
    # moderately periodic although the cadence is steady).
    rocking = amplitude * (1.0 + 0.4 * _slow_wander(batch, (0.11, 0.23, 0.41)))
    a_world[0] += 0.55 * rocking * np.cos(2 * crank)  # each pedal stroke pushes the pelvis up a little
    a_world[1] += 1.2 * rocking * np.sin(crank)  # side-to-side rocking on the saddle
    a_world[2] += 0.4 * rocking * np.sin(2 * crank + 0.5)  # fore-aft push of each stroke
    angles = np.zeros((3, *shape), dtype=np.float32)
    lean = -np.deg2rad(25.0 + batch.lean_deg[:, None])
    if segment_name in ("waist", "chest"):
        # and the trunk drifts as the rider shifts weight (the real trunk's tilt swing, 3-6 deg, is larger
        # than its rocking at the crank rate explains)
        drift = np.deg2rad(3.0) * _slow_wander(batch, (0.07, 0.17, 0.31))
        angles[0] = lean + np.deg2rad(1.5) * rocking * np.sin(2 * crank) + drift
        angles[1] = np.deg2rad(3.0) * rocking * np.sin(crank) + 0.7 * drift
    elif segment_name == "thigh":
        angles[0] = np.deg2rad(55.0) + np.deg2rad(22.0) * amplitude * np.sin(crank)
        angles[1] = np.deg2rad(3.0) * np.sin(crank + 0.4)
    else:  # hands on the bars: forearm nearly horizontal, steering corrections
        angles[0] = np.deg2rad(70.0) + np.deg2rad(2.0) * np.sin(0.3 * crank)
        angles[2] = np.deg2rad(3.0) * np.sin(2 * np.pi * 0.25 * batch.time)
    return a_world, angles


def _jumping(segment: SegmentModel, segment_name: str, batch: _Batch) -> tuple[np.ndarray, np.ndarray]:
    """Repeated jumps in place (about 1.3-1.7 Hz): free fall in the air, large landing and push-off forces.

    During flight the accelerometer reads almost zero; on the ground a half-sine force whose mean over a
    cycle equals g (momentum balance), plus a landing spike.
    """
    jump_hz = 1.5 * batch.step_hz[:, None]
    cycle = jump_hz * batch.time + batch.phase[:, None]
    position = cycle % 1.0
    contact_fraction = 0.5
    on_ground = position < contact_fraction
    peak = GRAVITY * np.pi / (2 * contact_fraction)  # half-sine mean over the cycle = g
    support = np.where(on_ground, peak * np.sin(np.pi * position / contact_fraction), 0.0)
    landing_time = position / jump_hz
    landing = 12.0 * (landing_time / 0.03) * np.exp(1 - landing_time / 0.03) * on_ground
    vertical = (support + landing * segment.impact_gain) * batch.amplitude[:, None]
    vertical += GRAVITY - vertical.mean(axis=1, keepdims=True)  # keep the cycle mean at exactly g
    a_world = np.zeros((3, *batch.time.shape), dtype=np.float32)
    a_world[0] = vertical - GRAVITY  # _sense adds gravity back
    angles = np.zeros_like(a_world)
    crouch = np.where(on_ground, np.sin(np.pi * position / contact_fraction) ** 2, 0.0)  # smooth at contact
    if segment_name in ("waist", "chest"):
        angles[0] = -np.deg2rad(5.0 + 10.0 * crouch)
    elif segment_name == "thigh":
        angles[0] = np.deg2rad(5.0 + 35.0 * crouch)
    else:  # arms swing up for take-off
        angles[0] = np.deg2rad(15.0 + 20.0 * crouch)
    return a_world, angles


def _rotate(vectors: np.ndarray, axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotate component-first vectors [3, ...] about coordinate ``axis`` by ``angle`` (rad), right-handed."""
    first, second = [(1, 2), (2, 0), (0, 1)][axis]
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = vectors.copy()
    rotated[first] = cos * vectors[first] - sin * vectors[second]
    rotated[second] = sin * vectors[first] + cos * vectors[second]
    return rotated


def _sense(a_world: np.ndarray, angles: np.ndarray, segment: SegmentModel, rate: float) -> np.ndarray:
    """Specific force and angular rate in the segment frame, component-first [6, n, T]."""
    specific_force = a_world.copy()
    specific_force[0] += GRAVITY  # an accelerometer at rest reads +g upwards
    pitch, roll, yaw = angles
    # Segment orientation R = R_y(pitch) R_z(roll) R_x(yaw) in the axes (up=0, right=1, forward=2);
    # R^T applies the inverse rotations in reverse order.
    local = _rotate(specific_force, 1, -pitch)
    local = _rotate(local, 2, -roll)
    local = _rotate(local, 0, -yaw)

    dt = 1.0 / rate
    pitch_rate = np.gradient(pitch, dt, axis=1)
    if segment.pivot_distance > 0:  # a point below a swinging pivot: centripetal along x, tangential along z
        pitch_acceleration = np.gradient(pitch_rate, dt, axis=1)
        local[0] += segment.pivot_distance * pitch_rate**2
        local[2] += segment.pivot_distance * pitch_acceleration
    gyro = np.stack([np.gradient(yaw, dt, axis=1), pitch_rate, np.gradient(roll, dt, axis=1)])
    return np.concatenate([local, gyro])
