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
from .errors import InventoryError, SparkStateError, UnknownHostError

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


def load_entries(inventory: str | Path, state: DesiredState) -> list[HostEntry]:
    """The (address, data) of each host a pyinfra inventory file (like inventory/sim.py) lists, each once, in
    order (a host is listed again in every group it is in): the lists of (name, data) pairs it defines, as
    pyinfra's own loader reads them. That loader is not called: importing pyinfra_cli monkey-patches this whole
    process for gevent (pyinfra_cli/__init__.py), and the bench must measure on a plain asyncio loop. A host is
    the state's by its `spark_host` data, else by its name; hosts the state does not declare are left out."""
    path = Path(inventory)
    if not path.is_file():
        raise InventoryError(f"{inventory}: no such inventory file")
    try:
        namespace = runpy.run_path(str(path))
    except SparkStateError:
        raise
    except SyntaxError as exc:  # a YAML file, say, given where the inventory goes
        raise InventoryError(
            f"{inventory}:{exc.lineno}: not a pyinfra inventory (a Python file): {exc.msg}; "
            "the state file comes first, the inventory with --inventory"
        ) from None
    except Exception as exc:  # what the inventory's own code raised: it is the user's
        raise InventoryError(f"{inventory}: the inventory failed to load: {type(exc).__name__}: {exc}") from None
    entries: list[HostEntry] = []
    for value in namespace.values():
        if not isinstance(value, list | tuple) or not all(_inventory_host(e) for e in value):
            continue
        for host, host_data in (e if isinstance(e, tuple) else (e, {}) for e in value):
            name = host_data.get("spark_host") or (host if host in state.hosts else None)
            if name is None:
                continue
            data = {**host_data, "spark_host": name}
            if (entry := (address(host, data), data)) not in entries:
                entries.append(entry)
    if not entries:
        raise InventoryError(f"{inventory} lists none of the state's hosts ({', '.join(state.hosts) or 'none'})")
    return entries


def _inventory_host(value: Any) -> bool:
    """A host as a pyinfra inventory lists it: a name, or (name, data)."""
    return isinstance(value, str) or (
        isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], dict)
    )


def hosts_named(state: DesiredState, name: str | None) -> list[str]:
    """The state's hosts a `--host` names: a host, or every host of a group; all of them for None."""
    if name is None:
        return list(state.hosts)
    if name in state.hosts:
        return [name]
    members = [h for h, host in state.hosts.items() if name in host.groups]
    if not members:
        groups = sorted({g for host in state.hosts.values() for g in host.groups})
        raise UnknownHostError(name, list(state.hosts), groups)
    return members


def every_address(state_file: str | Path, inventory: str | Path | None = None) -> dict[str, str]:
    """Where the inventory (else the state) reaches every host of the state, by its name in the state."""
    return {data["spark_host"]: reached for reached, data in fleet(state_file, inventory)[1]}


def fleet(
    state_file: str | Path, inventory: str | Path | None = None, host: str | None = None
) -> tuple[DesiredState, list[HostEntry]]:
    """The state and how to reach its hosts (only those `host` names, a host or a group): the inventory's
    connection data when one is given (it reads the state file through $SPARK_STATE_FILE, as pyinfra runs it),
    else the addresses and accounts the state declares."""
    state = load_state(state_file).state
    if inventory:
        os.environ[STATE_ENV] = str(state_file)
        entries = load_entries(inventory, state)
    else:
        entries = [(address(n, d), d) for n, d in real_hosts(state)]
    chosen = set(hosts_named(state, host))
    return state, [(a, d) for a, d in entries if d["spark_host"] in chosen]
