"""`spark-state drift INVENTORY`: per host, what no longer matches the state file — configuration, runtime
and (with --bench) performance. Strictly read-only on the hosts: one probe over SSH that starts no container
and writes nothing, plus HTTP reads of the services."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bench import history
from .bench.fleet import Target, bench_target, settings_from_state
from .bench.runner import run_measured
from .bench.results import EndpointResult
from .compare import Item, compare, probe_spec
from .deploy.facts import probe_command
from .model import State
from .plan import HostPlan, plan_host
from .preflight import observed_trtllm_versions
from .remote import container_resident_gib, ssh_argv

EXIT_CONVERGED, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2
DEFAULT_MARGIN = 0.10  # a bench figure this much worse than the last recorded one is drift


@dataclass
class HostDrift:
    host: str
    address: str
    items: list[Item] = field(default_factory=list)
    error: str | None = None

    @property
    def drifted(self) -> list[Item]:
        return [i for i in self.items if not i.ok]


def probe_host(address: str, data: dict[str, Any], plan: HostPlan) -> dict[str, Any]:
    spec = probe_spec(plan, plan.root, plan.units_dir) | {"read_only": True}
    proc = subprocess.run([*ssh_argv(address, data), probe_command(spec)], capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    if proc.returncode != 0:
        raise ConnectionError((proc.stderr or proc.stdout).strip()[-500:] or f"ssh exited {proc.returncode}")
    return json.loads(proc.stdout)


def check_host(state: State, address: str, data: dict[str, Any], environ: Mapping[str, str]) -> HostDrift:
    name = data["spark_host"]
    result = HostDrift(name, address)
    try:
        plan = plan_host(state, name)
        snapshot = probe_host(address, data, plan)
        probed = observed_trtllm_versions(snapshot)
        if any(probed.get(i.ref) not in (None, i.trtllm_version) for i in plan.images):
            plan = plan_host(state, name, probed)
            snapshot = probe_host(address, data, plan)
        result.items = compare(plan, snapshot, environ)
    except (ConnectionError, OSError, ValueError) as exc:
        result.error = str(exc)
    return result


def bench_items(state: State, address: str, data: dict[str, Any], margin: float,
                history_dir: Path | None) -> list[Item]:  # fmt: skip
    """Each service against its expectations and against its last recorded bench."""
    from .model import host_services

    name = data["spark_host"]
    settings = settings_from_state(state.bench)
    items = []
    for service in host_services(state, name):
        svc = state.services[service]
        target = Target(name, address, data, service, f"http://{address}:{svc.port}", svc.expect.model_dump(),
                        f"spark-state-{service}")  # fmt: skip
        resident = container_resident_gib(address, data, target.container)
        result, verdict = run_measured(bench_target(target, settings, resident))
        for check in verdict.checks:
            items.append(Item(name, "bench", f"{service} {check.metric}", check.expected,
                              "-" if check.measured is None else f"{check.measured:g}", check.ok))  # fmt: skip
        last = history.latest(name, service, history_dir)
        if last is not None:
            items.extend(_regressions(name, service, result, last, margin))
    return items


def _regressions(host: str, service: str, now: EndpointResult, last: EndpointResult, margin: float) -> list[Item]:
    pairs: list[tuple[str, float | None, float | None, bool]] = []  # metric, now, then, higher is better
    if now.serial and last.serial:
        pairs.append(("TTFT p50 (ms)", now.serial.ttft_ms.get("p50"), last.serial.ttft_ms.get("p50"), False))
        pairs.append(("decode (tok/s)", now.serial.decode_tok_s.get("p50"), last.serial.decode_tok_s.get("p50"), True))
    for level in now.levels:
        before = last.level(level.concurrency)
        if before is not None:
            pairs.append((f"aggregate c={level.concurrency} (tok/s)", level.aggregate_tok_s, before.aggregate_tok_s, True))
    items = []
    for metric, value, then, higher_better in pairs:
        if value is None or then is None or then == 0:
            continue
        change = (value - then) / then
        worse = -change if higher_better else change
        items.append(Item(host, "bench-history", f"{service} {metric}",
                          f"within {margin:.0%} of {then:.1f} ({last.started_at})",
                          f"{value:.1f} ({change:+.1%})", worse <= margin))  # fmt: skip
    return items


def run_drift(state: State, entries: list[tuple[str, dict[str, Any]]], environ: Mapping[str, str],
              with_bench: bool = False, margin: float = DEFAULT_MARGIN,
              history_dir: Path | None = None, host: str | None = None) -> list[HostDrift]:  # fmt: skip
    chosen = [(address, data) for address, data in entries if host in (None, data["spark_host"])]
    # Hosts are probed side by side (each probe is one SSH command); benches run one at a time.
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda entry: check_host(state, entry[0], entry[1], environ), chosen))
    if with_bench:
        for drift, (address, data) in zip(results, chosen):
            if drift.error is None:
                drift.items += bench_items(state, address, data, margin, history_dir)
    return results


def exit_code(results: list[HostDrift]) -> int:
    if any(r.error for r in results):
        return EXIT_ERROR
    return EXIT_DRIFT if any(r.drifted for r in results) else EXIT_CONVERGED


def to_json(results: list[HostDrift]) -> dict[str, Any]:
    return {
        "format": "spark-state/drift/v1",
        "exit_code": exit_code(results),
        "hosts": [
            {"host": r.host, "address": r.address, "error": r.error,
             "drift": [vars(i) for i in r.drifted], "in_sync": [vars(i) for i in r.items if i.ok]}
            for r in results
        ],
    }  # fmt: skip
