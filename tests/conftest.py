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
from spark_rehearsal.layout import SLOT_ENV, Layout

FLEET_SIZE = int(os.environ.get("SPARK_STATE_TEST_HOSTS", "3"))
# The fleet modules in two groups of about equal time (seconds each took in the clean-clone CI before this split).
# `scripts/test.sh` runs the groups side by side, one pytest-xdist worker and one fleet (slot) each; a module
# keeps its group's order and the state the modules before it left. Plain `pytest` runs them all on one fleet.
FLEET_GROUPS = {
    # One three-host state, deployed and then upgraded, drifted, half-restarted, rebooted and rolled out.
    "tests/e2e/test_deploy.py": "seed-fleet",  # ≈ 420
    "tests/e2e/test_drift.py": "seed-fleet",  # ≈ 330
    "tests/e2e/test_host_upgrade.py": "seed-fleet",  # ≈ 180
    "tests/e2e/test_lost_restart.py": "seed-fleet",  # ≈ 110
    "tests/e2e/test_reboot.py": "seed-fleet",  # ≈ 40
    "tests/e2e/test_rollout.py": "seed-fleet",  # ≈ 480
    # Faults, kills, credentials and the other stacks, each from the state it deploys first.
    "tests/e2e/test_faults.py": "fault-fleet",  # ≈ 500 (+ the bare deploy)
    "tests/e2e/test_killed_deploy.py": "fault-fleet",  # ≈ 215
    "tests/e2e/test_ngc_login.py": "fault-fleet",  # ≈ 135
    "tests/e2e/test_private_files.py": "fault-fleet",  # ≈ 190
    "tests/e2e/test_stacks.py": "fault-fleet",  # ≈ 370
    "tests/sim/test_rehearsal_fleet.py": "fault-fleet",  # ≈ 150
}


class Fleet:
    """The session's rehearsal fleet. Evidence comes from inside each machine as root (`root`, through its
    namespaces: root has no SSH login, as on DGX OS); `ssh` logs in as the operator, as a user would."""

    def __init__(self, record: FleetRecord, layout: Layout) -> None:
        self.record = record
        self.layout = layout
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


@pytest.fixture(autouse=True)
def _no_inherited_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist's workers start with COLUMNS=80; a test sees the width it sets itself, or none (as under plain
    pytest), so tables lay out alike however the suite is run."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """One rehearsal fleet for the whole session; torn down at the end, and proven to leave nothing behind."""
    if os.geteuid() != 0:
        pytest.fail("the rehearsal-fleet tests need root (network namespaces, mounts, systemd-nspawn)")
    layout = _worker_layout()
    record = sim_fleet.up(FLEET_SIZE, layout)
    try:
        yield Fleet(record, layout)
    finally:
        sim_fleet.down(layout, log=lambda *_: None)
        left = sim_fleet.leftovers(layout)
        assert not left, f"sim down left traces behind: {left}"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The end-to-end tests' directory: state file, bench history (SPARK_STATE_HOME), last pyinfra log."""
    return tmp_path_factory.mktemp("deploy")


def _worker_layout() -> Layout:
    """This session's fleet: slot SPARK_STATE_SIM_SLOT (default 0), plus the pytest-xdist worker's number when
    fleets run side by side. Set in the environment, so pyinfra (inventory/sim.py) and `spark-rehearsal` find it."""
    base = Layout.default()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …
    if worker.startswith("gw"):
        base = Layout(base.home, base.slot + int(worker[2:]))
        os.environ[SLOT_ENV] = str(base.slot)
    return base


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the rehearsal fleet carry the `fleet` marker (`pytest -m "not fleet"` is the fast subset);
    each of their modules must have a group in FLEET_GROUPS."""
    for item in items:
        if "fleet" not in getattr(item, "fixturenames", ()):
            continue
        item.add_marker(pytest.mark.fleet)
        module = item.path.relative_to(REPO).as_posix()
        if module not in FLEET_GROUPS:
            raise pytest.UsageError(f"{module} uses the fleet: give it a group in tests/conftest.py FLEET_GROUPS")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`--dist loadgroup` with the groups of FLEET_GROUPS: each group's tests, in collection order, on one worker
    (so on one fleet); any other test on its own. pytest-xdist's own loadgroup reads `xdist_group` marks through
    the test's node id, which pytest 9.2 no longer lets it change: the marks are silently ignored
    (pytest-dev/pytest-xdist#1386), hence xdist's scope scheduler with the groups given here."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FleetGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return FLEET_GROUPS.get(nodeid.split("::", 1)[0], nodeid)

    return FleetGroupScheduling(config, log)
