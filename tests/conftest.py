from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STATE = REPO / "inventory" / "state.yaml"

sys.path.insert(0, str(REPO))

from spark_rehearsal import fleet as sim_fleet
from spark_rehearsal.fleet import FleetRecord, SimHost
from spark_rehearsal.layout import Layout

FLEET_SIZE = int(os.environ.get("SPARK_STATE_TEST_HOSTS", "3"))


class Fleet:
    """The session's rehearsal fleet. Evidence comes from inside each machine as root (`root`, through its
    namespaces: root has no SSH login, as on DGX OS); `ssh` logs in as the operator, as a user would."""

    def __init__(self, record: FleetRecord) -> None:
        self.record = record
        self.hosts: list[SimHost] = record.hosts

    def root(
        self, host: SimHost, command: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        script = f"set -a; . /etc/environment; set +a; cd /root; {command}"  # a login's environment, not ours
        proc = sim_fleet.host_exec(
            host,
            [
                "env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "sh",
                "-c",
                script,
            ],
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{host.name}: {command!r} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def ssh_argv(self, host: SimHost, command: str, user: str | None = None) -> list[str]:
        """ssh as the operator (or `user`) running `command` on the host."""
        return [
            "ssh",
            "-i",
            self.record.ssh_key,
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            f"{user or self.record.operator}@{host.address}",
            command,
        ]

    def ssh(
        self, host: SimHost, command: str, user: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = self.ssh_argv(host, command, user)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{host.name}: ssh {command!r} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """One rehearsal fleet for the whole session; torn down at the end, and proven to leave nothing behind."""
    if os.geteuid() != 0:
        pytest.fail("the rehearsal-fleet tests need root (network namespaces, mounts, systemd-nspawn)")
    layout = Layout.default()
    record = sim_fleet.up(FLEET_SIZE, layout)
    try:
        yield Fleet(record)
    finally:
        sim_fleet.down(layout, log=lambda *_: None)
        left = sim_fleet.leftovers(layout)
        assert not left, f"sim down left traces behind: {left}"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The end-to-end tests' directory: state file, bench history (SPARK_STATE_HOME), last pyinfra log."""
    return tmp_path_factory.mktemp("deploy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the rehearsal fleet carry the `fleet` marker: `pytest -m "not fleet"` is the fast subset."""
    for item in items:
        if "fleet" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fleet)
