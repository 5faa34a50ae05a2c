"""After a deploy changed a host: verify its services (health, bench), roll back what failed, print a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import gevent
import gevent.lock
from pyinfra import host
from pyinfra.api import StringCommand
from pyinfra.api.operation import OperationMeta
from rich.text import Text

from ..bench import history
from ..bench.fleet import Target, settings_from_state
from ..bench.results import from_document
from ..bench.run_target import job
from ..bench.runner import BenchSettings
from ..console import make_console, make_table
from ..errors import StepError
from ..observe import baseline
from ..observe.observation import host_facts_request
from ..plan import scripts
from ..plan.host_plan import HostPlan
from ..plan.quoting import sh_word
from ..plan.scripts import parse_resident, resident_command
from ..remote import SUDO_ARGUMENTS
from ..state.model import State
from . import rollout
from .facts import SparkHostState
from .rollout import ServiceRun


def _sudo() -> dict[str, Any]:
    """The inventory's sudo settings, for commands this module runs itself (operations get them from pyinfra)."""
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
        )
    if proc.returncode != 0:
        raise StepError(f"bench of {target.service} on {target.host} failed: {proc.stderr[-2000:]}")
    (result,), (verdict,) = from_document(json.loads(proc.stdout))
    return result, verdict


def _record_baseline(plan: HostPlan, figures: dict[str, dict[str, float]]) -> str:
    """Write the host's new baseline on the host and in the control machine's history; facts are probed again
    now, after this run's pulls and restarts."""
    now = host.get_fact(SparkHostState, request=host_facts_request(plan))  # not the deploy's snapshot: taken after it
    document = baseline.make_baseline(plan.host, baseline.host_facts(now), baseline.image_digests(now), figures)
    path = plan.baseline_path
    text = json.dumps(document, indent=2, sort_keys=True)
    ok, output = host.run_shell_command(
        **_sudo(),
        command=StringCommand(
            f"mkdir -p {sh_word(plan.root)} && printf '%s\\n' {sh_word(text)} > {sh_word(path + '.tmp')} "
            f"&& mv {sh_word(path + '.tmp')} {sh_word(path)}"
        ),
    )
    if not ok:
        raise StepError(f"could not write the baseline {path} on {plan.host}: {' '.join(output.stderr_lines)[-500:]}")
    baseline.save_local(document)
    facts = ", ".join(f"{baseline.HOST_FACTS[k]} {v}" for k, v in document["facts"].items() if v)
    return f"baseline recorded on {plan.host}: {facts}"


def _run(command: str, what: str, plan: HostPlan, print_output: bool = False) -> None:
    ok, output = host.run_shell_command(StringCommand(command), print_output=print_output, **_sudo())
    if not ok:
        raise StepError(f"{what} on {plan.host} failed: {' '.join(output.stderr_lines)[-500:]}")


def _roll_back(plan: HostPlan, run: ServiceRun, reason: str) -> str:
    """Put back what the service ran before this change, restart it and wait until it answers; leave a marker
    for drift. Returns what it serves now."""
    svc, serving = run.svc, str(run.previous)
    console = make_console()
    console.print(f"{plan.host}: {svc.name} failed ({reason}); rolling back to {serving}")
    _run(scripts.rollback_command(plan, svc, restore_env=run.env_changed()), f"rollback of {svc.name}", plan)
    _run(
        scripts.wait_healthy_command(plan, svc),
        f"health wait of {svc.name} after its rollback to {serving}",
        plan,
        print_output=True,
    )
    document = json.dumps(rollout.marker(svc, serving, reason), indent=2, sort_keys=True)
    _run(scripts.write_file_command(plan.rollback_marker(svc), document), "writing the rollback marker", plan)
    return serving


def verify(
    spark: State,
    plan: HostPlan,
    runs: list[ServiceRun],
    host_changes: list[OperationMeta],
    since_baseline: list[str] | None = None,
    bench: bool = True,
    canary: bool = False,
    rollback: bool = True,
    fail_on_miss: bool = True,
) -> None:
    """After the host's services were (re)started: bench them (`bench`), roll back every changed service that
    failed its health wait or its bench (`rollback`), print the summary, record a new baseline when all passed,
    and fail the host when one failed (a missed expectation only with `fail_on_miss`)."""
    settings = settings_from_state(spark.bench)
    figures: dict[str, dict[str, float]] = {}
    address = host.data.get("ssh_hostname") or host.name
    title = f"spark-state: {plan.host} ({address})" + (" — canary" if canary else "")
    table = make_table(title, "service", "changed", "health", "bench", "TTFT p50", "decode", "top aggregate")
    failed: list[str] = []
    host_changed = any(op.did_change() for op in host_changes)
    for run in runs:
        svc = run.svc
        changed = run.changed() or host_changed
        result = verdict = None
        reason, fatal = "", False
        if run.health_failed():
            reason = f"not answering {svc.health_path} and /v1/models on :{svc.port} within {svc.health_timeout_s} s"
            fatal = True
        elif bench:
            target = Target.for_service(address, {}, plan, svc)
            result, verdict = _bench_in_clean_process(target, settings, _resident_gib(plan.docker, svc.container_name))
            history.save(result, verdict)
            figures[svc.name] = baseline.bench_figures(result)
            reason = ", ".join(f"{c.metric} {c.measured} (want {c.expected})" for c in verdict.checks if not c.ok)
            fatal = bool(reason) and fail_on_miss
        outcome = Text("pass", style="green") if not reason else Text("FAIL", style="bold red")
        if fatal and rollback and run.changed() and run.previous:
            reason += f"; rolled back to {_roll_back(plan, run, reason)}"
            outcome = Text("FAIL, rolled back", style="bold red")
        elif fatal and rollback and run.changed():
            reason += "; nothing to roll back to (it is new on this host)"
        if fatal:
            failed.append(f"{svc.name}: {reason}")
        elif not reason and run.marked:
            _run(f"rm -f {sh_word(plan.rollback_marker(svc))}", "removing the rollback marker", plan)
        serial = result.serial if result else None
        top = result.levels[-1] if result and result.levels else None
        table.add_row(
            svc.name,
            "yes" if changed else "no",
            Text("ok", style="green")
            if (serial and serial.ok) or (not bench and not run.health_failed())
            else Text("failing", style="red"),
            outcome if bench or reason else Text("not benched", style="dim"),
            f"{serial.ttft_ms['p50']:.1f} ms" if serial and serial.ttft_ms["p50"] is not None else "-",
            f"{serial.decode_tok_s['p50']:.1f} tok/s" if serial and serial.decode_tok_s["p50"] is not None else "-",
            f"c={top.concurrency}: {top.aggregate_tok_s:.1f} tok/s" if top and top.aggregate_tok_s else "-",
        )
    console = make_console()
    console.print(table)
    if since_baseline == [baseline.NO_BASELINE]:
        console.print(f"{plan.host}: {baseline.NO_BASELINE}")
    elif since_baseline:
        console.print(f"{plan.host} since its last baseline: " + "; ".join(since_baseline))
    if bench and not failed and len(figures) == len(runs):
        console.print(_record_baseline(plan, figures))
    if failed:
        raise StepError(f"verification failed on {plan.host}: " + "; ".join(failed))
