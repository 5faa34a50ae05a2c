"""What the verification step needs to know about each service after its operations ran: whether this run
changed it, whether its health wait failed, and what a rollback would put back. Built while the deploy is
defined (from the probe), read after the service's operations executed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyinfra.api.operation import OperationMeta

from ..observe.compare import lost_restart, sha256, unit_current
from ..on_host.probe import Snapshot
from ..plan.host_plan import HostPlan, ServicePlan, unit_serves


@dataclass
class ServiceRun:
    svc: ServicePlan
    changes: list[OperationMeta] = field(default_factory=list)  # everything that changes what it serves
    health: list[OperationMeta] = field(default_factory=list)  # restart/start-and-wait operations
    env_op: OperationMeta | None = None
    relaunch: bool = False  # a container running an older unit than installed is restarted by this run
    previous: str | None = None  # what a rollback would serve again (None: nothing to go back to)
    marked: bool = False  # an earlier deploy rolled it back (a marker is on the host)

    def changed(self) -> bool:
        return self.relaunch or any(op.did_change() for op in self.changes)

    def health_failed(self) -> bool:
        return any(op.is_complete() and op.did_error() for op in self.health)

    def env_changed(self) -> bool:
        return self.env_op is not None and self.env_op.did_change()


def previous_version(plan: HostPlan, svc: ServicePlan, found: Snapshot) -> str | None:
    """What a rollback of `svc` would serve: the unit installed now when this run replaces it (the unit_file
    operation keeps it in the rollback directory), else the one an earlier run kept there when the new unit
    has not run yet (a lost restart). None when there is nothing to go back to."""
    installed = found.file(svc.unit_path)
    kept = found.rollback.units.get(svc.unit_name)
    if installed is not None and installed.sha256 != sha256(svc.unit_text):
        return _describe(installed.text, installed.sha256)
    if kept is not None and unit_current(svc, found) and lost_restart(svc, found):
        return _describe(kept.text, kept.sha256)
    return None


def _describe(text: str | None, digest: str) -> str:
    return unit_serves(text) or f"the unit before (sha256 {digest[:12]})"


def marker(svc: ServicePlan, serving: str, reason: str) -> dict[str, Any]:
    """The rollback marker drift reads: what the deploy wanted, what serves instead, and why."""
    return {
        "service": svc.name,
        "desired": svc.serves,
        "desired_identity": svc.identity,
        "serving": serving,
        "reason": reason,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
