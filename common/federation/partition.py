"""Which local data each simulated client holds: data set, users, device type, train/eval split.

In simulation a node knows only its `partition-id` and `num-partitions`; everything else is derived here
from those and the run config, deterministically. In a deployment `--node-config` may pin `device-type`,
`data-set` and `users` (`client_spec_from_node_config`).

How clients are scored (run config `client-eval`):

- "held-out-users" (default; real data): users are split as the central run splits its target
  (`held_out_user_split`), so both score the same users. The clients sharing the data set are split in the
  same proportion: the last ones hold only held-out users (dealt whole) and only evaluate; the others hold
  only training users (dealt by `partitioning`) and only train.
- "time": each client's earlier windows of each recording train, the later ones evaluate.
Synthetic clients always split in time (one user each, none to hold out). Training windows are unlabeled;
a real client trains on every window its users recorded, whatever the activity (no label decides what a
device holds), and scores only the windows of the run's activities, whose truth the label bank can name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from common.data.device_data import device_recordings
from common.data.devices import DeviceType, apply_device, load_device_type
from common.data.errors import DataError
from common.data.label_spaces import label_merges, merged_names, rename_labels
from common.data.loading import dataset_labels, load_dataset
from common.data.synthetic import generate_windows
from common.data.windows import WindowSet, split_by_user
from common.federation.mixed import (
    SYNTHETIC,
    client_data_sets,
    client_group,
    parse_clients_data,
    real_data_sets,
    uses_user_layout,
)
from common.federation.run_config import FederationConfig, split_list
from common.method.lanhar import to_walking_frame

NATIVE_DEVICE = "native"  # real data as recorded: no simulated device transform
# Client roles. A "time" client both trains (early windows) and evaluates (late windows).
TRAIN, EVALUATE, TRAIN_AND_EVALUATE = "train", "evaluate", "train+evaluate"


@dataclass(frozen=True)
class ClientSpec:
    partition_id: int
    num_partitions: int
    device_type: str  # a configs/devices name, or "native"
    data_set: str  # "synthetic" or a data set name
    users: tuple[int, ...] = ()  # real data: the users this client holds (() = decided by partitioning)
    share: int = 0  # clients-per-user > 1: which of the `shares` clients of its user this one is
    shares: int = 1


@dataclass
class ClientData:
    spec: ClientSpec
    train: WindowSet  # unlabeled: y is all -1 (empty for an evaluation client)
    eval: WindowSet  # labeled, for scoring only (empty for a training client)
    role: str = TRAIN_AND_EVALUATE  # TRAIN, EVALUATE or TRAIN_AND_EVALUATE
    split: str = "time"  # "time" or "held-out-users"

    @property
    def trains(self) -> bool:
        return len(self.train) > 0

    @property
    def evaluates(self) -> bool:
        return len(self.eval) > 0


@dataclass(frozen=True)
class UserSplit:
    """The held-out-users split of one real data set: the central run's target split."""

    data_set: str
    train_users: tuple[int, ...]
    eval_users: tuple[int, ...]
    activities: tuple[str, ...]  # the activity set the split was drawn on (as central's load_pair)
    eval_fraction: float
    seed: int

    def as_dict(self) -> dict:
        return {
            "split": "held-out-users",
            "train_users": list(self.train_users),
            "eval_users": list(self.eval_users),
            "activities": list(self.activities),
            "eval_users_fraction": self.eval_fraction,
            "seed": self.seed,
        }


def client_spec(partition_id: int, num_partitions: int, config: FederationConfig) -> ClientSpec:
    """Device types are assigned round-robin; real data sets too (clients of one set get its users).

    With the user layout (common/federation/mixed.py) the partitions are the slots of `user_layout_slots`.
    """
    if uses_user_layout(config):
        return user_layout_spec(partition_id, num_partitions, config)
    device_types = config.device_type_list
    data_sets = config.clients_data_list
    return ClientSpec(
        partition_id=partition_id,
        num_partitions=num_partitions,
        device_type=device_types[partition_id % len(device_types)],
        data_set=data_sets[partition_id % len(data_sets)],
    )


@lru_cache(maxsize=8)
def user_layout_slots(config: FederationConfig) -> tuple[tuple[str, tuple[int, ...], int, int], ...]:
    """The real clients of the user layout, in partition order: (data set, users, share, shares).

    Every user of every real set in clients-data, `clients-per-user` clients each (training users first,
    then held-out users, per set in clients-data order). The server's source users are never clients: when
    the source is one of the sets, only its held-out users are (the server holds its training users).
    """
    per_user = max(config.clients_per_user, 1)
    slots = []
    for data_set in real_data_sets(config):
        if client_eval_mode(data_set, config) == "held-out-users":
            split = held_out_user_split(data_set, config)
            train_users, eval_users = split.train_users, split.eval_users
            if config.users_per_data_set:
                train_users = train_users[: config.users_per_data_set]
                eval_users = eval_users[: config.users_per_data_set]
            users = eval_users if data_set == config.source else train_users + eval_users
        else:
            if data_set == config.source:
                raise DataError(
                    f"clients-data '{data_set}' is the server's source: with client-eval 'time' every one of "
                    "its users would be both on the server and a client; use client-eval 'held-out-users'"
                )
            users = tuple(int(u) for u in np.unique(load_dataset(data_set, config.data_dir).user))
            users = users[: 2 * config.users_per_data_set] if config.users_per_data_set else users
        slots.extend((data_set, (user,), share, per_user) for user in users for share in range(per_user))
    return tuple(slots)


def user_layout_spec(partition_id: int, num_partitions: int, config: FederationConfig) -> ClientSpec:
    """Partition `partition_id` of the user layout: a real user's client, else a synthetic client."""
    real = user_layout_slots(config)
    if partition_id < len(real):
        data_set, users, share, shares = real[partition_id]
        return ClientSpec(partition_id, num_partitions, NATIVE_DEVICE, data_set, users, share, shares)
    synthetic = [s for s in parse_clients_data(config) if s.synthetic]
    if not synthetic:
        raise DataError(
            f"client {partition_id}: clients-data '{config.clients_data}' makes {len(real)} real clients "
            f"(clients-per-user {max(config.clients_per_user, 1)}) and has no synthetic entry for the "
            f"{num_partitions - len(real)} other partitions; run {len(real)} clients (num-supernodes)"
        )
    index = partition_id - len(real)
    source = synthetic[index % len(synthetic)]
    device_types = config.device_type_list
    device = source.device_type or device_types[(index // len(synthetic)) % len(device_types)]
    return ClientSpec(partition_id, num_partitions, device, source.data_set)


def synthetic_device_types(config: FederationConfig) -> list[str]:
    """The device types a synthetic client can be given, each once, in run-config order: what client_spec
    and user_layout_spec deal (a pinned "synthetic:<device>" entry, else the run's device types in turn)."""
    sources = parse_clients_data(config)
    device_types = config.device_type_list
    if uses_user_layout(config):
        pinned = [source.device_type for source in sources if source.synthetic and source.device_type]
        unpinned = any(source.synthetic and not source.device_type for source in sources)
        return list(dict.fromkeys(pinned + (device_types if unpinned else [])))
    # Round-robin over both lists: the pairs that partitions 0 .. lcm - 1 get are all the pairs there are.
    data_sets = config.clients_data_list
    pairs = (
        (device_types[p % len(device_types)], data_sets[p % len(data_sets)])
        for p in range(math.lcm(len(device_types), len(data_sets)))
    )
    return list(dict.fromkeys(device for device, data_set in pairs if data_set == SYNTHETIC))


def client_spec_from_node_config(node_config: Mapping[str, object], config: FederationConfig) -> ClientSpec:
    """Simulation gives partition-id/num-partitions; a deployment may also pin device type, data set, user."""
    if "partition-id" not in node_config or "num-partitions" not in node_config:
        raise DataError("node config: needs 'partition-id' and 'num-partitions' (e.g. --node-config ...)")
    partition_id = int(node_config["partition-id"])
    num_partitions = int(node_config["num-partitions"])
    if not 0 <= partition_id < num_partitions:
        raise DataError(f"node config: 'partition-id' {partition_id} outside 0..{num_partitions - 1}")
    spec = client_spec(partition_id, num_partitions, config)
    users = tuple(int(u) for u in split_list(str(node_config.get("users", ""))))
    return replace(
        spec,
        device_type=str(node_config.get("device-type", spec.device_type)),
        data_set=str(node_config.get("data-set", spec.data_set)),
        users=users or spec.users,
        share=spec.share if not users else 0,
        shares=spec.shares if not users else 1,
    )


def client_eval_mode(data_set: str, config: FederationConfig) -> str:
    """The split the clients of `data_set` use: synthetic data always splits in time (no user to hold out)."""
    return "time" if data_set == "synthetic" else config.client_eval


def load_client_data(spec: ClientSpec, config: FederationConfig) -> ClientData:
    """The client's local windows for its spec, device transform applied, split into train and eval."""
    seed = config.seed * 100_003 + spec.partition_id
    split = client_eval_mode(spec.data_set, config)
    device = load_device_type(spec.device_type) if spec.data_set == "synthetic" else None
    if device is not None and device.data:  # a device type with its own recordings
        windows, role, split = _recorded_client_windows(spec, device, config)
    elif device is not None:
        n_windows = config.windows_per_client or device.windows
        per_activity = max(4, n_windows // len(config.all_activities))
        windows = generate_windows(config.all_activities, per_activity, device=device, seed=seed, n_users=1)
        role = TRAIN_AND_EVALUATE
    else:
        windows, role = _real_client_windows(spec, config)
        if spec.shares > 1:  # one of several clients of one user: whole recordings, dealt among them
            index = (
                deal_whole_users(windows, spec.shares)
                if role == EVALUATE
                else partition_indices(windows, spec.shares, "by-user", config.dirichlet_alpha, config.seed)
            )[spec.share]
            if len(index) == 0:
                raise DataError(
                    f"client {spec.partition_id}: user {list(spec.users)} of '{spec.data_set}' has too few "
                    f"recordings for {spec.shares} clients (clients-per-user)"
                )
            windows = windows.subset(index)
        if spec.device_type != NATIVE_DEVICE:
            windows = apply_device(windows, load_device_type(spec.device_type), seed=seed)
    if config.walking_frame:  # the device turns what it recorded, as worn, from its own rhythmic windows
        windows = to_walking_frame(windows)
    if role == TRAIN_AND_EVALUATE:
        train, held_out = split_in_time(windows, config.client_eval_fraction)
    elif role == TRAIN:
        train, held_out = windows, windows.subset(np.arange(0))
    else:
        train, held_out = windows.subset(np.arange(0)), windows
    if held_out.label_names:  # recordings without any label have nothing to score
        held_out = run_activities(held_out, config.all_activities)
    unlabeled = train.subset(np.arange(len(train)))
    unlabeled.y = np.full(len(unlabeled), -1, dtype=np.int64)
    return ClientData(spec=spec, train=unlabeled, eval=held_out, role=role, split=split)


def held_out_user_split(data_set: str, config: FederationConfig) -> UserSplit:
    """The central run's target split of `data_set` (simulations/central.py load_pair): split_by_user on
    the run's initial activities that both the server's source and `data_set` have, same fraction and seed.
    """
    return _user_split(
        data_set,
        config.data_dir,
        tuple(config.activity_list),
        config.source,
        config.eval_users_fraction,
        config.seed,
    )


@lru_cache(maxsize=8)
def _user_split(
    data_set: str, data_dir: str, activities: tuple[str, ...], source: str, fraction: float, seed: int
) -> UserSplit:
    windows = load_dataset(data_set, data_dir)
    source_labels = activities if source == "synthetic" else dataset_labels(source, data_dir)
    # As central's pair_label_space: a set that mixes stairs makes both sides compare in merged names.
    merge = label_merges(windows.label_names) | label_merges(source_labels)
    windows = rename_labels(windows, merge)
    source_labels = merged_names(source_labels, merge)
    activities = tuple(merged_names(activities, merge))
    shared = [a for a in activities if a in source_labels and a in windows.label_names]
    if len(shared) < 2:
        raise DataError(
            f"client-eval 'held-out-users': only {shared} of the activities {list(activities)} are shared by "
            f"the source '{source}' and '{data_set}' ({windows.label_names})"
        )
    train, held_out = split_by_user(windows.select_activities(shared), fraction, seed)
    return UserSplit(
        data_set=data_set,
        train_users=tuple(int(u) for u in np.unique(train.user)),
        eval_users=tuple(int(u) for u in np.unique(held_out.user)),
        activities=tuple(shared),
        eval_fraction=fraction,
        seed=seed,
    )


def evaluation_plan(config: FederationConfig) -> dict[str, dict]:
    """Per client data set, which split scores it (and, for held-out users, which users): for metrics.json."""
    plan: dict[str, dict] = {}
    for data_set in client_data_sets(config):
        if client_eval_mode(data_set, config) == "held-out-users":
            plan[data_set] = held_out_user_split(data_set, config).as_dict()
        else:
            plan[data_set] = {"split": "time", "client_eval_fraction": config.client_eval_fraction}
    for name in synthetic_device_types(config):  # those with their own recordings are split as real data
        if _has_recordings(name):
            plan[client_group(SYNTHETIC, name)] = _recorded_plan(load_device_type(name), config)
    return plan


def _has_recordings(name: str) -> bool:
    """Whether device type `name` brings recordings; False for one that does not load (a pinned type the
    preflight did not check: its clients refuse, refused_clients in metrics.json says why)."""
    try:
        return bool(load_device_type(name).data)
    except DataError:
        return False


def _recorded_plan(device: DeviceType, config: FederationConfig) -> dict:
    """evaluation_plan's entry for a device type with recordings (how _recorded_client_windows splits)."""
    entry: dict = {"recordings": device.data}
    try:
        labeled = bool((device_recordings(device).y >= 0).any())
        held_out_users = labeled and config.client_eval == "held-out-users"
        train_users, eval_users = recorded_user_split(device, config) if held_out_users else ((), ())
    except DataError as error:  # the clients of the type refuse with this reason (refused_clients)
        return {"split": "none (its clients refuse)", "error": str(error), **entry}
    if not labeled:
        return {"split": "none (unlabeled recordings: every client trains)", **entry}
    if not held_out_users:
        return {"split": "time", "client_eval_fraction": config.client_eval_fraction, **entry}
    return {
        "split": "held-out-users",
        "train_users": list(train_users),
        "eval_users": list(eval_users),
        "eval_users_fraction": config.eval_users_fraction,
        "seed": config.seed,
        **entry,
    }


def evaluation_peers(num_peers: int, num_users: int, num_eval_users: int) -> int:
    """How many of the clients sharing a data set hold held-out users: the users' proportion, >= 1 each."""
    if num_peers < 2:
        raise DataError(
            f"client-eval 'held-out-users' needs at least 2 clients per real data set (one trains, one "
            f"evaluates), got {num_peers}; use more clients or client-eval='time'"
        )
    return min(max(int(round(num_peers * num_eval_users / num_users)), 1), num_peers - 1)


def split_in_time(ws: WindowSet, eval_fraction: float) -> tuple[WindowSet, WindowSet]:
    """Per recording (segment), the first windows train and the last `eval_fraction` evaluate.

    Used on clients, which often hold a single recording per activity, so a split by segment would move whole
    activities to one side. Windows are non-overlapping, so no sample is on both sides.
    """
    eval_mask = np.zeros(len(ws), dtype=bool)
    for segment in np.unique(ws.segment):
        index = np.flatnonzero(ws.segment == segment)  # stored in time order within a recording
        n_eval = int(round(len(index) * eval_fraction))
        if len(index) >= 2:
            n_eval = min(max(n_eval, 1), len(index) - 1)
            eval_mask[index[len(index) - n_eval :]] = True
    if not eval_mask.any() or eval_mask.all():
        raise DataError(
            f"client data '{ws.name}': {len(ws)} windows are too few to split into train and eval"
        )
    return ws.subset(np.flatnonzero(~eval_mask)), ws.subset(np.flatnonzero(eval_mask))


def _real_client_windows(spec: ClientSpec, config: FederationConfig) -> tuple[WindowSet, str]:
    """The client's windows of its real data set and its role (see the module docstring)."""
    windows = _load_for_clients(spec.data_set, config.data_dir)
    held_out_users = client_eval_mode(spec.data_set, config) == "held-out-users"
    split = held_out_user_split(spec.data_set, config) if held_out_users else None
    users = (split.train_users, split.eval_users) if split is not None else None
    # The clients that share this data set (round-robin over data sets) split it among themselves.
    data_sets = config.clients_data_list
    peers = [p for p in range(spec.num_partitions) if data_sets[p % len(data_sets)] == spec.data_set]
    return _client_share(spec, windows, users, peers, config, f"'{spec.data_set}'")


def _recorded_client_windows(
    spec: ClientSpec, device: DeviceType, config: FederationConfig
) -> tuple[WindowSet, str, str]:
    """A client of a device type with its own recordings: its share of them, its role and split.

    The clients of the device type share its recordings as the clients of a real data set share it: with
    client-eval "held-out-users" the users are split (split_by_user) and the evaluation clients hold only
    held-out users; with "time" each client splits its windows in time. Recordings without any label are
    only trained on: every client of the type trains, on whole users.
    """
    windows = device_recordings(device)
    specs = [client_spec(p, spec.num_partitions, config) for p in range(spec.num_partitions)]
    same_type = [
        s.partition_id for s in specs if (s.data_set, s.device_type) == (spec.data_set, spec.device_type)
    ]
    peers = sorted({spec.partition_id, *same_type})  # a node config may pin the device type of any partition
    source = f"the recordings {device.data} of device type '{device.name}'"
    if not (windows.y >= 0).any():  # nothing to score: every client of the type trains, on whole users
        if spec.users:
            own = np.flatnonzero(np.isin(windows.user, spec.users))
        else:
            own = deal_whole_users(windows, len(peers))[peers.index(spec.partition_id)]
        if len(own) == 0:
            raise DataError(
                f"client {spec.partition_id}: no windows of {source} left for it; use fewer clients"
            )
        return windows.subset(own), TRAIN, config.client_eval
    if config.client_eval != "held-out-users":
        return (*_client_share(spec, windows, None, peers, config, source), "time")
    users = recorded_user_split(device, config)
    return (*_client_share(spec, windows, users, peers, config, source), "held-out-users")


def recorded_user_split(
    device: DeviceType, config: FederationConfig
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(training users, held-out users) of a device type's recordings: split_by_user, the run's fraction and
    seed (client-eval "held-out-users")."""
    windows = device_recordings(device)
    if len(np.unique(windows.user)) < 2:
        raise DataError(
            f"{device.data}: field 'user' holds a single user; client-eval 'held-out-users' evaluates on "
            "users no client trains on: record at least 2 users, or use client-eval='time'"
        )
    train, held_out = split_by_user(windows, config.eval_users_fraction, config.seed)
    return tuple(np.unique(train.user).tolist()), tuple(np.unique(held_out.user).tolist())


def _client_share(
    spec: ClientSpec,
    windows: WindowSet,
    users: tuple[tuple[int, ...], tuple[int, ...]] | None,
    peers: list[int],
    config: FederationConfig,
    source: str,
) -> tuple[WindowSet, str]:
    """The client's share of the ``windows`` its ``peers`` (partition ids, itself included) share, and
    its role. ``users``: (training users, held-out users) for client-eval "held-out-users", else None."""
    if spec.users:
        own = windows.subset(np.flatnonzero(np.isin(windows.user, spec.users)))
        if users is None:
            return own, TRAIN_AND_EVALUATE
        train_users, eval_users = users
        held = set(spec.users) & set(eval_users)
        if held and held != set(spec.users):
            raise DataError(
                f"node config 'users' {list(spec.users)}: mixes held-out users {sorted(held)} with training "
                f"users (client-eval 'held-out-users' holds out {list(eval_users)} of "
                f"{source}); pin users of one side, or use client-eval='time'"
            )
        return own, EVALUATE if held else TRAIN
    if users is None:
        role, side, side_peers = TRAIN_AND_EVALUATE, windows, peers
        index = partition_indices(side, len(peers), config.partitioning, config.dirichlet_alpha, config.seed)
    else:
        train_users, eval_users = users
        n_users = len(train_users) + len(eval_users)
        n_eval = evaluation_peers(len(peers), n_users, len(eval_users))
        if spec.partition_id in peers[len(peers) - n_eval :]:
            role, side_peers = EVALUATE, peers[len(peers) - n_eval :]
            side = windows.subset(np.flatnonzero(np.isin(windows.user, eval_users)))
            index = deal_whole_users(side, len(side_peers))
        else:
            role, side_peers = TRAIN, peers[: len(peers) - n_eval]
            side = windows.subset(np.flatnonzero(np.isin(windows.user, train_users)))
            index = partition_indices(
                side, len(side_peers), config.partitioning, config.dirichlet_alpha, config.seed
            )
    own = index[side_peers.index(spec.partition_id)]
    if len(own) == 0:
        raise DataError(
            f"client {spec.partition_id}: no windows of {source} left for it "
            f"({len(side_peers)} clients share {len(side)} windows); use fewer clients"
        )
    return side.subset(own), role


def deal_whole_users(ws: WindowSet, num_clients: int) -> list[np.ndarray]:
    """Window indices per client covering EVERY window: users dealt round-robin; with more clients than
    users, the recordings (ordered by user) are cut into `num_clients` consecutive runs."""
    users = np.unique(ws.user)
    if num_clients <= len(users):
        return [np.flatnonzero(np.isin(ws.user, users[i::num_clients])) for i in range(num_clients)]
    order = np.lexsort((ws.segment, ws.user))
    segments = list(dict.fromkeys(ws.segment[order].tolist()))  # by user, then recording
    chunks = np.array_split(np.array(segments), num_clients)
    return [np.flatnonzero(np.isin(ws.segment, chunk)) for chunk in chunks]


@lru_cache(maxsize=4)
def _load_for_clients(name: str, data_dir: str) -> WindowSet:
    """Every window of a real data set, loaded once per process (the clients of a process share it)."""
    return load_dataset(name, data_dir)


def run_activities(windows: WindowSet, activities: list[str] | tuple[str, ...]) -> WindowSet:
    """The windows of the run's `activities` (the scored ones); a set that mixes stairs keeps its "stairs"
    windows when the run has upstairs or downstairs."""
    present = [
        a for a in merged_names(activities, label_merges(windows.label_names)) if a in windows.label_names
    ]
    if not present:
        raise DataError(
            f"data set '{windows.name}': none of the run's activities {list(activities)} is among its labels "
            f"{windows.label_names}"
        )
    return windows.select_activities(present)


def partition_indices(
    ws: WindowSet, num_clients: int, partitioning: str, dirichlet_alpha: float, seed: int
) -> list[np.ndarray]:
    """Window indices per client. Whole recordings (segments) move together so neighbours never straddle.

    by-user: users are dealt round-robin; with more clients than users, each user's recordings are dealt
    among several clients. iid: recordings shuffled and dealt. dirichlet: for every class, the share each
    client gets is drawn from Dirichlet(alpha) (small alpha = strong label skew).
    """
    rng = np.random.default_rng(seed)
    segments = np.unique(ws.segment)
    if partitioning == "by-user":
        users = np.unique(ws.user)
        if num_clients <= len(users):
            return deal_whole_users(ws, num_clients)
        shards_per_user = -(-num_clients // len(users))
        shards: list[np.ndarray] = []
        for user in users:
            user_segments = np.unique(ws.segment[ws.user == user])
            for k in range(shards_per_user):
                shards.append(np.flatnonzero(np.isin(ws.segment, user_segments[k::shards_per_user])))
        return shards[:num_clients]
    if partitioning == "iid":
        order = rng.permutation(segments)
        return [np.flatnonzero(np.isin(ws.segment, order[i::num_clients])) for i in range(num_clients)]
    if partitioning == "dirichlet":
        owner = np.empty(len(segments), dtype=np.int64)
        segment_label = np.array([np.bincount(ws.y[ws.segment == s]).argmax() for s in segments])
        for label in np.unique(segment_label):
            members = rng.permutation(np.flatnonzero(segment_label == label))
            shares = rng.dirichlet(np.full(num_clients, dirichlet_alpha))
            owner[members] = rng.choice(num_clients, size=len(members), p=shares)
        return [np.flatnonzero(np.isin(ws.segment, segments[owner == i])) for i in range(num_clients)]
    raise DataError(f"partitioning '{partitioning}' unknown; use by-user, iid or dirichlet")
