"""Repeated runs of one bench (`spark-state bench --repeat N`): each run's headline figures, and per figure the
mean with its 95 % confidence interval, so a difference between two configurations can be told from noise."""

from __future__ import annotations

from .depth import row_name
from .results import EndpointResult, Interval
from .stats import mean_interval


def headline(result: EndpointResult) -> dict[str, float | None]:
    """The figures a run is compared by: the serial run's latency and decode rate, each concurrency level's
    aggregate rate and TTFT tail, each request rate's TTFT tail and end-to-end latency, each depth's pp and tg."""
    figures: dict[str, float | None] = {}
    if result.serial is not None:
        figures["serial TTFT p50 (ms)"] = result.serial.ttft_ms.get("p50")
        figures["serial ITL p50 (ms)"] = result.serial.itl_ms.get("p50")
        figures["serial decode p50 (tok/s)"] = result.serial.decode_tok_s.get("p50")
    for level in result.levels:
        figures[f"c={level.concurrency} aggregate (tok/s)"] = level.aggregate_tok_s
        figures[f"c={level.concurrency} TTFT p95 (ms)"] = level.ttft_ms.get("p95")
    for rate in result.rates:
        figures[f"{rate.rate_rps:g} req/s TTFT p95 (ms)"] = rate.ttft_ms.get("p95")
        figures[f"{rate.rate_rps:g} req/s E2EL p50 (ms)"] = rate.e2el_ms.get("p50")
    for d in result.depths:
        figures[f"{row_name('pp', d.prompt_tokens, d.depth)} (t/s)"] = d.pp_tok_s.get("mean")
        figures[f"{row_name('tg', d.max_tokens, d.depth)} (t/s)"] = d.tg_tok_s.get("mean")
    return figures


def combined(runs: list[EndpointResult]) -> EndpointResult:
    """The last run, carrying every run's headline figures and their spread. A figure missing from a run (no
    answer arrived) is left out of its interval, and the interval says over how many runs it was taken."""
    last = runs[-1]
    last.repeats = [headline(run) for run in runs]
    for name in last.repeats[-1]:
        values = [float(v) for figures in last.repeats if (v := figures.get(name)) is not None]
        found = mean_interval(values)
        if found is not None:
            mean, low, high = found
            last.spread[name] = Interval(mean, low, high, min(values), max(values), len(values))
    return last
