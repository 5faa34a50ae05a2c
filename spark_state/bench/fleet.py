"""The bench over a fleet: every placed service of the state file, judged against its expectations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..plan.host_plan import UNIT_PREFIX
from ..state.model import Bench, State, host_services
from .results import EndpointResult, Verdict
from .runner import BenchSettings, Progress, run_endpoint
from .verdict import judge


@dataclass(frozen=True)
class Target:
    host: str
    address: str
    data: dict[str, Any]
    service: str
    url: str
    expect: dict[str, Any]
    container: str


def settings_from_state(bench: Bench, **overrides: Any) -> BenchSettings:
    settings = BenchSettings(
        prompt=bench.prompt,
        max_tokens=bench.max_tokens,
        temperature=bench.temperature,
        serial_requests=bench.serial_requests,
        warmup_requests=bench.warmup_requests,
        concurrency=list(bench.concurrency),
        requests_per_level=bench.requests_per_level,
        timeout_s=bench.timeout_s,
        ignore_eos=bench.ignore_eos,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def targets(state: State, entries: list[tuple[str, dict[str, Any]]], host: str | None = None,
            service: str | None = None) -> list[Target]:  # fmt: skip
    out = []
    for address, data in entries:
        name = data["spark_host"]
        if host not in (None, name):
            continue
        for svc_name in host_services(state, name):
            if service not in (None, svc_name) or svc_name not in state.services:
                continue
            svc = state.services[svc_name]
            url = f"http://{address}:{svc.port}"
            out.append(Target(name, address, data, svc_name, url, svc.expect.model_dump(), f"{UNIT_PREFIX}{svc_name}"))
    return out


async def bench_target(target: Target, settings: BenchSettings, resident_gib: float | None,
                       progress: Progress | None = None) -> tuple[EndpointResult, Verdict]:  # fmt: skip
    result = await run_endpoint(target.url, settings, host=target.host, service=target.service, progress=progress)
    result.resident_gib = resident_gib
    return result, judge(result, target.expect, target.service, target.host)
