"""`spark-state bench`: drive the runner with a progress display, then tables, JSON, HTML and history."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..console import make_console
from ..errors import BenchError, Outcome, SparkStateError, UsageError
from . import history, report
from .repeats import combined
from .results import EndpointResult, Verdict, to_document
from .runner import BenchSettings, run_endpoint, run_measured
from .targets import Target, bench_target, settings_from_state, targets
from .verdict import deltas

OVERRIDES = (
    "prompt",
    "max_tokens",
    "serial_requests",
    "warmup_requests",
    "concurrency",
    "requests_per_level",
    "rates",
    "requests_per_rate",
    "depths",
    "prompt_tokens",
    "input_tokens",
    "duration_s",
    "timeout_s",
    "ignore_eos",
)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values = {key: getattr(args, key) for key in OVERRIDES}
    if args.completions:
        values["chat"] = False
    return values


def run_bench(args: argparse.Namespace, console: Console) -> Outcome:
    if args.prompt is not None and args.input_tokens is not None:
        raise UsageError("--prompt and --input-tokens both say what to ask: give one")
    out = make_console(stderr=True) if args.json else console
    if args.url:
        settings = BenchSettings()
        for key, value in _overrides(args).items():
            if value is not None:
                setattr(settings, key, value)
        jobs: list[tuple[str, Any]] = [(args.url, None)]
        baseline_name = None
    else:
        if not args.state:
            raise UsageError("give a state file, or --url for a single endpoint")
        from ..inventory import fleet

        state, entries = fleet(args.state, args.inventory, args.host)
        settings = settings_from_state(state.bench, **_overrides(args))
        if args.prompt is not None:  # the command line's prompt over the state's input_tokens
            settings.input_tokens = None
        chosen = targets(state, entries, args.service)
        if not chosen:
            raise SparkStateError("no service matches --host/--service on this fleet")
        jobs = [(t.url, t) for t in chosen]
        baseline_name = args.baseline or state.bench.baseline

    try:
        results, verdicts = run_measured(_run_all(jobs, settings, args, out))
    except (httpx.HTTPError, OSError, ValueError) as exc:
        raise BenchError(f"cannot bench {', '.join(url for url, _ in jobs)}: {exc}") from exc
    baseline = next((r for r in results if baseline_name and r.service == baseline_name), None)
    delta_rows = deltas(results, baseline) if baseline else []
    if not args.no_save:
        base = Path(args.results_dir) if args.results_dir else None
        for result in results:
            verdict = next((v for v in verdicts if v.service == result.service and v.host == result.host), None)
            history.save(result, verdict, base)
    if args.html:
        Path(args.html).write_text(report.html_report(results, verdicts, delta_rows, baseline_name))
    if args.json:
        print(json.dumps(to_document(results, verdicts, baseline_name), indent=2))
    else:
        report.show(console, results, verdicts, delta_rows, baseline_name)
    return Outcome.FINDINGS if any(not v.passed for v in verdicts) else Outcome.OK


async def _run_all(
    jobs: list[tuple[str, Target | None]], settings: BenchSettings, args: argparse.Namespace, console: Console
) -> tuple[list[EndpointResult], list[Verdict]]:
    """Each job `--repeat` times (the verdict is the last run's, judged as a single run's; the spread of the
    runs goes with the result)."""
    results: list[EndpointResult] = []
    verdicts: list[Verdict] = []
    repeat = args.repeat or 1
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        for url, target in jobs:
            runs: list[EndpointResult] = []
            verdict = None
            for run in range(repeat):
                label = f"{target.host}/{target.service}" if target else url
                label += f" (run {run + 1} of {repeat})" if repeat > 1 else ""
                task = bar.add_task(label, total=None)

                def progress(stage: str, done: int, total: int, task: Any = task, label: str = label) -> None:
                    bar.update(task, description=f"{label} {stage}", completed=done, total=total)

                result, verdict = await _run_once(url, target, settings, args, progress)
                runs.append(result)
                bar.remove_task(task)
            results.append(combined(runs) if repeat > 1 else runs[0])
            if verdict is not None:
                verdicts.append(verdict)
    return results, verdicts


async def _run_once(
    url: str, target: Target | None, settings: BenchSettings, args: argparse.Namespace, progress: Any
) -> tuple[EndpointResult, Verdict | None]:
    if target is None:
        result = await run_endpoint(
            url, settings, model=args.model, progress=progress, metrics_path=args.metrics_path or None
        )
        return result, None
    resident = None
    if not args.no_resident:
        from ..remote import container_resident_gib

        resident = await asyncio.to_thread(container_resident_gib, target.address, target.data, target.container)
    return await bench_target(target, settings, resident, progress, not args.no_resident)
