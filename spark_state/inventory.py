"""pyinfra inventories from the state file: the real fleet, at the addresses it declares (the rehearsal fleet's
inventory is spark_rehearsal.hosts).

pyinfra hosts are named as the state names them (`spark-01`), with the address as `ssh_hostname`, so
`--limit spark-01` works and every output line says `[spark-01]`; the state's groups are pyinfra groups too
(`--limit nvfp4-fleet`). Each host carries `spark_host`, its name in the state file, so the deploy plans it the
same way wherever it runs. A host reached as anyone but root uses sudo for what needs root (`_sudo`); a sudo
password comes the pyinfra way (`_sudo_password` host data, or pyinfra's own prompt), never from the state file.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

from .desired.loader import load_state
from .desired.model import DesiredState
from .desired.names import ALL_HOSTS_GROUP
from .errors import InventoryError

STATE_ENV = "SPARK_STATE_FILE"
DEFAULT_STATE = "inventory/state.yaml"

HostEntry = tuple[str, dict[str, Any]]  # (address, host data): what drift, status and bench reach
InventoryHost = tuple[str, dict[str, Any]]  # (pyinfra host name, host data): what an inventory file lists


def state_path(override: str | None = None) -> Path:
    """The state file: an explicit path, else $SPARK_STATE_FILE, else inventory/state.yaml."""
    return Path(override or os.environ.get(STATE_ENV) or DEFAULT_STATE)


def ssh_data(state: DesiredState, name: str) -> dict[str, Any]:
    host = state.hosts[name]
    data: dict[str, Any] = {
        "spark_host": name,
        "ssh_hostname": host.address,
        "ssh_user": host.ssh_user,
        "ssh_port": host.ssh_port,
        "_sudo": host.ssh_user != "root",
    }
    if host.ssh_key:
        data["ssh_key"] = host.ssh_key
    return data


def real_hosts(state: DesiredState) -> list[InventoryHost]:
    return [(name, ssh_data(state, name)) for name in state.hosts]


def group_hosts(state: DesiredState, hosts: list[InventoryHost]) -> dict[str, list[InventoryHost]]:
    """The state's groups as pyinfra groups (an inventory file exports them with `globals().update(...)`, beside
    its group of every host, names.ALL_HOSTS_GROUP, which validation keeps free; checked again here, as an
    inventory can be handed any state)."""
    by_name = {data["spark_host"]: (name, data) for name, data in hosts}
    groups: dict[str, list[InventoryHost]] = {}
    for host_name, host in state.hosts.items():
        for group in host.groups:
            if group == ALL_HOSTS_GROUP:
                raise InventoryError(f"group {group!r} cannot be a pyinfra group beside {ALL_HOSTS_GROUP!r}")
            if host_name in by_name:
                groups.setdefault(group, []).append(by_name[host_name])
    return groups


def address(name: str, data: dict[str, Any]) -> str:
    """Where a pyinfra host is reached: its ssh_hostname, else its name."""
    return str(data.get("ssh_hostname") or name)


def load_entries(inventory_file: str | Path) -> list[HostEntry]:
    """The (address, data) entries an inventory file (like inventory/sim.py) defines, in order, each host once
    (a host is listed again in every group it belongs to)."""
    namespace = runpy.run_path(str(inventory_file))
    entries: list[HostEntry] = []
    for value in namespace.values():
        if (
            isinstance(value, list)
            and value
            and all(
                isinstance(e, tuple) and len(e) == 2 and isinstance(e[1], dict) and "spark_host" in e[1] for e in value
            )
        ):
            entries.extend(entry for name, data in value if (entry := (address(name, data), data)) not in entries)
    if not entries:
        raise InventoryError(f"{inventory_file} defines no spark-state hosts")
    return entries


def load(
    inventory_file: str | Path | None, state_file: str | Path | None = None
) -> tuple[DesiredState, list[HostEntry]]:
    state = load_state(state_path(str(state_file) if state_file else None)).state
    entries = load_entries(inventory_file) if inventory_file else [(address(n, d), d) for n, d in real_hosts(state)]
    return state, entries
