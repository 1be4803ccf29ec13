"""A physics-inspired IMU generator: the framework's embedded default data (no download) and fast test data.

It simulates the body segment carrying the sensor (docs/devices.md lists segments and placement words) and
what its accelerometer and gyroscope read:

- world frame: x up, y to the person's right, z forward (right-handed). The segment frame coincides with it
  when the person stands upright; its orientation is given by three angles: pitch about the right axis
  (positive tilts the segment's x axis backwards: thigh or arm flexion, trunk leaning back, lying on the
  back = +90 deg), roll about the forward axis (lying on the right side = +90 deg) and yaw about x;
- accelerometer = specific force in the segment frame: R^T (a_world + g * up), plus for a swinging limb the
  tangential and centripetal acceleration of a point at distance r below its pivot (hip or shoulder);
- gyroscope = the rates of the three angles (small-angle approximation for roll and yaw).

Locomotion is a gait model (step frequency, harmonics, heel-strike transients, sway, limb swing; the shank
and foot follow their own stride). Postures are gravity directions plus breathing, sway and tremor; cycling
is a pedalling rotation; jumping alternates free fall and landing. The motion is computed at 4x the output
rate and bin-averaged (anti-alias), per-user traits and a per-window orientation jitter are added, then a
device type (common.data.devices.apply_device) or a default sensor noise. Windows of one segment are
consecutive pieces of one continuous recording.
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
# The thigh's swing has a strong step-frequency component (stance and swing differ). At the stride frequency
# a thigh is nearly a pendulum whose tangential acceleration cancels gravity's swing, so a thigh sensor's
# horizontal acceleration (dsads right leg: ~5 m/s^2 rms walking) comes mostly from this component.
THIGH_STEP_HARMONIC = 0.4  # its amplitude relative to the stride-frequency swing
_CHUNK = 512  # windows simulated at once (bounds memory at ~10 MB per array)

# Body placement words -> the simulated segment.
_PLACEMENT_WORDS = {
    "waist": ("waist", "hip", "belt"),
    "chest": ("chest", "torso", "trunk"),
    "thigh": ("thigh", "trouser pocket", "pocket", "leg", "right leg", "left leg"),
    "wrist": ("wrist", "arm", "right arm", "left arm", "hand"),
    "head": ("head", "ear", "left ear", "right ear", "earbud", "earbuds", "glasses", "cap"),
    "upper arm": ("upper arm", "left upper arm", "right upper arm", "armband"),
    "finger": ("finger", "ring", "ring finger", "index finger"),
    "shank": ("shank", "shin", "ankle", "left ankle", "right ankle"),
    "foot": ("foot", "left foot", "right foot", "shoe", "insole"),
}
PLACEMENTS = {word: segment for segment, words in _PLACEMENT_WORDS.items() for word in words}


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
    horizontal_gain: float = 1.0  # a further share of the horizontal acceleration only (the head: the neck)


SEGMENTS = {
    "waist": SegmentModel(0.0, 1.0, 1.0, 0.0, 1.0),
    "chest": SegmentModel(0.0, 0.85, 0.7, 0.0, 0.8),
    "thigh": SegmentModel(0.1, 1.0, 1.0, 1.0, 0.5),
    "wrist": SegmentModel(0.55, 0.7, 0.45, 1.0, 0.6),
    # Head (earbuds, glasses, cap): spine and neck damp the pelvis' accelerations, the horizontal ones
    # most, and gaze stabilises the head (Kavanagh & Menz 2008, Gait Posture 28:1-15; Menz, Lord &
    # Fitzpatrick 2003, Gait Posture 18:35-46): vertical share 0.9, horizontal 0.9 * 0.55 ~ half,
    # heel-strike transients and the trunk's pitch/roll/yaw oscillation halved.
    "head": SegmentModel(0.0, 0.9, 0.5, 0.0, 0.5, horizontal_gain=0.55),
    # Upper arm (armband phone) half-way down the humerus: 0.15 m below the shoulder (humerus ~0.186 of the
    # body height, Winter 2009 fig. 4.1); between trunk and wrist in translation and impacts.
    "upper arm": SegmentModel(0.15, 0.85, 0.6, 1.0, 0.7),
    # Finger (ring): ~0.7 m from the shoulder (upper arm 0.32 + forearm 0.25 + hand to the proximal
    # phalanx 0.1 m, Winter 2009 fig. 4.1); one more joint (the wrist) damps the heel strike a little more.
    "finger": SegmentModel(0.7, 0.7, 0.4, 1.0, 0.6),
    # Shank (ankle band) and foot (shoe or insole sensor) move by their own stride model (_lower_leg_gait):
    # no pivot term and no trunk oscillation. impact_gain: the heel-strike transient there relative to the
    # pelvis' (GaitProfile.impact): the shock wave loses most of its peak between foot and pelvis (heel pad,
    # ankle, knee: Lafortune et al. 1996, J Biomech 29:1531; tibial peaks of a few g in running, Milner
    # et al. 2006, Med Sci Sports Exerc 38:323), so the shank sees ~3.5x and the foot ~6x the pelvis'
    # peak (walking: ~1.4 g and ~2.4 g; running ~4 g and ~7 g).
    "shank": SegmentModel(0.0, 1.0, 3.5, 1.0, 0.0),
    "foot": SegmentModel(0.0, 1.0, 6.0, 1.0, 0.0),
}
LOWER_LEG_SEGMENTS = ("shank", "foot")


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
class LowerLegStride:
    """One stride of the shank and the foot, as shares of the stride from this leg's heel strike (0).

    Pitch as for every segment: positive tilts the segment's x axis backwards, so a foot with its toes up
    (heel strike) and a shank with the ankle ahead of the knee have positive pitch.
    """

    stance: float  # share of the stride the foot is on the ground (toe-off)
    foot_flat: float  # the foot lies flat from here ...
    heel_rise: float  # ... to here: the instep is still; then the heel lifts and the foot travels forward
    foot_contact_deg: float  # foot pitch at contact (+ toes up: heel first; - toes first)
    foot_toe_off_deg: float  # foot pitch at toe-off (- heel up)
    shank_contact_deg: float  # shank pitch at contact
    shank_toe_off_deg: float  # shank pitch at toe-off and early swing (knee ahead of the ankle)
    stride_length: float  # m the foot travels forward per stride
    lift: float  # m the instep rises above its straight path in the swing
    climb: float  # m the foot rises per stride (stairs: two risers)


# Phases: Perry & Burnfield 2010 ("Gait Analysis", ch. 2: stance 60% of the walking stride, loading
# response to 10%, heel rise ~30-40%); stairs: McFadyen & Winter 1988 (J Biomech 21:733, stance ~60-65%,
# forefoot contact going up, toe-first going down); running: Novacheck 1998 (Gait Posture 7:77, stance
# below 40% of the stride). Angles: Winter 2009 (ch. 3, walking kinematics: foot ~+20 deg at heel strike,
# -50 to -60 deg at toe-off; shank ~+20 deg at contact, ~-50 deg at toe-off and peak knee flexion).
# Stride lengths: walking ~1.4 m at 1.85 steps/s (1.3 m/s), stairs two treads of ~0.3 m and two risers of
# ~0.17 m, jogging/running at ~3 and ~4 m/s. The instep sensor rises ~0.1-0.3 m as the heel lifts in swing.
LOWER_LEG_STRIDES = {
    "walking": LowerLegStride(0.60, 0.10, 0.40, 20.0, -55.0, 20.0, -50.0, 1.4, 0.12, 0.0),
    "upstairs": LowerLegStride(0.64, 0.08, 0.45, -5.0, -25.0, -10.0, -45.0, 0.6, 0.15, 0.34),
    "downstairs": LowerLegStride(0.62, 0.12, 0.45, -25.0, -20.0, 10.0, -35.0, 0.6, 0.08, -0.34),
    "jogging": LowerLegStride(0.40, 0.08, 0.20, 10.0, -60.0, 10.0, -55.0, 2.2, 0.25, 0.0),
    "running": LowerLegStride(0.35, 0.07, 0.17, 5.0, -65.0, 8.0, -70.0, 2.8, 0.35, 0.0),
}
SHANK_LIFT_SHARE = 0.7  # the ankle band (just above the malleoli) rises less than the instep in swing
# Head pitch in gait (deg, negative = looking down): level gait looks ahead a few metres (slight
# flexion); on stairs the gaze goes to the steps, more so going down (Zietz & Hollands 2009, J Mot Behav
# 41:357).
HEAD_GAIT_PITCH_DEG = dict(walking=-5.0, upstairs=-15.0, downstairs=-25.0, jogging=-3.0, running=-3.0)
HAND_LAG_DEG = 8.0  # the relaxed wrist lets the hand trail the forearm's swing (a second pendulum)
HAND_LAG_RAD = 1.0  # its phase lag behind the forearm (rad)


@dataclass(frozen=True)
class PostureProfile:
    """A held posture: segment angles (deg) per placement group, plus sway/breathing amplitude (deg)."""

    trunk_pitch: float  # deg, negative = leaning forward
    trunk_roll: float
    thigh_pitch: float  # deg, 90 = horizontal thigh
    arm_pitch: float  # deg, forearm flexion (90 = horizontal forearm)
    sway_deg: float  # postural sway amplitude
    breath_deg: float  # breathing-induced trunk pitch amplitude
    head_flexion: float  # deg, head pitch relative to the trunk (negative = chin down)
    upper_arm_pitch: float  # deg, 0 = hanging, 90 = alongside the lying body
    shank_pitch: float  # deg, 0 = vertical, positive = ankle ahead of the knee
    foot_pitch: float  # deg, 0 = sole flat on the floor, positive = toes up


# The head, upper-arm, shank and foot columns. Standing: head nearly level, arms hanging, shank and foot
# upright and flat. Sitting: head bent a little more (table, screen), hands on the lap, shank vertical, foot
# flat (knee ~90 deg). Lying on the back: head on a pillow (~15 deg), arms alongside, shank horizontal, the
# relaxed ankle plantarflexed ~20 deg (foot 70 deg: toes up). Lying on the right side: the joints flex about
# the body's right axis, now pointing down, so they leave gravity on the lateral axis (0 deg; the roll does).
POSTURES = {
    "standing": PostureProfile(-2.0, 0.0, 0.0, 10.0, 0.8, 0.4, -3.0, 0.0, 0.0, 0.0),
    "sitting": PostureProfile(-8.0, 0.0, 88.0, 75.0, 0.4, 0.5, -10.0, 15.0, 0.0, 0.0),
    "lying": PostureProfile(90.0, 0.0, 90.0, 80.0, 0.15, 0.8, -15.0, 90.0, 90.0, 70.0),
    "lying on back": PostureProfile(90.0, 0.0, 90.0, 80.0, 0.15, 0.8, -15.0, 90.0, 90.0, 70.0),
    "lying on right side": PostureProfile(0.0, 90.0, 10.0, 60.0, 0.15, 0.6, 0.0, 0.0, 0.0, 0.0),
    "standing in elevator": PostureProfile(-2.0, 0.0, 0.0, 10.0, 0.6, 0.4, -3.0, 0.0, 0.0, 0.0),
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
    layout = _recording_layout(n_per_activity, n_users, windows_per_recording)  # the same for every activity
    user, recording, _ = layout
    n_recordings = int(recording.max()) + 1
    X_parts: list[np.ndarray] = []
    for label in labels:
        X_parts += _simulate_activity(label, segment_name, layout, user_traits, window, sampling_rate, rng)
    windows = WindowSet(
        X=_add_tremor_and_noise(np.concatenate(X_parts), device, rng),
        y=np.repeat(np.arange(len(labels), dtype=np.int64), n_per_activity),
        label_names=labels,
        user=np.tile(user, len(labels)).astype(np.int64),
        segment=np.concatenate([recording + k * n_recordings for k in range(len(labels))]).astype(np.int64),
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
    layout: tuple[np.ndarray, np.ndarray, np.ndarray],
    user_traits: dict[str, np.ndarray],
    window: int,
    sampling_rate: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """One activity's windows before tremor and sensor noise: [n, T, 6] readings in chunks of at most _CHUNK
    windows. layout: user, recording id and window offset in the recording per window (_recording_layout)."""
    user, recording, offset = layout
    internal_rate = sampling_rate * OVERSAMPLING
    t_window = np.arange(window * OVERSAMPLING) / internal_rate
    n_windows = len(user)
    # A recording's phase, pace and (for "stairs") direction are shared by its consecutive windows.
    n_recordings = int(recording.max()) + 1
    recording_phase = rng.uniform(0, 1, n_recordings)[recording]
    recording_pace = rng.normal(1.0, 0.03, n_recordings)[recording]
    recording_goes_up = (rng.uniform(size=n_recordings) < 0.5)[recording]
    window_amplitude = rng.normal(1.0, 0.05, n_windows)
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
        chunks.append(_simulate(label, segment_name, batch, mount_deg, internal_rate))
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
    label: str, segment_name: str, batch: _Batch, mount_deg: np.ndarray, internal_rate: float
) -> np.ndarray:
    """[n, T, 6] readings of one activity chunk: simulated at the internal rate, then bin-averaged.

    Inside, vectors are stored component-first ([3, n, T]) so that each component is contiguous.
    """
    segment = SEGMENTS[segment_name]
    shape = batch.time.shape
    a_world = np.zeros((3, *shape), dtype=np.float32)  # acceleration: up, right, forward (m/s^2)
    angles = np.zeros((3, *shape), dtype=np.float32)  # rad: pitch (about right), roll (forward), yaw (up)

    gait_name = GAIT_ALIASES.get(label, label)
    if label == "stairs":  # each recording goes either up or down
        going_up = batch.goes_up
        a_up, ang_up = _gait("upstairs", segment_name, batch)
        a_down, ang_down = _gait("downstairs", segment_name, batch)
        a_world = np.where(going_up[None, :, None], a_up, a_down)
        angles = np.where(going_up[None, :, None], ang_up, ang_down)
    elif gait_name in GAITS:
        a_world, angles = _gait(gait_name, segment_name, batch)
    elif label in POSTURES:
        angles = _posture(POSTURES[label], segment_name, batch)
        if label == "standing in elevator":  # the lift's start and stop: slow vertical accelerations
            a_world[0] = 0.4 * np.sin(2 * np.pi * 0.1 * batch.time + 2 * np.pi * batch.phase[:, None])
    elif label == "cycling":
        a_world, angles = _cycling(segment_name, batch)
    elif label == "jumping":
        a_world, angles = _jumping(segment_name, batch)
    else:  # guarded by generate_windows; kept so a new table entry without a model fails loudly
        raise DataError(f"generate_windows: no motion model for {label!r}")
    if segment.horizontal_gain != 1.0:  # the head: the neck damps the horizontal motion (SEGMENTS)
        a_world[1:] *= segment.horizontal_gain

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


def _gait_phase(gait: GaitProfile, batch: _Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step frequency [n] (Hz), step phase [n, T] (cycles, 0 at a heel strike) and amplitude factor [n, T]."""
    step_hz = gait.step_hz * batch.step_hz
    wander = gait.irregularity * _slow_wander(batch, (0.13, 0.29, 0.47))  # steps
    steps = step_hz[:, None] * batch.time + batch.phase[:, None] + wander  # step phase in cycles
    amplitude = batch.amplitude[:, None] * (1.0 + gait.irregularity * _slow_wander(batch, (0.19, 0.37, 0.61)))
    return step_hz, steps, amplitude


def _gait(gait_name: str, segment_name: str, batch: _Batch) -> tuple[np.ndarray, np.ndarray]:
    """Pelvis acceleration (world) and segment angles of a gait; the shank and foot: _lower_leg_gait."""
    gait, segment = GAITS[gait_name], SEGMENTS[segment_name]
    step_hz, steps, amplitude = _gait_phase(gait, batch)
    if segment_name in LOWER_LEG_SEGMENTS:
        return _lower_leg_gait(gait_name, segment_name, step_hz, steps, amplitude)
    theta = 2 * np.pi * steps
    time_since_strike = (steps % 1.0) / step_hz[:, None]
    # Heel strike: an alpha-function transient peaking impact_time after contact; the ipsilateral strike of
    # a limb-mounted sensor (every other step) is stronger.
    since_strike = time_since_strike / gait.impact_time
    impact = gait.impact * since_strike * np.exp(1 - since_strike)
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
    return a_world, _gait_angles(gait_name, segment_name, theta, amplitude, batch)


def _gait_angles(
    gait_name: str, segment_name: str, theta: np.ndarray, amplitude: np.ndarray, batch: _Batch
) -> np.ndarray:
    """Angles [3, n, T] of a segment above the knee in a gait (theta: step phase in rad)."""
    gait = GAITS[gait_name]
    angles = np.zeros((3, *theta.shape), dtype=np.float32)
    sway = np.deg2rad(gait.trunk_sway_deg) * SEGMENTS[segment_name].trunk_rotation_gain * amplitude
    lean = -np.deg2rad(gait.trunk_lean_deg + batch.lean_deg[:, None])
    if segment_name in ("wrist", "upper arm", "finger"):  # the arm swings opposite to the same-side leg
        arm_swing = np.deg2rad(gait.arm_swing_deg) * amplitude * np.sin(theta / 2 + np.pi)
    if segment_name in ("waist", "chest"):
        angles[0] = lean + 0.4 * sway * np.sin(theta + 1.0)
    elif segment_name == "thigh":
        angles[0] = np.deg2rad(gait.thigh_mean_deg) + np.deg2rad(gait.thigh_swing_deg) * amplitude * (
            np.sin(theta / 2) + THIGH_STEP_HARMONIC * np.sin(theta + 0.5)
        )
    elif segment_name == "wrist":  # elbow slightly flexed
        angles[0] = np.deg2rad(20.0) + arm_swing
    elif segment_name == "head":  # looks ahead (or at the steps), whatever the trunk's lean
        angles[0] = np.deg2rad(HEAD_GAIT_PITCH_DEG[gait_name]) + 0.4 * sway * np.sin(theta + 1.0)
    elif segment_name == "upper arm":  # the shoulder gives ~70% of the forearm's swing, the elbow the rest
        angles[0] = 0.7 * arm_swing  # (Meyns, Bruijn & Duysens 2013, Gait Posture 38:555, review)
    elif segment_name == "finger":  # the forearm's swing plus the relaxed hand trailing it
        hand_lag = np.deg2rad(HAND_LAG_DEG) * amplitude * np.sin(theta / 2 + np.pi - HAND_LAG_RAD)
        angles[0] = np.deg2rad(20.0) + arm_swing + hand_lag
    else:  # a new entry of SEGMENTS without a gait model fails loudly
        raise DataError(f"generate_windows: no gait model for the segment {segment_name!r}")
    angles[1] = sway * np.sin(theta / 2 + 0.5)
    angles[2] = 1.3 * sway * np.sin(theta / 2)
    return angles


def _lower_leg_gait(
    gait_name: str, segment_name: str, step_hz: np.ndarray, steps: np.ndarray, amplitude: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World acceleration and angles [3, n, T] of the shank or the foot in a gait: this leg's own stride.

    The foot lands (heel strike: a sharp transient), lies flat and still until the heel rises, rolls over
    the toes, and swings one stride forward. The shank rotates forward over the planted foot during the
    stance (an inverted pendulum) and swings back fast with the foot. steps: step phase from _gait_phase;
    this leg strikes at even steps (as the stronger ipsilateral strike in _gait).
    """
    gait, stride = GAITS[gait_name], LOWER_LEG_STRIDES[gait_name]
    phase = (steps / 2) % 1.0  # share of this leg's stride since its heel strike
    stride_hz = step_hz[:, None] / 2
    angles = np.zeros((3, *steps.shape), dtype=np.float32)
    if segment_name == "foot":
        knots = (0.0, stride.foot_flat, stride.heel_rise, stride.stance, 1.0)
        pitch = (stride.foot_contact_deg, 0.0, 0.0, stride.foot_toe_off_deg, stride.foot_contact_deg)
        lift = stride.lift
    else:
        knots = (0.0, stride.stance, 1.0)
        pitch = (stride.shank_contact_deg, stride.shank_toe_off_deg, stride.shank_contact_deg)
        lift = SHANK_LIFT_SHARE * stride.lift
    angles[0] = np.deg2rad(_eased_path(phase, knots, pitch)) * amplitude
    travel = np.clip((phase - stride.heel_rise) / (1.0 - stride.heel_rise), 0.0, 1.0)
    # While it travels the foot inverts a little and the leg turns about its long axis (a few degrees:
    # Lafortune et al. 1992, J Biomech 25:347); nothing turns while the foot lies flat.
    swing = np.sin(np.pi * travel)
    angles[1] = np.deg2rad(4.0) * amplitude * swing
    angles[2] = np.deg2rad(5.0) * amplitude * swing
    a_world = _stride_translation(travel, (1.0 - stride.heel_rise) / stride_hz, stride, lift, amplitude)
    # Heel strike of this leg, and a tenth of it from the other leg's strike (this foot still on its toes).
    # The transient is sharper than at the pelvis (no soft tissue and joints in between yet).
    rise_time = 0.5 * gait.impact_time
    strike = _biphasic_transient(phase / stride_hz, rise_time)
    strike += 0.1 * _biphasic_transient(((phase - 0.5) % 1.0) / stride_hz, rise_time)
    transient = gait.impact * SEGMENTS[segment_name].impact_gain * amplitude * strike
    a_world[0] += transient  # the heel is stopped ...
    a_world[2] -= 0.4 * transient  # ... and braked
    return a_world, angles


def _stride_translation(
    travel: np.ndarray, duration: np.ndarray, stride: LowerLegStride, lift: float, amplitude: np.ndarray
) -> np.ndarray:
    """World acceleration [3, n, T] of the instep (or the ankle) between heel rise and the next contact.

    travel: 0 before the heel rises, then 0 -> 1 until the heel strikes again; duration: that time (s).
    Forward (and, on stairs, up) a minimum-jerk move x(u) = 10u^3 - 15u^4 + 6u^5 (Flash & Hogan 1985,
    J Neurosci 5:1688): it starts and ends at rest with zero acceleration, peaks at 1.875 x mean speed
    (walking: ~4 m/s, as foot speeds in swing). Above that path a lift 64 u^3 (1 - u)^3 (peak 1 at u = 0.5).
    """
    u = travel
    per_metre = (60 * u - 180 * u**2 + 120 * u**3) / duration**2  # d2x/dt2 of the minimum-jerk move
    w = u - u**2
    lift_per_metre = 64 * (6 * w * (1 - 2 * u) ** 2 - 6 * w**2) / duration**2  # d2/dt2 of 64 w^3
    a_world = np.zeros((3, *u.shape), dtype=np.float32)
    a_world[0] = lift * amplitude * lift_per_metre + stride.climb * per_metre
    a_world[2] = stride.stride_length * amplitude * per_metre
    return a_world


def _biphasic_transient(time_since: np.ndarray, rise_time: float) -> np.ndarray:
    """A zero-impulse impact transient with peak 1: x e^(1-x) (1 - x/2) at x = time_since / rise_time.

    A spike then a smaller, longer rebound (heel pad and shoe), whose integral is zero, so the transient
    leaves the segment's velocity unchanged and it neither drifts nor needs a mean correction that would
    move the still phases."""
    x = time_since / rise_time
    return x * np.exp(1 - x) * (1 - 0.5 * x) / _BIPHASIC_PEAK


# The maximum of x e^(1-x) (1 - x/2), at x = 2 - sqrt(2).
_BIPHASIC_PEAK = (2 - np.sqrt(2)) * np.exp(np.sqrt(2) - 1) * (np.sqrt(2) / 2)


def _eased_path(phase: np.ndarray, knots: tuple[float, ...], values: tuple[float, ...]) -> np.ndarray:
    """The value at ``phase`` (in [0, 1]) on a path through (knots[i], values[i]): a half cosine between
    two knots, so the path and its slope are continuous and the slope is zero at each knot."""
    knot_array = np.asarray(knots, dtype=np.float32)
    value_array = np.asarray(values, dtype=np.float32)
    index = np.clip(np.searchsorted(knot_array, phase, side="right") - 1, 0, len(knots) - 2)
    start, end = knot_array[index], knot_array[index + 1]
    ease = 0.5 - 0.5 * np.cos(np.pi * (phase - start) / (end - start))
    return value_array[index] + (value_array[index + 1] - value_array[index]) * ease


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
    elif segment_name == "wrist":
        angles[0] = np.deg2rad(posture.arm_pitch) + 2.0 * sway
        angles[1] = np.deg2rad(posture.trunk_roll) + sway
    else:
        pitch_deg, breath_gain, sway_gain = _distal_posture(posture, segment_name)
        angles[0] = np.deg2rad(pitch_deg) + breath_gain * breathing + sway_gain * sway
        angles[1] = np.deg2rad(posture.trunk_roll) + 0.5 * sway_gain * sway
    return angles


def _distal_posture(posture: PostureProfile, segment_name: str) -> tuple[float, float, float]:
    """Pitch (deg), breathing gain and sway gain in a held posture of the head, upper arm, finger, shank or
    foot."""
    if segment_name == "head":  # follows the trunk; the neck passes part of the breathing
        return posture.trunk_pitch + posture.head_flexion, 0.5, 1.0
    if segment_name == "upper arm":  # hangs from the shoulder, sways a little more than the trunk
        return posture.upper_arm_pitch, 0.0, 1.5
    if segment_name == "finger":  # the hand in line with the forearm; fingers fidget more than the wrist
        return posture.arm_pitch, 0.0, 3.0
    if segment_name == "shank":  # standing: the body sways as an inverted pendulum about the ankles
        return posture.shank_pitch, 0.0, 0.5
    if segment_name == "foot":  # planted (or resting): barely moves
        return posture.foot_pitch, 0.0, 0.05
    raise DataError(f"generate_windows: no posture model for the segment {segment_name!r}")


def _cycling(segment_name: str, batch: _Batch) -> tuple[np.ndarray, np.ndarray]:
    """Pedalling at 1.2-1.5 Hz: smooth thigh rotation, little vertical impact, road vibration."""
    cadence = 1.35 * batch.step_hz[:, None]
    crank = 2 * np.pi * (cadence * batch.time + batch.phase[:, None])
    amplitude = batch.amplitude[:, None]
    shape = batch.time.shape
    a_world = np.zeros((3, *shape), dtype=np.float32)
    vibration = 0.35 * batch.rng.standard_normal((3, *shape), dtype=np.float32)  # road via saddle, bars
    a_world += vibration * SEGMENTS[segment_name].translation_gain
    if segment_name in LOWER_LEG_SEGMENTS:  # the foot rides the pedal, not the saddle
        return a_world + _pedal_circle(crank, cadence), _cycling_angles(segment_name, crank, amplitude, batch)
    # Calibrated on DSADS torso exercise-bike recordings (tests/test_synthetic.py): the trunk rocks side to
    # side once per crank turn and bobs twice (mostly horizontal motion, a roll of a few degrees), waxing
    # and waning as the rider shifts on the saddle.
    rocking = amplitude * (1.0 + 0.4 * _slow_wander(batch, (0.11, 0.23, 0.41)))
    a_world[0] += 0.55 * rocking * np.cos(2 * crank)  # each pedal stroke pushes the pelvis up a little
    a_world[1] += 1.2 * rocking * np.sin(crank)  # side-to-side rocking on the saddle
    a_world[2] += 0.4 * rocking * np.sin(2 * crank + 0.5)  # fore-aft push of each stroke
    return a_world, _cycling_angles(segment_name, crank, rocking, batch)


def _cycling_angles(segment_name: str, crank: np.ndarray, rocking: np.ndarray, batch: _Batch) -> np.ndarray:
    """Angles [3, n, T] of a segment while pedalling (crank: crank angle, rad; sin(crank) = 1 at the top;
    rocking: the trunk's rocking amplitude, the user's amplitude factor for the shank and foot)."""
    amplitude = batch.amplitude[:, None]
    angles = np.zeros((3, *batch.time.shape), dtype=np.float32)
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
    elif segment_name in ("wrist", "finger"):  # hands on the bars: forearm nearly horizontal, steering
        angles[0] = np.deg2rad(70.0) + np.deg2rad(2.0) * np.sin(0.3 * crank)
        angles[2] = np.deg2rad(3.0) * np.sin(2 * np.pi * 0.25 * batch.time)
    elif segment_name == "upper arm":  # reaching forward to the bars
        angles[0] = np.deg2rad(50.0) + np.deg2rad(1.5) * np.sin(0.3 * crank)
        angles[2] = np.deg2rad(2.0) * np.sin(2 * np.pi * 0.25 * batch.time)
    elif segment_name == "head":  # the neck extends so the eyes see the road; half the trunk's rocking
        angles[0] = np.deg2rad(-5.0) + np.deg2rad(0.75) * rocking * np.sin(2 * crank)
        angles[1] = np.deg2rad(1.5) * rocking * np.sin(crank)
    # Shank and foot: knee flexion ~35-110 deg and an ankle range ~20 deg over a revolution (Ericson,
    # Nisell & Nemeth 1988, J Orthop Sports Phys Ther 9:273).
    elif segment_name == "shank":  # knee far ahead of the ankle at the top of the stroke
        angles[0] = np.deg2rad(-25.0) - np.deg2rad(20.0) * amplitude * np.sin(crank)
        angles[1] = np.deg2rad(2.0) * np.sin(crank + 0.4)
    elif segment_name == "foot":  # ankling: heel drops in the downstroke, toes point down in the upstroke
        angles[0] = np.deg2rad(-10.0) - np.deg2rad(10.0) * amplitude * np.cos(crank)
    else:
        raise DataError(f"generate_windows: no cycling model for the segment {segment_name!r}")
    return angles


def _pedal_circle(crank: np.ndarray, cadence: np.ndarray) -> np.ndarray:
    """World acceleration [3, n, T] of a foot on a pedal: a circle of the crank's radius (0.17 m, a common
    crank length) at the cadence, so a centripetal ~12 m/s^2 turning once per revolution. The ankle (band)
    sits ~0.1 m above the pedal on the rigid foot and follows nearly the same circle."""
    radius = 0.17
    centripetal = radius * (2 * np.pi * cadence) ** 2
    a_world = np.zeros((3, *crank.shape), dtype=np.float32)
    a_world[0] = -centripetal * np.sin(crank)  # pedal position: up r sin(crank), forward -r cos(crank)
    a_world[2] = centripetal * np.cos(crank)
    return a_world


def _jumping(segment_name: str, batch: _Batch) -> tuple[np.ndarray, np.ndarray]:
    """Repeated jumps in place (about 1.3-1.7 Hz): free fall in the air, large landing and push-off forces.

    During flight the accelerometer reads almost zero; on the ground a half-sine force whose mean over a
    cycle equals g (momentum balance), plus a landing spike.
    """
    jump_hz = 1.5 * batch.step_hz[:, None]
    cycle = jump_hz * batch.time + batch.phase[:, None]
    position = cycle % 1.0
    if segment_name in LOWER_LEG_SEGMENTS:
        return _lower_leg_jumping(segment_name, batch, position, jump_hz)
    contact_fraction = 0.5
    on_ground = position < contact_fraction
    peak = GRAVITY * np.pi / (2 * contact_fraction)  # half-sine mean over the cycle = g
    support = np.where(on_ground, peak * np.sin(np.pi * position / contact_fraction), 0.0)
    landing_time = position / jump_hz
    landing = 12.0 * (landing_time / 0.03) * np.exp(1 - landing_time / 0.03) * on_ground
    vertical = (support + landing * SEGMENTS[segment_name].impact_gain) * batch.amplitude[:, None]
    vertical += GRAVITY - vertical.mean(axis=1, keepdims=True)  # keep the cycle mean at exactly g
    a_world = np.zeros((3, *batch.time.shape), dtype=np.float32)
    a_world[0] = vertical - GRAVITY  # _sense adds gravity back
    angles = np.zeros_like(a_world)
    crouch = np.where(on_ground, np.sin(np.pi * position / contact_fraction) ** 2, 0.0)  # smooth at contact
    if segment_name in ("waist", "chest"):
        angles[0] = -np.deg2rad(5.0 + 10.0 * crouch)
    elif segment_name == "thigh":
        angles[0] = np.deg2rad(5.0 + 35.0 * crouch)
    elif segment_name in ("wrist", "finger"):  # arms swing up for take-off
        angles[0] = np.deg2rad(15.0 + 20.0 * crouch)
    elif segment_name == "upper arm":  # the shoulder lifts the arm for take-off
        angles[0] = np.deg2rad(5.0 + 25.0 * crouch)
    elif segment_name == "head":  # stays nearly upright, eyes ahead, while the trunk bends
        angles[0] = -np.deg2rad(3.0 + 4.0 * crouch)
    else:
        raise DataError(f"generate_windows: no jumping model for the segment {segment_name!r}")
    return a_world, angles


def _lower_leg_jumping(
    segment_name: str, batch: _Batch, position: np.ndarray, jump_hz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shank or foot in repeated jumps (position: share of the jump cycle, 0 at landing, take-off at 0.5).

    The foot rests on the ground (reads +g) from landing to take-off and falls freely with the body in
    flight (reads 0). It leaves the ground and lands at the take-off speed g * flight / 2 (~1.6 m/s): the
    landing stops it in one sharp transient (sharper the lower the sensor: rise 0.06 s / impact_gain, the
    foot ~10 ms, ~6 g), the ankle's push in the last part of the contact gives the rest of the impulse that
    keeps the cycle's mean at exactly g.
    """
    contact_fraction = 0.5
    on_ground = position < contact_fraction
    amplitude = batch.amplitude[:, None]
    landing_speed = GRAVITY * (1.0 - contact_fraction) / jump_hz / 2 * amplitude
    rise_time = 0.06 / SEGMENTS[segment_name].impact_gain
    since_landing = position / jump_hz / rise_time
    # its integral over time is landing_speed
    landing = landing_speed / (rise_time * np.e) * since_landing * np.exp(1 - since_landing)
    vertical = np.where(on_ground, GRAVITY, 0.0) + landing
    push_window = np.clip((position - 0.3) / (contact_fraction - 0.3), 0.0, 1.0)
    push = np.sin(np.pi * push_window) ** 2
    shortfall = GRAVITY - vertical.mean(axis=1, keepdims=True)
    vertical += shortfall * push / np.maximum(push.mean(axis=1, keepdims=True), 1e-6)
    a_world = np.zeros((3, *position.shape), dtype=np.float32)
    a_world[0] = vertical - GRAVITY  # _sense adds gravity back
    angles = np.zeros_like(a_world)
    crouch = np.where(on_ground, np.sin(np.pi * position / contact_fraction) ** 2, 0.0)
    if segment_name == "shank":  # the knees go forward over the toes as the body crouches
        angles[0] = -np.deg2rad(5.0 + 25.0 * crouch)
    else:  # toes first at landing, flat, heel up at take-off, toes pointed in flight
        knots, pitch_deg = (0.0, 0.1, 0.35, 0.5, 1.0), (-25.0, 0.0, 0.0, -35.0, -25.0)
        angles[0] = np.deg2rad(_eased_path(position, knots, pitch_deg))
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
