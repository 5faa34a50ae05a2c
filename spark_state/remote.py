"""Read-only commands on fleet hosts for drift, status and the bench, through pyinfra's own connector and the
inventory's connection data (ssh_hostname, ssh_user, ssh_port, ssh_key, known hosts, _sudo, _sudo_password):
the one way spark-state reaches a host, the deploy's way. Privileged reads (0600 files, docker) use sudo exactly
when the inventory says the host's user needs it.

Foreign errors (SSH, pyinfra) become ConnectError here.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pyinfra.api import Config, Inventory, StringCommand
from pyinfra.api import State as PyinfraState
from pyinfra.api.exceptions import ConnectError as PyinfraConnectError
from pyinfra.api.exceptions import PyinfraError

from .errors import ConnectError
from .on_host.probe import ProbeRequest, Snapshot, probe_command
from .plan.quoting import sh_join

T = TypeVar("T")
SUDO_ARGUMENTS = ("_sudo", "_sudo_user", "_sudo_password", "_use_sudo_login", "_preserve_sudo_env")
_connected = threading.local()  # one connection per host and thread: pyinfra's connector is not shared across hubs


def connected(address: str, data: dict[str, Any]) -> Any:
    """The pyinfra host for an inventory entry, connected (one connection per host and thread)."""
    hosts: dict[tuple[str, str], Any] = _connected.__dict__.setdefault("hosts", {})
    key = (address, json.dumps({k: v for k, v in data.items() if k.startswith("ssh_")}, sort_keys=True, default=str))
    if key not in hosts:
        name = str(data.get("spark_host") or address)
        inventory = Inventory(([(name, {**data, "ssh_hostname": address})], {}))
        PyinfraState(inventory, Config())  # binds the inventory's hosts to a state, which connecting needs
        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)  # its connect errors come back to us as ConnectError
        host = inventory.get_host(name)
        try:
            host.connect(show_errors=False, raise_exceptions=True)
        except (PyinfraConnectError, PyinfraError, OSError) as exc:
            raise ConnectError(
                f"{name} ({address}): cannot connect over SSH as {data.get('ssh_user', 'root')}: {exc}"
            ) from exc
        hosts[key] = host
    return hosts[key]


def on_each_host(
    entries: list[tuple[str, dict[str, Any]]], read: Callable[[str, dict[str, Any]], T]
) -> list[tuple[str, dict[str, Any], T]]:
    """`read(address, data)` for every entry, hosts side by side (each read is a few SSH round trips); results
    in the entries' order."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda entry: read(*entry), entries))
    return [(address, data, result) for (address, data), result in zip(entries, results, strict=True)]


def run(
    address: str, data: dict[str, Any], command: str, timeout: int = 180, stdin: str | None = None, sudo: bool = True
) -> tuple[bool, str, str]:
    """(succeeded, stdout, stderr) of one shell command on the host, with the inventory's sudo settings (unless
    `sudo` is off); `stdin` is what the command reads (secrets go there, never into the command)."""
    host = connected(address, data)
    arguments: dict[str, Any] = {k: data[k] for k in SUDO_ARGUMENTS if data.get(k)} if sudo else {}
    if stdin is not None:
        arguments["_stdin"] = stdin
    try:
        ok, output = host.run_shell_command(StringCommand(command), _timeout=timeout, **arguments)
    except (PyinfraError, OSError, TimeoutError) as exc:
        raise ConnectError(f"{data.get('spark_host', address)} ({address}): {exc}") from exc
    return ok, "\n".join(output.stdout_lines), "\n".join(output.stderr_lines)


def probe_host(address: str, data: dict[str, Any], request: ProbeRequest) -> Snapshot:
    """The host's Snapshot for `request`; ConnectError when it cannot be reached or the probe cannot run,
    ProbeError when its answer is not a probe's."""
    ok, stdout, stderr = run(address, data, probe_command(request))
    if not ok:
        raise ConnectError(
            f"{data.get('spark_host', address)} ({address}): the probe failed: {(stderr or stdout)[-500:]}"
        )
    return Snapshot.from_output(stdout)


def container_resident_gib(address: str, data: dict[str, Any], container: str, docker: str = "docker") -> float | None:
    """Memory a service's container holds (docker stats, else the RSS of its processes); None when unknown."""
    try:
        ok, stdout, _ = run(address, data, resident_command(docker, container), timeout=60)
    except ConnectError:
        return None
    return parse_resident(stdout) if ok else None


def resident_command(docker: str, container: str) -> str:
    """Memory a service's container holds: docker stats (cgroup accounting, as the field report read it), then
    the RSS of its processes (for hosts whose docker has no memory accounting)."""
    stats = sh_join([docker, "stats", "--no-stream", "--format", "{{.MemUsage}}", container])
    top = sh_join([docker, "top", container, "-o", "pid,rss"])
    return f"echo stats $({stats} 2>/dev/null); {top} 2>/dev/null"


_UNITS = {"B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def parse_resident(output: str) -> float | None:
    """GiB from resident_command's output; None when the container is not running."""
    lines = output.splitlines()
    if lines and lines[0].startswith("stats "):
        usage = lines[0][6:].split("/")[0].strip().upper()
        number = usage.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        unit = usage[len(number) :]
        if number and unit in _UNITS and float(number) > 0:
            return float(number) * _UNITS[unit] / 2**30
    kib = [int(parts[1]) for line in lines[1:] if len(parts := line.split()) == 2 and parts[1].isdigit()]
    return sum(kib) / 2**20 if kib else None
