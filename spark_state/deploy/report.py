"""After a deploy changed a host: run the verification bench on its services and print a short summary."""

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
from ..observe.probe import host_facts_spec
from ..plan.host_plan import HostPlan
from ..plan.quoting import sh_word
from ..plan.scripts import parse_resident, resident_command
from ..remote import SUDO_ARGUMENTS
from ..state.model import State
from .facts import SparkHostState


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
        proc = subprocess.run([sys.executable, "-m", "spark_state.bench.run_target"], input=job(target, settings, resident),
                              capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise StepError(f"bench of {target.service} on {target.host} failed: {proc.stderr[-2000:]}")
    (result,), (verdict,) = from_document(json.loads(proc.stdout))
    return result, verdict


def _changed(metas: list[OperationMeta]) -> bool:
    return any(m.did_change() for m in metas)


def _record_baseline(plan: HostPlan, figures: dict[str, dict[str, float]]) -> str:
    """Write the host's new baseline on the host and in the control machine's history; facts are probed again
    now, after this run's pulls and restarts."""
    now = host.get_fact(SparkHostState, spec=host_facts_spec(plan))  # not the deploy's snapshot: taken after it
    document = baseline.make_baseline(plan.host, baseline.host_facts(now), baseline.image_digests(now), figures)
    path = plan.baseline_path
    text = json.dumps(document, indent=2, sort_keys=True)
    ok, output = host.run_shell_command(**_sudo(), command=StringCommand(
        f"mkdir -p {sh_word(plan.root)} && printf '%s\\n' {sh_word(text)} > {sh_word(path + '.tmp')} "
        f"&& mv {sh_word(path + '.tmp')} {sh_word(path)}"))  # fmt: skip
    if not ok:
        raise StepError(f"could not write the baseline {path} on {plan.host}: {' '.join(output.stderr_lines)[-500:]}")
    baseline.save_local(document)
    facts = ", ".join(f"{baseline.HOST_FACTS[k]} {v}" for k, v in document["facts"].items() if v)
    return f"baseline recorded on {plan.host}: {facts}"


def bench_and_summarise(state: State, plan: HostPlan, changes: dict[str, list[OperationMeta]],
                        since_baseline: list[str] | None = None, fail_on_miss: bool = True) -> None:  # fmt: skip
    """Bench every service of the host, print the summary, record a new baseline when all passed, and fail the
    host when one missed its expectations (unless `fail_on_miss` is off)."""
    settings = settings_from_state(state.bench)
    figures: dict[str, dict[str, float]] = {}
    address = host.data.get("ssh_hostname") or host.name
    table = make_table(f"spark-state: {plan.host} ({address})", "service", "changed", "health", "bench", "TTFT p50",
                       "decode", "top aggregate")  # fmt: skip
    failed = []
    for svc in plan.services:
        target = Target.for_service(address, {}, plan, svc)
        resident = _resident_gib(plan.docker, svc.container_name)
        result, verdict = _bench_in_clean_process(target, settings, resident)
        history.save(result, verdict)
        figures[svc.name] = baseline.bench_figures(result)
        serial = result.serial
        top = result.levels[-1] if result.levels else None
        healthy = bool(serial and serial.ok)
        if not verdict.passed:
            failed.append(f"{svc.name}: " + ", ".join(
                f"{c.metric} {c.measured} (want {c.expected})" for c in verdict.checks if not c.ok))  # fmt: skip
        table.add_row(
            svc.name,
            "yes" if _changed(changes.get(svc.name, [])) else "no",
            Text("ok", style="green") if healthy else Text("failing", style="red"),
            Text("pass", style="green") if verdict.passed else Text("FAIL", style="bold red"),
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
    if not failed:
        console.print(_record_baseline(plan, figures))
    if failed and fail_on_miss:
        raise StepError("verification bench failed on " + plan.host + ": " + "; ".join(failed))
