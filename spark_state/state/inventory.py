"""pyinfra inventories from the state file: the real fleet, at the addresses it declares (the rehearsal fleet's
inventory is spark_state.sim.inventory). Each host carries `spark_host`, its name in the state file, so the
deploy plans it the same way wherever it runs."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

from ..errors import InventoryError
from .loader import load_state
from .model import State

STATE_ENV = "SPARK_STATE_FILE"
DEFAULT_STATE = "inventory/state.yaml"

HostEntry = tuple[str, dict[str, Any]]


def state_path(override: str | None = None) -> Path:
    """The state file: an explicit path, else $SPARK_STATE_FILE, else inventory/state.yaml."""
    return Path(override or os.environ.get(STATE_ENV) or DEFAULT_STATE)


def ssh_data(state: State, name: str) -> dict[str, Any]:
    host = state.hosts[name]
    data: dict[str, Any] = {"spark_host": name, "ssh_user": host.ssh_user, "ssh_port": host.ssh_port}
    if host.ssh_key:
        data["ssh_key"] = host.ssh_key
    return data


def real_hosts(state: State) -> list[HostEntry]:
    return [(host.address, ssh_data(state, name)) for name, host in state.hosts.items()]


def load_entries(inventory_file: str | Path) -> list[HostEntry]:
    """The (address, data) entries an inventory file (like inventory/sim.py) defines, in order."""
    namespace = runpy.run_path(str(inventory_file))
    entries: list[HostEntry] = []
    for value in namespace.values():
        if isinstance(value, list) and value and all(
            isinstance(e, tuple) and len(e) == 2 and isinstance(e[1], dict) and "spark_host" in e[1] for e in value
        ):
            entries.extend(e for e in value if e not in entries)
    if not entries:
        raise InventoryError(f"{inventory_file} defines no spark-state hosts")
    return entries


def load(inventory_file: str | Path | None, state_file: str | Path | None = None) -> tuple[State, list[HostEntry]]:
    state = load_state(state_path(str(state_file) if state_file else None)).state
    entries = load_entries(inventory_file) if inventory_file else real_hosts(state)
    return state, entries
