"""The bench over a fleet: every placed service of the state file, judged against its expectations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..desired.model import Bench, DesiredState
from ..plan.host_plan import HostPlan, plan_host
from ..plan.units import ServicePlan
from ..stacks import STACKS
from .results import EndpointResult, Verdict
from .runner import BenchSettings, Progress, run_endpoint
from .verdict import judge, slo_for


@dataclass(frozen=True)
class Target:
    host: str
    address: str
    data: dict[str, Any]
    service: str
    url: str
    expect: dict[str, Any]
    container: str
    metrics_path: str | None = None  # where its stack serves Prometheus metrics (read during the bench)
    stack: str | None = None
    image: str | None = None

    @classmethod
    def for_service(cls, address: str, data: dict[str, Any], plan: HostPlan, svc: ServicePlan) -> Target:
        """The one way a service becomes a bench target (deploy, drift and `spark-state bench` alike)."""
        url = service_url(address, svc.port)
        metrics = STACKS[svc.kind].metrics_path
        return cls(
            plan.host, address, data, svc.name, url, svc.expect, svc.container_name, metrics, svc.kind, svc.image_ref
        )


def service_url(address: str, port: int) -> str:
    """http://ADDRESS:PORT, with an IPv6 address in brackets (RFC 3986)."""
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def settings_from_state(bench: Bench, **overrides: Any) -> BenchSettings:
    settings = BenchSettings(
        prompt=bench.prompt,
        max_tokens=bench.max_tokens,
        temperature=bench.temperature,
        serial_requests=bench.serial_requests,
        warmup_requests=bench.warmup_requests,
        concurrency=list(bench.concurrency),
        requests_per_level=bench.requests_per_level,
        rates=list(bench.rates),
        requests_per_rate=bench.requests_per_rate,
        timeout_s=bench.timeout_s,
        ignore_eos=bench.ignore_eos,
        input_tokens=bench.input_tokens,
        depths=list(bench.depths),
        prompt_tokens=bench.prompt_tokens,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def targets(state: DesiredState, entries: list[tuple[str, dict[str, Any]]], service: str | None = None) -> list[Target]:
    """Every placed service of these hosts (or only `service`) as a bench target."""
    out = []
    for address, data in entries:
        plan = plan_host(state, data["spark_host"])
        out += [Target.for_service(address, data, plan, svc) for svc in plan.services if service in (None, svc.name)]
    return out


async def bench_target(
    target: Target,
    settings: BenchSettings,
    resident_gib: float | None,
    progress: Progress | None = None,
    resident_asked: bool = True,
) -> tuple[EndpointResult, Verdict]:
    """`resident_gib`: the container's memory, measured beside the run (None: not, and `resident_asked` says
    whether it was meant to be)."""
    result = await run_endpoint(
        target.url,
        settings,
        host=target.host,
        service=target.service,
        progress=progress,
        slo=slo_for(target.expect),
        metrics_path=target.metrics_path,
    )
    result.resident_gib = resident_gib
    result.stack, result.image = target.stack, target.image
    return result, judge(result, target.expect, target.service, target.host, resident_asked)
