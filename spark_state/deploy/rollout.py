"""What the verification step needs to know about each service after its operations ran (whether this run
changed it, whether its health wait failed, what a rollback would put back: `ServiceRun`, built while the deploy
is defined, from the probe) and what it found (`Verification`, read by the rollback, baseline and verdict
operations when they run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyinfra.api.operation import OperationMeta

from ..plan.units import ServicePlan


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
