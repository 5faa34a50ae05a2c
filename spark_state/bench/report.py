"""Bench output: rich tables in the field report's layout, and an HTML report with an inline SVG chart."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..console import print_table, shown
from ..plan.templates import render
from .charts import charts_html
from .depth import row_name
from .results import EndpointResult, LevelResult, Verdict
from .verdict import Delta


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def endpoint_label(r: EndpointResult) -> str:
    if r.service:
        return f"{r.host}/{r.service}" if r.host else r.service
    return r.url


def serial_table(results: list[EndpointResult]) -> Table:
    t = Table(title="serial (streaming, warm-up excluded)", title_justify="left")
    t.add_column("stack", overflow="fold", min_width=12)
    for col in ("TTFT p50 (ms)", "TTFT p90 (ms)", "dispatch p50 (ms)", "decode (tok/s)", "wall p50 (s)", "tokens"):
        t.add_column(col, justify="right", overflow="fold")
    t.add_column("notes", overflow="fold")
    for r in results:
        s = r.serial
        if s is None:
            continue
        notes = []
        if s.early_stops:
            notes.append(f"{s.early_stops} ended before max_tokens")
        if s.fallback_token_counts:
            notes.append(f"{s.fallback_token_counts} counted by chunks (no usage)")
        if s.errors:
            notes.append("; ".join(s.errors))
        if s.client.limited:
            notes.append("client-limited: " + "; ".join(s.client.reasons))
        t.add_row(
            endpoint_label(r),
            _f(s.ttft_ms["p50"]),
            _f(s.ttft_ms["p90"]),
            _f(s.dispatch_lag_ms.get("p50"), 2),
            _f(s.decode_tok_s["p50"], 2),
            _f(s.wall_s["p50"], 2),
            _f(s.completion_tokens_p50, 0),
            shown("; ".join(notes), "yellow"),
        )
    return t


def tail_table(results: list[EndpointResult]) -> Table:
    """The serial run's tail, as vLLM's benchmark_serving.py reports it (ms), and goodput where objectives exist."""
    t = Table(title="serial tail latency (ms), prefill rate and goodput", title_justify="left")
    t.add_column("stack", overflow="fold", min_width=12)
    columns = (
        ("TTFT p95", "ttft_ms", "p95"),
        ("TTFT p99", "ttft_ms", "p99"),
        ("ITL p50", "itl_ms", "p50"),
        ("ITL p95", "itl_ms", "p95"),
        ("ITL p99", "itl_ms", "p99"),
        ("TPOT p50", "tpot_ms", "p50"),
        ("E2EL p99", "e2el_ms", "p99"),
        ("prefill p50 (tok/s)", "prefill_tok_s", "p50"),
    )
    for title, _, _ in columns:
        t.add_column(title, justify="right", overflow="fold")
    t.add_column("goodput %", justify="right", overflow="fold")
    for r in results:
        if r.serial is not None:
            figures = (_f(getattr(r.serial, figure).get(q)) for _, figure, q in columns)
            t.add_row(endpoint_label(r), *figures, _f(r.serial.goodput_pct))
    return t


def _levels_table(results: list[EndpointResult], title: str) -> tuple[Table, list[int]]:
    """A table with a stack column and one column per concurrency any result measured; and those levels."""
    levels = sorted({lv.concurrency for r in results for lv in r.levels})
    t = Table(title=title, title_justify="left")
    t.add_column("stack", overflow="fold", min_width=12)
    for c in levels:
        t.add_column(f"c={c}", justify="right", overflow="fold")
    return t, levels


def server_note(figures: dict[str, float]) -> str:
    """What the server said of the run (its own metrics), for a notes cell; "" when it said nothing."""
    parts = []
    if "running_peak" in figures:
        parts.append(f"{figures['running_peak']:g} running")
    if "waiting_peak" in figures:
        parts.append(f"{figures['waiting_peak']:g} waiting")
    if "kv_cache_use_peak" in figures:
        parts.append(f"KV {figures['kv_cache_use_peak'] * 100:.0f}%")
    if figures.get("preemptions"):
        parts.append(f"{figures['preemptions']:g} preempted")
    return f"server peak: {', '.join(parts)}" if parts else ""


def concurrency_table(results: list[EndpointResult]) -> Table:
    t, levels = _levels_table(results, "aggregate throughput (tok/s), closed loop")
    t.add_column("notes", overflow="fold")
    for r in results:
        cells, notes = [], []
        for c in levels:
            lv = r.level(c)
            cells.append(_f(lv.aggregate_tok_s) if lv else "")
            if lv and (lv.errors or lv.early_stops):
                notes.append(f"c={c}: {lv.requests - lv.ok} failed, {lv.early_stops} ended before max_tokens")
            if lv and lv.client.limited:
                notes.append(f"c={c} client-limited ({'; '.join(lv.client.reasons)})")
            if lv and lv.server:
                notes.append(f"c={c} {server_note(lv.server)}")
        t.add_row(endpoint_label(r), *cells, shown("; ".join(notes), "yellow"))
    return t


def rate_table(results: list[EndpointResult]) -> Table:
    """Open-loop runs: what was offered, what the client achieved, and what a user waited."""
    t = Table(title="open loop (Poisson arrivals)", title_justify="left")
    t.add_column("stack", overflow="fold", min_width=12)
    for col in ("req/s", "achieved", "peak", "tok/s", "TTFT p50", "TTFT p99", "ITL p99", "goodput %"):
        t.add_column(col, justify="right", overflow="fold")
    t.add_column("notes", overflow="fold")
    for r in results:
        for run in r.rates:
            notes = [f"{run.requests - run.ok} failed"] if run.ok < run.requests else []
            if run.client.limited:
                notes.append("client-limited: " + "; ".join(run.client.reasons))
            if run.server:
                notes.append(server_note(run.server))
            t.add_row(
                endpoint_label(r),
                f"{run.rate_rps:g}",
                _f(run.achieved_rps, 2),
                str(run.peak_in_flight),
                _f(run.aggregate_tok_s),
                _f(run.ttft_ms.get("p50")),
                _f(run.ttft_ms.get("p99")),
                _f(run.itl_ms.get("p99")),
                _f(run.goodput_pct),
                shown("; ".join(notes), "yellow"),
            )
    return t


def latency_cell(level: LevelResult | None) -> str:
    """TTFT p50 under load, then the client's dispatch lag p50: a reader adds them for the wait a user sees."""
    if level is None:
        return ""
    return f"{_f(level.ttft_ms.get('p50'))} + {_f(level.dispatch_lag_ms.get('p50'), 2)}"


def latency_table(results: list[EndpointResult]) -> Table:
    t, levels = _levels_table(results, "TTFT p50 + dispatch lag p50 (ms) under load")
    for r in results:
        t.add_row(endpoint_label(r), *(latency_cell(r.level(c)) for c in levels))
    return t


def delta_table(deltas: list[Delta], baseline: str) -> Table:
    top = next((d.concurrency for d in deltas if d.concurrency), None)
    t = Table(title=f"delta vs {baseline}", title_justify="left")
    for col in ("stack", "TTFT", "decode", f"c={top} aggregate"):
        t.add_column(col, justify="left" if col == "stack" else "right", overflow="fold")
    for d in deltas:
        t.add_row(
            f"{d.host}/{d.service}" if d.host else d.service,
            *("-" if v is None else f"{v:+.1f}%" for v in (d.ttft_pct, d.decode_pct, d.aggregate_pct)),
        )
    return t


def verdict_table(verdicts: list[Verdict]) -> Table:
    t = Table(title="verdict", title_justify="left")
    for col in ("host", "service", "metric", "expected", "measured", "result", "note"):
        t.add_column(col, overflow="fold")
    for v in verdicts:
        for c in v.checks:
            t.add_row(
                v.host or "-",
                v.service,
                c.metric,
                c.expected,
                _f(c.measured, 2),
                Text("pass", style="green")
                if c.ok
                else Text("skipped", style="dim")
                if c.skipped
                else Text("FAIL", style="bold red"),
                c.note,
            )
        if not v.checks:
            t.add_row(v.host or "-", v.service, "(no expectations)", "", "", Text("pass", style="green"), "")
    return t


def depth_rows(r: EndpointResult) -> list[tuple[str, str, str]]:
    """llama-bench's rows for one endpoint: test (`pp2048 @ d4096`), t/s as mean ± sd, TTFT p50 (pp rows)."""
    rows = []
    for d in r.depths:
        for kind, tokens, rate in (("pp", d.prompt_tokens, d.pp_tok_s), ("tg", d.max_tokens, d.tg_tok_s)):
            speed = "-" if rate["mean"] is None else f"{rate['mean']:.2f} ± {_f(rate['sd'], 2)}"
            ttft = _f(d.ttft_ms.get("p50")) if kind == "pp" else ""
            rows.append((row_name(kind, tokens, d.depth), speed, ttft))
    return rows


def depth_table(results: list[EndpointResult]) -> Table:
    """Prefill (pp) and generation (tg) by context depth, in the layout the Spark community publishes."""
    t = Table(title="by context depth (llama-bench's pp/tg rows; mean ± sd)", title_justify="left")
    t.add_column("stack", overflow="fold", min_width=12)
    t.add_column("test", overflow="fold")
    t.add_column("t/s", justify="right", overflow="fold")
    t.add_column("TTFT p50 (ms)", justify="right", overflow="fold")
    t.add_column("notes", overflow="fold")
    for r in results:
        for d in r.depths:
            if d.errors:
                errors = shown("; ".join(d.errors), "yellow")  # the servers' words: data, never markup
                t.add_row(endpoint_label(r), row_name("pp", d.prompt_tokens, d.depth), "", "", errors)
        for test, speed, ttft in depth_rows(r):
            t.add_row(endpoint_label(r), test, speed, ttft, "")
    return t


def repeat_table(results: list[EndpointResult]) -> Table:
    """How each headline figure moved over `--repeat` runs: the mean, its 95 % confidence interval, the range."""
    t = Table(title="over repeated runs (mean, 95 % confidence interval)", title_justify="left")
    t.add_column("stack", overflow="fold", min_width=12)
    t.add_column("figure", overflow="fold")
    for col in ("mean", "95 % CI", "min – max", "runs"):
        t.add_column(col, justify="right", overflow="fold")
    for r in results:
        for figure, i in r.spread.items():
            t.add_row(
                endpoint_label(r),
                figure,
                _f(i.mean, 2),
                f"{_f(i.low, 2)} – {_f(i.high, 2)}",
                f"{_f(i.least, 2)} – {_f(i.most, 2)}",
                str(i.runs),
            )
    return t


def show(
    console: Console, results: list[EndpointResult], verdicts: list[Verdict], deltas: list[Delta], baseline: str | None
) -> None:
    print_table(console, serial_table(results))
    print_table(console, tail_table(results))
    print_table(console, concurrency_table(results))
    if any(r.levels for r in results):
        print_table(console, latency_table(results))
    if any(r.rates for r in results):
        print_table(console, rate_table(results))
    if any(r.depths for r in results):
        print_table(console, depth_table(results))
    if any(r.spread for r in results):
        print_table(console, repeat_table(results))
    if deltas and baseline:
        print_table(console, delta_table(deltas, baseline))
    if verdicts:
        print_table(console, verdict_table(verdicts))


def measured(results: list[EndpointResult]) -> list[dict[str, str]]:
    """What each endpoint's figures are of: model, stack, image, prompt, lengths, load, when, by which version."""
    rows = []
    for r in results:
        settings = r.settings
        prompt = str(settings.get("prompt", ""))
        sized = settings.get("input_tokens")
        said = f"{len(prompt)} characters: {prompt[:80]}{'…' if len(prompt) > 80 else ''}"
        if sized:
            said = f"synthetic, {sized} tokens as the server counts them ({settings.get('input_words')} words)"
        rows.append(
            {
                "endpoint": endpoint_label(r),
                "model": r.model,
                "stack": r.stack or "-",
                "image": r.image or "-",
                "prompt": said,
                "max_tokens": str(settings.get("max_tokens", "-")),
                "concurrency": ", ".join(str(c) for c in settings.get("concurrency", [])) or "-",
                "rates (req/s)": ", ".join(f"{x:g}" for x in settings.get("rates", [])) or "-",
                "started": r.started_at,
                "spark-state": r.spark_state or "-",
            }
        )
    return rows


def html_report(
    results: list[EndpointResult], verdicts: list[Verdict], deltas: list[Delta], baseline: str | None
) -> str:
    return render(
        "bench_report.html.j2",
        results=results,
        verdicts=verdicts,
        deltas=deltas,
        baseline=baseline,
        charts=charts_html(results, endpoint_label),
        levels=sorted({lv.concurrency for r in results for lv in r.levels}),
        measured=measured(results),
        name=endpoint_label,
        f=_f,
        latency=latency_cell,
        depth_rows=depth_rows,
    )
