"""`spark-state status INVENTORY`: per host and service, what runs, since when, whether it answers, and its last
bench verdict. Read-only: one probe per host (side by side) and the control machine's bench history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .bench import history
from .desired.model import DesiredState
from .errors import ConnectError, Outcome, ProbeError
from .observe.observation import observe
from .on_host.probe import ProbeRequest, Snapshot
from .remote import on_each_host, probe_host


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    port: int
    unit: str  # enabled/active
    running: str  # docker's own words ("Up 2 hours"), or what is missing
    since: str  # when its container was started, UTC
    image: str
    healthy: bool
    health: str
    bench: str  # "pass 2026-11-25T03:10:00" / "FAIL ..." / "never benched"


@dataclass
class HostStatus:
    host: str
    address: str
    services: list[ServiceStatus] = field(default_factory=list)
    error: str | None = None


def _since(created: int | None) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M UTC") if created else "-"


def _bench(host: str, service: str, history_dir: Path | None) -> str:
    found = history.latest_verdict(host, service, history_dir)
    if found is None:
        return "never benched"
    result, verdict = found
    when = result.started_at[:16].replace("T", " ")
    if verdict is None:
        return f"measured {when} (no expectations)"
    return f"{'pass' if verdict.passed else 'FAIL'} {when}"


def host_status(
    state: DesiredState,
    address: str,
    data: dict[str, Any],
    history_dir: Path | None,
    probe: Callable[[ProbeRequest], Snapshot],
) -> HostStatus:
    name = data["spark_host"]
    result = HostStatus(name, address)
    try:
        observed = observe(state, name, probe, read_only=True)
    except (ConnectError, ProbeError) as exc:
        result.error = str(exc)
        return result
    snapshot = observed.snapshot
    for svc in observed.plan.services:
        unit = snapshot.units.get(svc.unit_name)
        container = snapshot.containers.get(svc.container_name)
        answer = snapshot.health.get(svc.port, {})
        result.services.append(
            ServiceStatus(
                service=svc.name,
                port=svc.port,
                unit=unit.status if unit else "no unit",
                running=(container.status or container.state or "?") if container else "no container",
                since=_since(container.created if container and container.state == "running" else None),
                image=container.image if container and container.image else svc.image_ref,
                healthy=observed.found.services[svc.name].answers,
                health=f"{svc.health_path} {answer.get(svc.health_path, '-')}",
                bench=_bench(name, svc.name, history_dir),
            )
        )
    return result


def fleet_status(
    state: DesiredState,
    entries: list[tuple[str, dict[str, Any]]],
    history_dir: Path | None = None,
) -> list[HostStatus]:
    def read(address: str, data: dict[str, Any]) -> HostStatus:
        return host_status(state, address, data, history_dir, lambda request: probe_host(address, data, request))

    return [status for _, _, status in on_each_host(entries, read)]


def outcome(hosts: list[HostStatus]) -> Outcome:
    if any(h.error for h in hosts):
        return Outcome.HOST_ERRORS
    return (
        Outcome.OK
        if all(s.healthy and s.unit == "enabled/active" for h in hosts for s in h.services)
        else Outcome.FINDINGS
    )


def to_json(hosts: list[HostStatus], exit_code: int) -> dict[str, Any]:
    return {
        "format": "spark-state/status/v1",
        "exit_code": exit_code,
        "hosts": [
            {"host": h.host, "address": h.address, "error": h.error, "services": [vars(s) for s in h.services]}
            for h in hosts
        ],
    }
