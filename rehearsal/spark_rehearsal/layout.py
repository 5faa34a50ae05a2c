"""Where the rehearsal fleet keeps its caches and its running state on the machine that hosts it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "/var/lib/spark-state-sim"
SUBNET = "10.200.0"  # the fleet's bridge network, /24
BRIDGE = "ssim0"
GATEWAY = f"{SUBNET}.1"  # the bridge's address: registry and hub listen here
HOST_OFFSET = 11  # spark-01 gets .11
REGISTRY_NAME = "nvcr.io"
HUB_PORT = 8090
SSH_KEY_NAME = "id_ed25519"


@dataclass(frozen=True)
class Layout:
    home: Path

    @classmethod
    def default(cls) -> Layout:
        return cls(Path(os.environ.get("SPARK_STATE_SIM_HOME", DEFAULT_HOME)))

    # Caches, kept across `down`/`up`.
    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def registry_dir(self) -> Path:
        return self.cache / "registry"

    @property
    def ca_dir(self) -> Path:
        return self.cache / "ca"

    # The running fleet, removed by `down`.
    @property
    def fleet(self) -> Path:
        return self.home / "fleet"

    @property
    def fleet_file(self) -> Path:
        return self.fleet / "fleet.json"

    @property
    def ssh_key(self) -> Path:
        return self.cache / "ssh" / SSH_KEY_NAME

    def host_dir(self, name: str) -> Path:
        return self.fleet / "hosts" / name


def host_name(index: int) -> str:
    return f"spark-{index + 1:02d}"


def host_address(index: int) -> str:
    return f"{SUBNET}.{HOST_OFFSET + index}"
