"""Mixed federations: several real data sets and synthetic device types in one run config.

`clients-data = "dsads_torso,dsads_rightleg,wisdm_phone,synthetic:wrist_watch"` lists where clients come from:
a real data set by its name (every user becomes `clients-per-user` clients, recorded as is: device type
"native", placement and rate from the file), or "synthetic" / "synthetic:<device type>" (synthetic clients of
the run's device types, or of that one). Which partition gets which user is in common/federation/partition.py
(`user_layout_slots`); this module only reads the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.data.label_spaces import scoring_labels
from common.data.loading import dataset_labels
from common.federation.run_config import FederationConfig

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class ClientSource:
    """One entry of clients-data."""

    data_set: str  # "synthetic" or a data set name
    device_type: str = ""  # "synthetic:<device>" entries: the device; "" = the run's device types / native

    @property
    def synthetic(self) -> bool:
        return self.data_set == SYNTHETIC


def parse_clients_data(config: FederationConfig) -> list[ClientSource]:
    """The entries of clients-data, in order ("synthetic:wrist_watch" -> synthetic, device wrist_watch)."""
    sources = []
    for entry in config.clients_data_list:
        data_set, _, device = entry.partition(":")
        if device and data_set != SYNTHETIC:
            raise ValueError(
                f"run config: clients-data entry '{entry}': only synthetic entries name a device type "
                "(real data is used as recorded)"
            )
        sources.append(ClientSource(data_set=data_set, device_type=device))
    return sources


def real_data_sets(config: FederationConfig) -> list[str]:
    """The real data sets clients hold, each once, in clients-data order."""
    return list(dict.fromkeys(s.data_set for s in parse_clients_data(config) if not s.synthetic))


def client_data_sets(config: FederationConfig) -> list[str]:
    """Every data set clients hold ("synthetic" once for all synthetic entries), in clients-data order."""
    return list(dict.fromkeys(s.data_set for s in parse_clients_data(config)))


def uses_user_layout(config: FederationConfig) -> bool:
    """One client per user (clients-per-user > 0), or a synthetic entry pinned to a device type."""
    return config.clients_per_user > 0 or any(s.device_type for s in parse_clients_data(config))


def client_group(data_set: str, device_type: str) -> str:
    """The name results are broken down by: the data set for real data as recorded, else data set:device."""
    return data_set if device_type in ("", "native") else f"{data_set}:{device_type}"


def run_scoring_labels(config: FederationConfig, labels: list[str]) -> list[str]:
    """The index space of the clients' confusion counts: the run's labels plus the merged names a client's
    data set scores instead (a set with one mixed "stairs" class), derived from the sets' label names."""
    return scoring_labels(labels, [dataset_labels(name, config.data_dir) for name in real_data_sets(config)])
