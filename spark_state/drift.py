"""`spark-state drift INVENTORY`: per host, what no longer matches the state file — configuration, runtime
and (with --bench) performance. Strictly read-only on the hosts: one probe over SSH that starts no container
and writes nothing, plus HTTP reads of the services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bench import history
from .bench.runner import run_measured
from .bench.targets import Target, bench_target, settings_from_state
from .defaults import DRIFT_MARGIN
from .desired.model import DesiredState
from .errors import ConnectError, Outcome, ProbeError
from .observe import baseline
from .observe.compare import Item, compare
from .observe.observation import observe
from .plan.host_plan import plan_host
from .remote import container_resident_gib, on_each_host, probe_host


@dataclass
class HostDrift:
    host: str
    address: str
    items: list[Item] = field(default_factory=list)
    error: str | None = None
    baseline: dict[str, Any] | None = None  # the host's last good deploy, as the host keeps it
    since_baseline: list[str] = field(default_factory=list)  # what changed since, in words

    @property
    def drifted(self) -> list[Item]:
        return [i for i in self.items if not i.ok]

    @property
    def unchecked(self) -> list[Item]:
        """What this machine cannot check (it does not change the outcome)."""
        return [i for i in self.items if i.unchecked]

    def performance_note(self) -> str | None:
        """What the bench says against the baseline, in one line (None without a baseline bench)."""
        figures = [i for i in self.items if i.kind == "baseline-bench"]
        if not figures:
            return None
        worse = [i for i in figures if not i.ok]
        since = f" after {'; '.join(self.since_baseline)}" if self.since_baseline else ""
        if worse:
            return f"bench: {len(worse)} of {len(figures)} figures worse than the baseline{since}"
        return f"bench: all {len(figures)} figures within the margin of the baseline{since} — performance unchanged"


def check_host(
    state: DesiredState,
    address: str,
    data: dict[str, Any],
    environ: Mapping[str, str],
    addresses: Mapping[str, str] | None = None,
) -> HostDrift:
    """`addresses`: where the inventory reaches each host (what the deploy wrote into Prometheus' targets)."""
    name = data["spark_host"]
    result = HostDrift(name, address)
    try:
        observed = observe(
            state, name, lambda request: probe_host(address, data, request), read_only=True, addresses=addresses
        )
    except (ProbeError, ConnectError) as exc:
        result.error = str(exc)
        return result
    snapshot = observed.snapshot
    result.items = compare(observed, environ)
    result.baseline = baseline.valid(snapshot.baseline)
    facts, digests = baseline.host_facts(snapshot), baseline.image_digests(snapshot)
    services = baseline.verified_services(observed.plan, snapshot)
    result.items += baseline.host_items(name, result.baseline, facts, digests, services)
    if result.baseline is not None:
        result.since_baseline = baseline.changes(result.baseline, facts, digests, services)
    return result


def bench_items(
    state: DesiredState,
    address: str,
    data: dict[str, Any],
    margin: float,
    history_dir: Path | None,
    recorded: dict[str, Any] | None = None,
) -> list[Item]:
    """Each service against its expectations, its last recorded bench and the host's baseline figures."""
    name = data["spark_host"]
    settings = settings_from_state(state.bench)
    items = []
    plan = plan_host(state, name)
    for svc in plan.services:
        service = svc.name
        target = Target.for_service(address, data, plan, svc)
        resident = container_resident_gib(address, data, target.container)
        result, verdict = run_measured(bench_target(target, settings, resident))
        for check in verdict.checks:
            items.append(
                Item(
                    name,
                    "bench",
                    f"{service} {check.metric}",
                    check.expected,
                    "-" if check.measured is None else f"{check.measured:g}",
                    not check.failed,
                )
            )
        figures = baseline.bench_figures(result)
        last = history.latest(name, service, history_dir)
        if last is not None:
            items += baseline.figure_items(
                name, service, "bench-history", figures, baseline.bench_figures(last), last.started_at, margin
            )
        if recorded is not None and service in recorded["bench"]:
            items += baseline.figure_items(
                name,
                service,
                "baseline-bench",
                figures,
                recorded["bench"][service],
                f"baseline {recorded.get('recorded_at', '?')}",
                margin,
            )
    return items


def run_drift(
    state: DesiredState,
    entries: list[tuple[str, dict[str, Any]]],
    environ: Mapping[str, str],
    with_bench: bool = False,
    margin: float = DRIFT_MARGIN,
    history_dir: Path | None = None,
    addresses: Mapping[str, str] | None = None,
) -> list[HostDrift]:
    """`addresses`: where the inventory reaches every host, --host or not (Prometheus' targets name them all);
    by default the entries'."""
    addresses = addresses or {data["spark_host"]: address for address, data in entries}
    checked = on_each_host(entries, lambda address, data: check_host(state, address, data, environ, addresses))
    results = [drift for _, _, drift in checked]
    if with_bench:  # benches run one at a time: they share this machine's CPU
        for address, data, drift in checked:
            if drift.error is None:
                drift.items += bench_items(state, address, data, margin, history_dir, drift.baseline)
    return results


def outcome(results: list[HostDrift]) -> Outcome:
    if any(r.error for r in results):
        return Outcome.HOST_ERRORS
    return Outcome.FINDINGS if any(r.drifted for r in results) else Outcome.OK


def to_json(results: list[HostDrift], exit_code: int) -> dict[str, Any]:
    return {
        "format": "spark-state/drift/v1",
        "exit_code": exit_code,
        "hosts": [
            {
                "host": r.host,
                "address": r.address,
                "error": r.error,
                "baseline_recorded_at": (r.baseline or {}).get("recorded_at"),
                "performance": r.performance_note(),
                "drift": [vars(i) for i in r.drifted],
                "in_sync": [vars(i) for i in r.items if i.ok and not i.unchecked],
                "unchecked": [vars(i) for i in r.unchecked],
            }
            for r in results
        ],
    }
