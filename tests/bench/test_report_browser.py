"""The HTML report in a real headless browser (Debian's chromium, installed by scripts/setup.sh): its charts draw
without a network, with axis titles and units, and two endpoints with the same figures show as two series;
the page says what was measured. The screenshot is kept beside the report for a person to look at."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from spark_state.bench.charts import figures
from spark_state.bench.report import endpoint_label, html_report
from spark_state.bench.results import ClientHealth, EndpointResult, LevelResult, SerialResult
from spark_state.bench.stats import summary

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def _result(host: str) -> EndpointResult:
    serial = SerialResult(
        5, 5, summary([30.8, 31.0]), summary([38.8, 38.6]), summary([5.2, 5.3]), 200, 0, [], 0, ClientHealth()
    )
    levels = [
        LevelResult(
            concurrency=c,
            requests=2 * c,
            ok=2 * c,
            aggregate_tok_s=33.0 * c,
            per_stream_decode_tok_s=summary([38.0]),
            ttft_ms=summary([31.0 + c, 32.0 + c]),
            duration_s=10.0,
            completion_tokens=400 * c,
            early_stops=0,
            errors=[],
            client=ClientHealth(),
        )
        for c in (1, 2, 4, 8)
    ]
    settings = {"prompt": "In one paragraph: what is RAG?", "max_tokens": 200, "concurrency": [1, 2, 4, 8], "rates": []}
    return EndpointResult(
        f"http://{host}:8004",
        "llama-3.1-8b",
        host,
        "trtllm-nvfp4",
        "2026-12-07T08:00:00+00:00",
        settings,
        serial,
        levels,
        stack="trtllm-engine",
        image="nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3",
        spark_state="0.1.0",
    )


def _browser(*argv: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER, "chromium is missing: scripts/setup.sh installs it"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"]
    return subprocess.run([BROWSER, *flags, *argv], capture_output=True, text=True, timeout=120)


def test_two_hosts_with_the_same_figures_are_two_visible_series() -> None:
    results = [_result("spark-01"), _result("spark-02")]
    throughput = figures(results, endpoint_label)[0]
    styles = {(t.marker.symbol, t.line.dash) for t in throughput.data}
    assert len(throughput.data) == 2 and len(styles) == 2  # same points, different marker and dash


def test_the_report_draws_in_a_browser_with_titles_legend_and_what_was_measured(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(html_report([_result("spark-01"), _result("spark-02")], [], [], None))
    dom = _browser("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    for title in ("concurrency (requests in flight)", "aggregate throughput (tok/s)", "TTFT p50 (ms)"):
        assert f">{title}<" in page, title  # drawn by plotly.js in the page: an axis title with its unit
    assert page.count(">spark-01/trtllm-nvfp4<") >= 2 and page.count(">spark-02/trtllm-nvfp4<") >= 2  # legends
    assert page.count('class="trace scatter') >= 4  # two series in each of the two charts
    for measured in ("llama-3.1-8b", "trtllm-engine", "tritonserver:25.12", "200", "1, 2, 4, 8", "0.1.0"):
        assert measured in page, measured
    shot = tmp_path / "report.png"
    taken = _browser(f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    assert taken.returncode == 0 and shot.stat().st_size > 20_000, taken.stderr[-2000:]
