"""Measured figures against a service's expectations, and deltas against a baseline (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..desired.fields import LATENCY_BOUNDS
from .results import Check, EndpointResult, Slo, Verdict


def _latency_bound(name: str) -> tuple[str, str]:
    """`itl_p99_ms` → (`itl`, `p99`): the metric and the percentile a latency bound is on."""
    metric, q, _ = name.split("_")
    return metric, q


def slo_for(expect: dict[str, Any]) -> Slo:
    """The per-request objectives goodput counts against: for each metric, the largest bound the service
    declares on it (its tail budget)."""
    largest: dict[str, float] = {}
    for name in LATENCY_BOUNDS:
        if expect.get(name) is not None:
            metric, _ = _latency_bound(name)
            largest[metric] = max(float(expect[name]), largest.get(metric, 0.0))
    return Slo(**{f"{metric}_ms": bound for metric, bound in largest.items()})


def judge(
    result: EndpointResult,
    expect: dict[str, Any],
    service: str,
    host: str | None = None,
    resident_asked: bool = True,
) -> Verdict:
    """One check per expectation: TTFT and resident memory are upper bounds, rates are lower bounds.
    A figure the run set out to measure and did not fails its check (it cannot be shown to meet it); one the
    run was asked to leave out (no serial requests, another concurrency, `resident_asked` off) is skipped."""
    checks: list[Check] = []
    serial = result.serial
    no_serial = "not measured (no serial requests asked)" if not result.settings.get("serial_requests", 1) else ""
    for name in LATENCY_BOUNDS:  # on the serial run's METRIC_ms figures
        if expect.get(name) is not None:
            metric, q = _latency_bound(name)
            measured = getattr(serial, f"{metric}_ms").get(q) if serial else None
            checks.append(_check(f"{metric.upper()} {q} (ms)", "<=", expect[name], measured, no_serial))
    if expect.get("goodput_pct") is not None:
        measured = serial.goodput_pct if serial else None
        checks.append(_check("goodput (%)", ">=", expect["goodput_pct"], measured, no_serial))
    if expect.get("decode_tok_s") is not None:
        measured = serial.decode_tok_s.get("p50") if serial else None
        checks.append(_check("decode (tok/s)", ">=", expect["decode_tok_s"], measured, no_serial))
    levels = result.settings.get("concurrency")
    for concurrency, floor in sorted((expect.get("aggregate_tok_s") or {}).items()):
        level = result.level(int(concurrency))
        other = levels is not None and int(concurrency) not in levels
        why = f"not measured (levels asked: {', '.join(map(str, levels or []))})" if other else ""
        measured = level.aggregate_tok_s if level else None
        checks.append(_check(f"aggregate c={concurrency} (tok/s)", ">=", floor, measured, why))
    if expect.get("resident_gib") is not None:
        why = "" if resident_asked else "not measured (--no-resident)"
        checks.append(_check("resident (GiB)", "<=", expect["resident_gib"], result.resident_gib, why))
    for check in checks:
        if check.measured is not None and _client_limited(result, check.metric):
            check.note = (check.note + "; " if check.note else "") + "client-limited: see client health"
    return Verdict(service=service, host=host, checks=checks)


def _check(metric: str, op: str, bound: float, measured: float | None, skipped_because: str = "") -> Check:
    """`skipped_because`: why the run left this figure out on purpose ("": it set out to measure it)."""
    if measured is None and skipped_because:
        return Check(metric, f"{op} {bound:g}", None, False, skipped_because, skipped=True)
    if measured is None:
        return Check(metric, f"{op} {bound:g}", None, False, "not measured")
    ok = measured <= bound if op == "<=" else measured >= bound
    return Check(metric, f"{op} {bound:g}", round(measured, 3), ok)


def _client_limited(result: EndpointResult, metric: str) -> bool:
    if metric.startswith("aggregate c="):
        level = result.level(int(metric.split("=")[1].split()[0]))
        return bool(level and level.client.limited)
    return bool(result.serial and result.serial.client.limited)


@dataclass(frozen=True)
class Delta:
    service: str
    host: str | None
    ttft_pct: float | None
    decode_pct: float | None
    aggregate_pct: float | None
    concurrency: int | None


def _pct(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return (value - base) / base * 100.0


def deltas(results: list[EndpointResult], baseline: EndpointResult) -> list[Delta]:
    """The seed's delta table: TTFT, decode and top-concurrency aggregate of each result vs the baseline."""
    top = max((lv.concurrency for lv in baseline.levels), default=None)
    base_level = baseline.level(top) if top is not None else None
    out = []
    for r in results:
        if r is baseline:
            continue
        level = r.level(top) if top is not None else None
        out.append(
            Delta(
                service=r.service or r.url,
                host=r.host,
                ttft_pct=_pct(
                    r.serial.ttft_ms.get("p50") if r.serial else None,
                    baseline.serial.ttft_ms.get("p50") if baseline.serial else None,
                ),
                decode_pct=_pct(
                    r.serial.decode_tok_s.get("p50") if r.serial else None,
                    baseline.serial.decode_tok_s.get("p50") if baseline.serial else None,
                ),
                aggregate_pct=_pct(
                    level.aggregate_tok_s if level else None, base_level.aggregate_tok_s if base_level else None
                ),
                concurrency=top,
            )
        )
    return out
