"""Read-only commands on a fleet host over OpenSSH, for the CLI's bench and drift (the deploy uses pyinfra)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from .errors import ConnectError
from .observe.probe import ProbeSpec, probe_command
from .observe.snapshot import Snapshot
from .plan.scripts import parse_resident, resident_command


def ssh_argv(address: str, data: dict[str, Any]) -> list[str]:
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
            "-p", str(data.get("ssh_port", 22))]  # fmt: skip
    if data.get("ssh_key"):
        argv += ["-i", str(data["ssh_key"])]
    if data.get("ssh_known_hosts_file"):
        argv += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    if str(data.get("ssh_strict_host_key_checking", "")).lower() == "no":
        argv += ["-o", "StrictHostKeyChecking=no"]
    return [*argv, f"{data.get('ssh_user', 'root')}@{address}"]


def container_resident_gib(address: str, data: dict[str, Any], container: str, docker: str = "docker") -> float | None:
    """Memory a service's container holds (docker stats, else the RSS of its processes)."""
    proc = subprocess.run([*ssh_argv(address, data), resident_command(docker, container)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    return parse_resident(proc.stdout) if proc.returncode == 0 else None


def probe_over_ssh(address: str, data: dict[str, Any], spec: ProbeSpec) -> Snapshot:
    """The host's Snapshot for `spec`; ConnectError when the host cannot be reached or the probe cannot run."""
    try:
        proc = subprocess.run([*ssh_argv(address, data), probe_command(spec)], capture_output=True, text=True,
                              timeout=180)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConnectError(f"{address}: {exc}") from exc
    if proc.returncode != 0:
        raise ConnectError((proc.stderr or proc.stdout).strip()[-500:] or f"{address}: ssh exited {proc.returncode}")
    try:
        document = json.loads(proc.stdout)
    except ValueError as exc:
        raise ConnectError(f"{address}: the probe did not answer JSON: {proc.stdout[-200:]!r}") from exc
    return Snapshot.parse(document)
