"""Pure logic of the verdict, the delta table and the figures' statistics."""

from __future__ import annotations

import statistics

import pytest

from spark_state.bench.results import ClientHealth, EndpointResult, LevelResult, SerialResult
from spark_state.bench.stats import mean_interval, percentile
from spark_state.bench.verdict import deltas, judge


def _result(service: str, ttft: float, decode: float, agg8: float, resident: float | None = None) -> EndpointResult:
    serial = SerialResult(5, 5, {"p50": ttft}, {"p50": decode}, {"p50": 5.0}, 200, 0, [], 0, ClientHealth())
    level = LevelResult(
        concurrency=8,
        requests=16,
        ok=16,
        aggregate_tok_s=agg8,
        per_stream_decode_tok_s={"p50": decode},
        ttft_ms={"p50": ttft},
        duration_s=10.0,
        completion_tokens=3200,
        early_stops=0,
        errors=[],
        client=ClientHealth(),
    )
    return EndpointResult("http://x", "m", "spark-01", service, "now", {}, serial, [level], resident)


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert percentile([], 50) is None
    assert percentile([0, 10], 90) == 9.0


def test_judge_bounds() -> None:
    r = _result("nvfp4", ttft=30.8, decode=38.82, agg8=264.7, resident=2.5)
    v = judge(r, {"ttft_p50_ms": 35, "decode_tok_s": 35, "aggregate_tok_s": {8: 250}, "resident_gib": 4}, "nvfp4")
    assert v.passed and [c.metric for c in v.checks] == [
        "TTFT p50 (ms)",
        "decode (tok/s)",
        "aggregate c=8 (tok/s)",
        "resident (GiB)",
    ]
    v = judge(r, {"ttft_p50_ms": 30, "decode_tok_s": 40, "aggregate_tok_s": {8: 270}, "resident_gib": 2}, "nvfp4")
    assert not v.passed and not any(c.ok for c in v.checks)


def test_unmeasured_expectation_fails() -> None:
    r = _result("nim", 54, 22, 175, resident=None)
    v = judge(r, {"resident_gib": 12, "aggregate_tok_s": {4: 80}}, "nim")
    assert [(c.ok, c.note) for c in v.checks] == [(False, "not measured"), (False, "not measured")]


def test_what_the_run_was_asked_not_to_measure_is_skipped_not_failed() -> None:
    """--no-resident, --concurrency without the level, --serial 0: "skipped", and the verdict still passes."""
    r = _result("nvfp4", ttft=30.8, decode=38.82, agg8=264.7, resident=None)
    r.settings = {"concurrency": [8], "serial_requests": 5}
    expect = {"ttft_p50_ms": 35, "aggregate_tok_s": {4: 120, 8: 250}, "resident_gib": 4}
    v = judge(r, expect, "nvfp4", resident_asked=False)
    assert [(c.metric, c.ok, c.skipped) for c in v.checks] == [
        ("TTFT p50 (ms)", True, False),
        ("aggregate c=4 (tok/s)", False, True),
        ("aggregate c=8 (tok/s)", True, False),
        ("resident (GiB)", False, True),
    ]
    assert v.passed and "levels asked: 8" in v.checks[1].note and "--no-resident" in v.checks[3].note
    r.serial, r.settings = None, {"concurrency": [8], "serial_requests": 0}
    (ttft,) = judge(r, {"ttft_p50_ms": 35}, "nvfp4").checks
    assert ttft.skipped and not ttft.failed
    # asked for and still missing: a failure
    r.settings = {"concurrency": [4, 8], "serial_requests": 5}
    assert not judge(r, expect, "nvfp4").passed


def test_deltas_like_the_seed() -> None:
    nim = _result("nim", 54.0, 22.06, 175.2)
    nvfp4 = _result("nvfp4", 30.8, 38.82, 264.7)
    (d,) = deltas([nim, nvfp4], nim)
    assert round(d.ttft_pct, 1) == -43.0 and round(d.decode_pct, 1) == 76.0 and round(d.aggregate_pct, 1) == 51.1


def test_a_figures_confidence_interval_is_students_t_over_its_runs() -> None:
    assert mean_interval([]) is None and mean_interval([5.0]) is None  # one run: no spread to speak of
    mean, low, high = mean_interval([10.0, 12.0, 14.0])  # type: ignore[misc]
    assert (
        mean == 12.0
        and low == pytest.approx(12 - 4.303 * 2 / 3**0.5)
        and high == pytest.approx(12 + 4.303 * 2 / 3**0.5)
    )
    mean, low, high = mean_interval([1.0, 3.0] * 30)  # type: ignore[misc]  # past the table: t for 30, a wider interval
    assert high - mean == pytest.approx(2.042 * statistics.stdev([1.0, 3.0] * 30) / 60**0.5)


def test_a_servers_error_in_the_depth_table_is_data_never_markup() -> None:
    from rich.console import Console

    from spark_state.bench.report import depth_table
    from spark_state.bench.results import DepthResult

    nothing = {"mean": None, "sd": None}
    depth = DepthResult(0, 16, 8, 1, 0, None, nothing, nothing, {}, ["HTTP 500: [bold]x[/bold] \x1b[31m"])
    result = EndpointResult("http://h", "m", None, None, "t", {}, None, [], depths=[depth])
    console = Console(width=120, record=True)
    console.print(depth_table([result]))
    shown = console.export_text()
    assert "[bold]x[/bold]" in shown and "\x1b" not in shown
