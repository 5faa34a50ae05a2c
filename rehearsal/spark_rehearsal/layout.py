"""Where a rehearsal fleet keeps its caches and its running state on the machine that hosts it, and the names and
addresses it takes there. A machine can hold several fleets side by side (one per `slot`): each has its own bridge,
subnet, namespaces, registry and fleet directory; they share the caches (root filesystems, image layers, CA, key)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SimError

DEFAULT_HOME = "/var/lib/spark-state-sim"
SLOT_ENV = "SPARK_STATE_SIM_SLOT"  # which fleet `spark-rehearsal`, inventory/sim.py and the tests mean
SLOTS = 8  # fleets side by side on one machine: 10.200.0.0/24 … 10.200.7.0/24
HOST_OFFSET = 11  # spark-01 gets .11
REGISTRY_NAME = "nvcr.io"
HUB_PORT = 8090
BACKEND_PORT = 15000  # the registry itself, on loopback: slot 0 here, slot N at 15000 + N
SSH_KEY_NAME = "id_ed25519"


def subnet(slot: int) -> str:
    return f"10.200.{slot}"  # the fleet's bridge network, /24


def gateway(slot: int) -> str:
    return f"{subnet(slot)}.1"  # the bridge's address: registry door and hub listen here


@dataclass(frozen=True)
class Layout:
    home: Path
    slot: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.slot < SLOTS:
            raise SimError(f"{SLOT_ENV} must be 0 to {SLOTS - 1}, not {self.slot}")

    @classmethod
    def default(cls) -> Layout:
        raw = os.environ.get(SLOT_ENV, "0")
        try:
            slot = int(raw)
        except ValueError:
            raise SimError(f"{SLOT_ENV} must be 0 to {SLOTS - 1}, not {raw!r}") from None
        return cls(Path(os.environ.get("SPARK_STATE_SIM_HOME", DEFAULT_HOME)), slot)

    # Caches, kept across `down`/`up` and shared by every slot.
    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def cache_lock(self) -> Path:
        return self.cache / ".lock"

    @property
    def registry_dir(self) -> Path:
        # One store per slot: a test that re-pushes a tag on one fleet must not change what another fleet pulls.
        return self.cache / "registry" / f"slot-{self.slot}"

    @property
    def ca_dir(self) -> Path:
        return self.cache / "ca"

    @property
    def ssh_key(self) -> Path:
        return self.cache / "ssh" / SSH_KEY_NAME

    # The running fleet, removed by `down`.
    @property
    def fleet(self) -> Path:
        return self.home / ("fleet" if self.slot == 0 else f"fleet-{self.slot}")

    @property
    def fleet_file(self) -> Path:
        return self.fleet / "fleet.json"

    def host_dir(self, name: str) -> Path:
        return self.fleet / "hosts" / name

    # Its names and addresses on this machine.
    @property
    def gateway(self) -> str:
        return gateway(self.slot)

    @property
    def bridge(self) -> str:
        return f"ssim{self.slot}"

    @property
    def netns_prefix(self) -> str:
        return f"ssim{self.slot}-"

    @property
    def veth_prefix(self) -> str:
        return f"ssim{self.slot}h"

    @property
    def backend(self) -> str:
        return f"127.0.0.1:{BACKEND_PORT + self.slot}"  # only this machine reaches the registry itself

    def host_address(self, index: int) -> str:
        return f"{subnet(self.slot)}.{HOST_OFFSET + index}"

    def machine_name(self, index: int) -> str:
        """systemd-nspawn's name for the machine (its /run/systemd/nspawn entries): unique across slots, while
        the host's own hostname is host_name(index) in every fleet."""
        return f"{self.bridge}-{host_name(index)}"


def host_name(index: int) -> str:
    return f"spark-{index + 1:02d}"
