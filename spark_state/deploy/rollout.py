"""What the verification step needs to know about each service after its operations ran (whether this run
changed it, whether its health wait failed, what a rollback would put back: `ServiceRun`, built while the deploy
is defined, from the probe) and what it found (`Verification`, read by the rollback, baseline and verdict
operations when they run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyinfra.api.operation import OperationMeta

from ..on_host.probe import Snapshot
from ..plan.host_plan import HostPlan
from ..plan.units import ServicePlan, unit_serves


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


@dataclass
class ServiceOutcome:
    """One service's verification, with what a rollback needs to know about this run."""

    reason: str = ""  # what it missed ("": it passed)
    fatal: bool = False  # fails the host (a missed expectation only with spark_bench_fail=yes)
    benched: bool = False
    changed: bool = False  # this run changed what it serves
    env_changed: bool = False  # ... including its env file (restored with the unit)
    previous: str | None = None  # what a rollback serves again (None: nothing to go back to)
    marked: bool = False  # an earlier deploy rolled it back
    rolled_back_to: str | None = None  # set by service_rolled_back when it put `previous` back


@dataclass
class Verification:
    """What the verification found on one host; `done` once it ran in this deploy (never at --dry)."""

    done: bool = False
    at: str = ""  # when: the time a rollback marker and a baseline are recorded with
    outcomes: dict[str, ServiceOutcome] = field(default_factory=dict)
    figures: dict[str, dict[str, float]] = field(default_factory=dict)  # service → bench figures

    def earns_baseline(self) -> bool:
        """Every service was benched and none failed (a miss under spark_bench_fail=no is not a failure)."""
        return self.done and all(o.benched and not o.fatal for o in self.outcomes.values())

    def failures(self, rollback: bool) -> list[str]:
        said = []
        for name, o in self.outcomes.items():
            if not o.fatal:
                continue
            if o.rolled_back_to:
                said.append(f"{name}: {o.reason}; rolled back to {o.rolled_back_to}")
            elif rollback and o.changed and not o.previous:
                said.append(f"{name}: {o.reason}; nothing to roll back to (it is new on this host)")
            else:
                said.append(f"{name}: {o.reason}")
        return said


def previous_version(plan: HostPlan, svc: ServicePlan, found: Snapshot) -> str | None:
    """What a rollback of `svc` would serve: the unit installed now when this run replaces it (the unit_file
    operation keeps it in the rollback directory), else the one an earlier run kept there when the new unit
    has not run yet (a lost restart). None when there is nothing to go back to."""
    installed = found.file(svc.unit_path)
    kept = found.rollback.units.get(svc.unit_name)
    if installed is not None and not found.has_text(svc.unit_path, svc.unit_text):
        return _describe(installed.text, installed.sha256)
    if (
        kept is not None
        and found.has_text(svc.unit_path, svc.unit_text)
        and found.lost_restart(svc.container_name, svc.identity)
    ):
        return _describe(kept.text, kept.sha256)
    return None


def _describe(text: str | None, digest: str) -> str:
    return unit_serves(text) or f"the unit before (sha256 {digest[:12]})"


def marker(svc: ServicePlan, serving: str, reason: str, at: str) -> dict[str, Any]:
    """The rollback marker drift reads: what the deploy wanted, what serves instead, and why."""
    return {
        "service": svc.name,
        "desired": svc.serves,
        "desired_identity": svc.identity,
        "serving": serving,
        "reason": reason,
        "at": at,
    }
