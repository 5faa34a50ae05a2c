"""Read-only commands on a fleet host over OpenSSH, for the CLI's bench and drift (the deploy uses pyinfra)."""

from __future__ import annotations

import subprocess
from typing import Any

from . import quoting


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


def run(address: str, data: dict[str, Any], words: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ssh_argv(address, data), quoting.sh_join(words)], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def container_rss_gib(address: str, data: dict[str, Any], container: str) -> float | None:
    """Resident memory of a container's processes (sum of RSS), as `docker top` reports it."""
    proc = run(address, data, ["docker", "top", container, "-eo", "rss"])
    if proc.returncode != 0:
        return None
    kib = [int(line) for line in proc.stdout.split()[1:] if line.isdigit()]
    return sum(kib) / 2**20 if kib else None
