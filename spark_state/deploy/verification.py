"""The verification step of a deploy: health and bench of a host's services, measured once after they were
(re)started. It changes nothing on the host: what it found (rollout.Verification) is read at execution time by
the operations that follow it — `service_rolled_back`, `baseline_recorded`, `verification_verdict` — so `--dry`
lists them and pyinfra counts what they change. Imported only when a verification runs: a converged run stays
light."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import gevent.lock
from pyinfra import host
from pyinfra.api import StringCommand
from pyinfra.api.operation import OperationMeta
from rich.text import Text

from ..bench import history
from ..bench.results import from_document
from ..bench.run_target import job
from ..bench.runner import BenchSettings
from ..bench.targets import Target, settings_from_state
from ..console import make_console, make_table, print_table, shown
from ..desired.model import DesiredState
from ..errors import StepError
from ..observe import baseline
from ..plan.host_plan import HostPlan
from ..remote import SUDO_ARGUMENTS, parse_resident, resident_command
from .rollout import ServiceOutcome, ServiceRun, Verification


def _sudo() -> dict[str, Any]:
    """The inventory's sudo settings, for commands this step runs itself (operations get them from pyinfra)."""
    return {key: host.data.get(key) for key in SUDO_ARGUMENTS if host.data.get(key)}


def _resident_gib(docker: str, container: str) -> float | None:
    ok, output = host.run_shell_command(StringCommand(resident_command(docker, container)), **_sudo())
    return parse_resident("\n".join(output.stdout_lines)) if ok else None


_BENCH_LOCK = gevent.lock.BoundedSemaphore(1)


def _bench_in_clean_process(target: Target, settings: BenchSettings, resident: float | None) -> tuple[Any, Any]:
    """One bench at a time, in its own process: pyinfra's CLI monkey-patches sockets and threads for gevent,
    and hosts' measurements should not share the client's CPU."""
    with _BENCH_LOCK:
        proc = subprocess.run(
            [sys.executable, "-m", "spark_state.bench.run_target"],
            input=job(target, settings, resident),
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise StepError(f"bench of {target.service} on {target.host} failed: {proc.stderr[-2000:]}")
    (result,), (verdict,) = from_document(json.loads(proc.stdout))
    return result, verdict


def measure(
    verification: Verification,
    spark: DesiredState,
    plan: HostPlan,
    runs: list[ServiceRun],
    host_changes: list[OperationMeta],
    since_baseline: list[str] | None = None,
    bench: bool = True,
    canary: bool = False,
    rollback: bool = True,
    fail_on_miss: bool = True,
) -> None:
    """After the host's services were (re)started: bench them (`bench`), note in `verification` what each
    missed, print the summary. A failed health wait is always fatal; a missed expectation only with
    `fail_on_miss`."""
    settings = settings_from_state(spark.bench)
    address = host.data.get("ssh_hostname") or host.name
    title = f"spark-state: {plan.host} ({address})" + (" — canary" if canary else "")
    table = make_table(title, "service", "changed", "health", "bench", "TTFT p50", "decode", "top aggregate")
    host_changed = any(op.did_change() for op in host_changes)
    verification.at = datetime.now(UTC).isoformat(timespec="seconds")
    for run in runs:
        svc = run.svc
        outcome = verification.outcomes[svc.name] = ServiceOutcome(
            changed=run.changed(), env_changed=run.env_changed(), previous=run.previous, marked=run.marked
        )
        result = verdict = None
        if run.health_failed():
            outcome.reason = (
                f"not answering {svc.health_path} and /v1/models on :{svc.port} within {svc.health_timeout_s} s"
            )
            outcome.fatal = True
        elif bench:
            target = Target.for_service(address, {}, plan, svc)
            result, verdict = _bench_in_clean_process(target, settings, _resident_gib(plan.docker, svc.container_name))
            history.save(result, verdict)
            verification.figures[svc.name] = baseline.bench_figures(result)
            outcome.benched = True
            outcome.reason = ", ".join(
                f"{c.metric} {c.measured} (want {c.expected})" for c in verdict.checks if c.failed
            )
            outcome.fatal = bool(outcome.reason) and fail_on_miss
        said = Text("pass", style="green") if not outcome.reason else Text("FAIL", style="bold red")
        if outcome.fatal and rollback and outcome.changed and outcome.previous:
            said = Text("FAIL, rolling back", style="bold red")
        serial = result.serial if result else None
        top = result.levels[-1] if result and result.levels else None
        healthy = (serial and serial.ok) or (not bench and not run.health_failed())
        table.add_row(
            svc.name,
            "yes" if outcome.changed or host_changed else "no",
            Text("ok", style="green") if healthy else Text("failing", style="red"),
            said if bench or outcome.reason else Text("not benched", style="dim"),
            f"{serial.ttft_ms['p50']:.1f} ms" if serial and serial.ttft_ms["p50"] is not None else "-",
            f"{serial.decode_tok_s['p50']:.1f} tok/s" if serial and serial.decode_tok_s["p50"] is not None else "-",
            f"c={top.concurrency}: {top.aggregate_tok_s:.1f} tok/s" if top and top.aggregate_tok_s else "-",
        )
    verification.done = True
    console = make_console()
    print_table(console, table)
    if since_baseline == [baseline.NO_BASELINE]:
        console.print(shown(f"{plan.host}: {baseline.NO_BASELINE}"))
    elif since_baseline:
        console.print(shown(f"{plan.host} since its last baseline: " + "; ".join(since_baseline)))


def keep_baseline(document: dict[str, Any]) -> None:
    """The baseline baseline_recorded wrote on the host, kept in the control machine's history too."""
    baseline.save_local(document)
    facts = ", ".join(f"{baseline.HOST_FACTS[k]} {v}" for k, v in document["facts"].items() if v)
    make_console().print(shown(f"baseline recorded on {document['host']}: {facts}"))
