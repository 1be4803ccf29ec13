"""Which local data each simulated client holds: data set, users, device type, train/eval split.

In simulation every node only knows its `partition-id` and `num-partitions`, so everything else is derived
here from those two numbers and the run config, deterministically (same seed, same clients). In a deployment,
`--node-config` may name `device-type`, `data-set` and `user` directly (see `client_spec_from_node_config`).

A client's windows are split in time: the earlier windows of each recording are its unlabeled training
windows, the later ones its held-out evaluation windows. The two never overlap, and evaluation labels are used
only for scoring on the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from common.data import DataError, WindowSet, load_dataset
from common.devices import DeviceType, apply_device, load_device_type
from common.run_config import FederationConfig, split_list
from common.synthetic import generate_windows

NATIVE_DEVICE = "native"  # real data as recorded: no simulated device transform


@dataclass(frozen=True)
class ClientSpec:
    partition_id: int
    num_partitions: int
    device_type: str  # a configs/devices name, or "native"
    data_set: str  # "synthetic" or a data set name
    users: tuple[int, ...] = ()  # real data: the users this client holds ("" = decided by partitioning)


@dataclass
class ClientData:
    spec: ClientSpec
    train: WindowSet  # unlabeled: y is all -1
    eval: WindowSet  # labeled, for scoring only


def client_spec(partition_id: int, num_partitions: int, config: FederationConfig) -> ClientSpec:
    """Device types are assigned round-robin; real data sets too (clients of one set get its users)."""
    device_types = config.device_type_list
    data_sets = config.clients_data_list
    return ClientSpec(
        partition_id=partition_id,
        num_partitions=num_partitions,
        device_type=device_types[partition_id % len(device_types)],
        data_set=data_sets[partition_id % len(data_sets)],
    )


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
    return ClientSpec(
        partition_id=partition_id,
        num_partitions=num_partitions,
        device_type=str(node_config.get("device-type", spec.device_type)),
        data_set=str(node_config.get("data-set", spec.data_set)),
        users=users,
    )


def load_client_data(spec: ClientSpec, config: FederationConfig) -> ClientData:
    """The client's local windows for its spec, device transform applied, split into train/eval in time."""
    seed = config.seed * 100_003 + spec.partition_id
    if spec.data_set == "synthetic":
        device = load_device_type(spec.device_type)
        n_windows = config.windows_per_client or device.windows
        per_activity = max(4, n_windows // len(config.all_activities))
        windows = generate_windows(config.all_activities, per_activity, device=device, seed=seed, n_users=1)
    else:
        windows = _real_client_windows(spec, config)
        if spec.device_type != NATIVE_DEVICE:
            windows = apply_device(windows, load_device_type(spec.device_type), seed=seed)
    train, held_out = split_in_time(windows, config.client_eval_fraction)
    unlabeled = train.subset(np.arange(len(train)))
    unlabeled.y = np.full(len(unlabeled), -1, dtype=np.int64)
    return ClientData(spec=spec, train=unlabeled, eval=held_out)


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


def _real_client_windows(spec: ClientSpec, config: FederationConfig) -> WindowSet:
    windows = _load_for_clients(spec.data_set, config.data_dir, tuple(config.all_activities))
    if spec.users:
        return windows.subset(np.flatnonzero(np.isin(windows.user, spec.users)))
    # The clients that share this data set (round-robin over data sets) split it among themselves.
    data_sets = config.clients_data_list
    peers = [p for p in range(spec.num_partitions) if data_sets[p % len(data_sets)] == spec.data_set]
    index = partition_indices(windows, len(peers), config.partitioning, config.dirichlet_alpha, config.seed)
    own = index[peers.index(spec.partition_id)]
    if len(own) == 0:
        raise DataError(
            f"client {spec.partition_id}: no windows of '{spec.data_set}' left for it "
            f"({len(peers)} clients share {len(windows)} windows); use fewer clients"
        )
    return windows.subset(own)


@lru_cache(maxsize=4)
def _load_for_clients(name: str, data_dir: str, activities: tuple[str, ...]) -> WindowSet:
    """A data set restricted to the run's activities it has (loaded once per process: clients share it)."""
    windows = load_dataset(name, data_dir)
    present = [a for a in activities if a in windows.label_names]
    if not present:
        raise DataError(
            f"data set '{name}': none of the run's activities {list(activities)} is among its labels "
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
            groups = [users[i::num_clients] for i in range(num_clients)]
            return [np.flatnonzero(np.isin(ws.user, g)) for g in groups]
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


__all__ = [
    "ClientData",
    "ClientSpec",
    "DeviceType",
    "client_spec",
    "client_spec_from_node_config",
    "load_client_data",
    "partition_indices",
    "split_in_time",
]
