"""The bench client against a real HTTP server with known timing, and against each quirk real servers have."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from spark_state.bench.report import depth_table, html_report
from spark_state.bench.results import (
    ClientHealth,
    EndpointResult,
    SerialResult,
    Slo,
    from_document,
    to_document,
)
from spark_state.bench.runner import BenchSettings, arrival_offsets, run_endpoint
from spark_state.bench.stats import percentile
from spark_state.cli import main

TTFT_MS, GAP_MS = 40.0, 10.0

# The bench's figures are checked against what a known-timing server really did, to the millisecond: another test
# busy on the same two cores would move them (scripts/test.sh runs these alone).
pytestmark = pytest.mark.timing


class KnownServer:
    def __init__(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spark_rehearsal.standins.openai_server",
                "--port",
                "0",
                "--ttft-ms",
                str(TTFT_MS),
                "--step-ms",
                str(GAP_MS),
                *flags,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{self.proc.stdout.readline().split()[-1]}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[KnownServer]:
    srv = KnownServer(*getattr(request, "param", ()))
    yield srv
    srv.stop()


def _run(url: str, **kw) -> EndpointResult:
    settings = BenchSettings(
        **{"max_tokens": 40, "serial_requests": 3, "warmup_requests": 1, "concurrency": [1], "timeout_s": 30, **kw}
    )
    result = asyncio.run(run_endpoint(url, settings))
    return result


def test_serial_figures_match_known_timing(server: KnownServer) -> None:
    result = _run(server.url)
    s = result.serial
    assert s.ok == 3 and not s.errors and s.early_stops == 0
    assert TTFT_MS - 1 <= s.ttft_ms["p50"] <= TTFT_MS + 8
    assert s.decode_tok_s["p50"] == pytest.approx(1000 / GAP_MS, rel=0.03)
    assert s.completion_tokens_p50 == 40 and s.fallback_token_counts == 0
    assert result.model == "standin"
    # aggregate at c=1: 40 tokens over TTFT + 39 gaps
    assert result.level(1).aggregate_tok_s == pytest.approx(40 / (TTFT_MS / 1000 + 39 * GAP_MS / 1000), rel=0.08)


def test_at_concurrency_64_figures_stay_near_the_truth(server: KnownServer) -> None:
    result = _run(server.url, serial_requests=0, warmup_requests=0, concurrency=[64], requests_per_level=128)
    level = result.level(64)
    assert level.ok == 128 and level.requests == 128
    assert TTFT_MS - 1 <= level.ttft_ms["p50"] <= TTFT_MS + 25
    assert level.per_stream_decode_tok_s["p50"] == pytest.approx(1000 / GAP_MS, rel=0.08)
    assert level.client.loop_lag_p99_ms is not None
    # every request's dispatch lag (due → on the wire) is summarised next to TTFT
    assert level.dispatch_lag_ms["n"] == 128 and 0 <= level.dispatch_lag_ms["p50"] <= level.dispatch_lag_ms["max"]
    assert result.serial is None


# Steps of 5 ms; every fourth serial request (numbers 5, 9, …, 21: the warm-up is number 1) holds tokens 5, 10
# and 15 for ten extra steps: 15 of the 380 gaps are 55 ms, the rest 5 ms, so ITL p95 is 5 ms and p99 55 ms.
LATE_STEP_MS = 5.0
LATE = ("--step-ms", "5", "--late", "5,9,13,17,21", "--late-tokens", "5,10,15", "--late-steps", "10")


@pytest.mark.parametrize("server", [LATE], indirect=True)
def test_tail_latencies_and_goodput_match_a_known_itl_distribution(server: KnownServer) -> None:
    settings = BenchSettings(max_tokens=20, serial_requests=20, warmup_requests=1, concurrency=[], timeout_s=30)
    result = asyncio.run(run_endpoint(server.url, settings, slo=Slo(ttft_ms=100, itl_ms=30)))
    s = result.serial
    assert s.ok == 20 and s.itl_ms["n"] == 20 * 19
    # The truth is what the server did: when each request arrived and each chunk left it (one monotonic clock).
    # On a loaded machine the server's own steps drift from the 10/110 ms it aims at; the bench must see the gaps
    # it really made, not the ones it meant.
    timings = httpx.get(f"{server.url}/debug/timings").json()
    served = [timings[str(n)] for n in range(2, 22)]
    truth = {
        "ttft": [(t[4][0] - t[0]) * 1000 for t in served],
        "itl": [(b - a) * 1000 for t in served for a, b in itertools.pairwise(t[4])],
    }

    def near(measured: float | None, figure: str, q: float) -> bool:  # within 2 %, or 1 ms, of the truth
        true = percentile(truth[figure], q)
        return measured is not None and true is not None and abs(measured - true) <= max(0.02 * true, 1.0)

    assert near(s.itl_ms["p50"], "itl", 50) and near(s.itl_ms["p95"], "itl", 95) and near(s.itl_ms["p99"], "itl", 99)
    assert near(s.ttft_ms["p95"], "ttft", 95) and near(s.ttft_ms["p99"], "ttft", 99)
    # the distribution as designed
    assert percentile(truth["itl"], 95) < 2 * LATE_STEP_MS < 10 * LATE_STEP_MS < percentile(truth["itl"], 99)
    assert s.tpot_ms["p50"] == pytest.approx(LATE_STEP_MS, rel=0.15)
    assert s.e2el_ms["p99"] == pytest.approx(TTFT_MS + 19 * LATE_STEP_MS + 3 * 10 * LATE_STEP_MS, rel=0.1)
    assert s.goodput_pct == 75.0  # the five requests with late tokens missed the 30 ms ITL objective


def test_latency_expectations_are_judged_and_their_bounds_are_goodputs_objectives() -> None:
    from spark_state.bench.verdict import judge, slo_for

    expect = {"ttft_p50_ms": 60, "ttft_p99_ms": 200, "itl_p99_ms": 50, "goodput_pct": 90}
    assert slo_for(expect) == Slo(ttft_ms=200, itl_ms=50)
    result = EndpointResult("http://x", "m", None, "svc", "now", {}, None, [])
    result.serial = SerialResult(
        requests=20,
        ok=20,
        ttft_ms={"p50": 41.0, "p99": 43.0},
        decode_tok_s={},
        wall_s={},
        completion_tokens_p50=40,
        early_stops=0,
        errors=[],
        fallback_token_counts=0,
        client=ClientHealth(),
        itl_ms={"p99": 110.0},
        goodput_pct=75.0,
    )
    checks = {c.metric: c for c in judge(result, expect, "svc").checks}
    assert checks["TTFT p99 (ms)"].ok and not checks["ITL p99 (ms)"].ok and not checks["goodput (%)"].ok
    assert checks["goodput (%)"].measured == 75.0 and checks["goodput (%)"].expected == ">= 90"


def test_an_open_loop_run_keeps_its_poisson_rate_whatever_the_server_does(server: KnownServer) -> None:
    # Each answer takes 40 + 39 × 10 ms; at 30 requests/s about thirteen are in flight: closed loop would slow down.
    settings = BenchSettings(
        max_tokens=40, serial_requests=0, warmup_requests=0, concurrency=[], rates=[30.0], requests_per_rate=60
    )
    (run,) = asyncio.run(run_endpoint(server.url, settings)).rates
    assert run.requests == run.ok == 60 and not run.errors
    assert run.achieved_rps == pytest.approx(30.0, rel=0.05)
    assert run.peak_in_flight >= 5 and run.ttft_ms["p50"] == pytest.approx(TTFT_MS, abs=8)
    offsets = arrival_offsets(20.0, 100)  # longer, for the shape of the gaps
    assert offsets == arrival_offsets(20.0, 100) and offsets[-1] == pytest.approx(99 / 20.0)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    mean = statistics.fmean(gaps)
    assert 0.75 < statistics.pstdev(gaps) / mean < 1.25  # exponential gaps: their spread is their mean


@pytest.mark.parametrize("server", [("--metrics", "vllm", "--max-batch-size", "4")], indirect=True)
def test_the_servers_own_metrics_say_what_it_ran_and_queued(server: KnownServer) -> None:
    """Eight streams on a server that decodes four at once: its vLLM metrics show four running, the rest
    waiting and its batch (the stand-in's KV use) full, read while the level ran."""
    result = _run(
        server.url, serial_requests=0, warmup_requests=0, concurrency=[8], requests_per_level=24, max_tokens=20
    )
    assert result.level(8).server == {"running_peak": 4.0, "waiting_peak": 4.0, "kv_cache_use_peak": 1.0}


def test_a_server_without_prometheus_metrics_gives_no_server_figures(server: KnownServer) -> None:
    result = _run(server.url, serial_requests=0, warmup_requests=0, concurrency=[2])
    assert result.level(2).server == {}  # the "plain" stand-in's names are no server's


@pytest.mark.parametrize("server", [("--no-role-chunk",)], indirect=True)
def test_without_role_chunk(server: KnownServer) -> None:
    result = _run(server.url)
    assert result.serial.ttft_ms["p50"] >= TTFT_MS - 1


def test_role_only_first_chunk_does_not_count_as_first_token(server: KnownServer) -> None:
    # The default server sends {"role": "assistant", "content": ""} at once, before prefill.
    result = _run(server.url)
    assert result.serial.ttft_ms["p50"] >= TTFT_MS - 1


@pytest.mark.parametrize("server", [("--usage", "last")], indirect=True)
def test_usage_in_the_last_content_chunk(server: KnownServer) -> None:
    result = _run(server.url)
    assert result.serial.completion_tokens_p50 == 40 and result.serial.fallback_token_counts == 0


@pytest.mark.parametrize("server", [("--prefill-tok-s", "20000")], indirect=True)
def test_input_tokens_ask_every_request_with_a_prompt_of_that_many_tokens(
    server: KnownServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--input-tokens 2000`: serial runs and levels alike send prompts the server counts as 2,000 tokens, so
    TTFT is the server's 40 ms plus 2,000 tokens at 20,000 tok/s (100 ms)."""
    html = tmp_path / "report.html"
    argv = ["bench", "--url", server.url, "--max-tokens", "16", "--serial", "3", "--concurrency", "2"]
    assert main([*argv, "--input-tokens", "2000", "--json", "--html", str(html), "--no-save"]) == 0
    (result,) = from_document(json.loads(capsys.readouterr().out))[0]
    assert result.serial is not None and result.serial.ttft_ms["p50"] == pytest.approx(TTFT_MS + 100, rel=0.03)
    assert result.levels[0].ttft_ms["p50"] == pytest.approx(TTFT_MS + 100, rel=0.05)
    prefill = result.serial.prefill_tok_s["p50"]  # the server's own count of each prompt / its TTFT
    assert prefill == pytest.approx(1000 * 2000 / (TTFT_MS + 100), rel=0.04)
    assert result.settings["input_tokens"] == 2000 and result.settings["input_words"]
    assert "synthetic, 2000 tokens as the server counts them" in html.read_text()
    assert main([*argv, "--input-tokens", "2000", "--prompt", "hi", "--no-save"]) == 64  # a usage error
    assert "give one" in capsys.readouterr().err


@pytest.mark.parametrize("server", [("--usage", "none")], indirect=True)
def test_missing_usage_falls_back_to_chunks_and_says_so(server: KnownServer) -> None:
    result = _run(server.url)
    assert result.serial.completion_tokens_p50 == 40
    assert result.serial.fallback_token_counts == 3


@pytest.mark.parametrize("server", [("--tokens-per-chunk", "4")], indirect=True)
def test_several_tokens_per_chunk(server: KnownServer) -> None:
    result = _run(server.url)
    s = result.serial
    assert s.completion_tokens_p50 == 40
    assert s.decode_tok_s["p50"] == pytest.approx(1000 / GAP_MS, rel=0.04)
    # The first content chunk carries 4 tokens: it arrives after 3 decode steps.
    assert TTFT_MS + 3 * GAP_MS - 1 <= s.ttft_ms["p50"] <= TTFT_MS + 3 * GAP_MS + 8


@pytest.mark.parametrize("server", [("--no-done",)], indirect=True)
def test_stream_ended_by_connection_close(server: KnownServer) -> None:
    result = _run(server.url)
    assert result.serial.ok == 3 and result.serial.completion_tokens_p50 == 40


@pytest.mark.parametrize("server", [("--stop-after", "15")], indirect=True)
def test_answers_that_end_early_are_measured_and_reported(server: KnownServer) -> None:
    result = _run(server.url)
    s = result.serial
    assert s.early_stops == 3 and s.ok == 3 and s.completion_tokens_p50 == 15
    # measured from what arrived: 15 tokens are enough for TTFT and decode
    assert TTFT_MS - 1 <= s.ttft_ms["p50"] <= TTFT_MS + 8
    assert s.decode_tok_s["p50"] == pytest.approx(1000 / GAP_MS, rel=0.03)
    assert result.level(1).aggregate_tok_s == pytest.approx(15 / (TTFT_MS / 1000 + 14 * GAP_MS / 1000), rel=0.08)


@pytest.mark.parametrize("server", [("--fail", "3")], indirect=True)
def test_http_errors_are_reported_per_request(server: KnownServer) -> None:
    result = _run(server.url)  # request 1 is the warm-up, 3 is the second serial request
    s = result.serial
    assert s.requests == 3 and s.ok == 2
    assert s.errors == ["1× HTTP 500: simulated internal error"]


@pytest.mark.parametrize("server", [("--stall", "2")], indirect=True)
def test_timeouts_are_reported_and_the_run_goes_on(server: KnownServer) -> None:
    result = _run(server.url, timeout_s=1.5)
    s = result.serial
    assert s.ok == 2 and s.errors == ["1× timed out after 1.5 s"]
    assert result.level(1).ok == 2


@pytest.mark.parametrize("server", [("--no-chat-template",)], indirect=True)
def test_chat_template_400_is_reported(server: KnownServer) -> None:
    result = _run(server.url, concurrency=[])
    assert result.serial.ok == 0
    assert result.serial.errors == ["3× HTTP 400: No chat template found for the given tokenizer and tools."]


def test_completions_endpoint(server: KnownServer) -> None:
    result = _run(server.url, chat=False)
    assert result.serial.ok == 3 and result.serial.completion_tokens_p50 == 40


def test_result_document_round_trips(server: KnownServer) -> None:
    result = _run(server.url)
    doc = json.loads(json.dumps(to_document([result], [])))
    (back,), verdicts = from_document(doc)
    assert back == result and verdicts == []
    assert doc["results"][0]["serial"]["dispatch_lag_ms"]["n"] == 3
    # history written before dispatch lag was recorded still reads
    for part in [doc["results"][0]["serial"], *doc["results"][0]["levels"]]:
        del part["dispatch_lag_ms"]
    (old,), _ = from_document(doc)
    assert old.serial.dispatch_lag_ms == {} and old.serial.ttft_ms == result.serial.ttft_ms


def test_cli_url_mode_json_and_html(server: KnownServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = tmp_path / "report.html"
    code = main(
        [
            "bench",
            "--url",
            server.url,
            "--max-tokens",
            "20",
            "--serial",
            "2",
            "--concurrency",
            "1,2",
            "--json",
            "--html",
            str(html),
            "--results-dir",
            str(tmp_path / "hist"),
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "spark-state/bench/v1" and len(doc["results"]) == 1
    text = html.read_text()
    assert "Plotly.newPlot" in text and "c=2" in text and "What was measured" in text
    assert len(list((tmp_path / "hist").rglob("*.json"))) == 1


def test_repeated_runs_give_each_figure_its_mean_and_confidence_interval(
    server: KnownServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--repeat 3`: three whole runs, each run's headline figures kept, and per figure the mean with Student's
    t interval over them, around the server's known timing (TTFT 40 ms, a token every 10 ms)."""
    html = tmp_path / "report.html"
    argv = ["bench", "--url", server.url, "--max-tokens", "8", "--serial", "3", "--concurrency", "2"]
    assert main([*argv, "--repeat", "3", "--json", "--html", str(html), "--no-save"]) == 0
    (result,) = from_document(json.loads(capsys.readouterr().out))[0]
    assert len(result.repeats) == 3
    assert (
        set(result.spread)
        == set(result.repeats[0])
        == {
            "serial TTFT p50 (ms)",
            "serial ITL p50 (ms)",
            "serial decode p50 (tok/s)",
            "c=2 aggregate (tok/s)",
            "c=2 TTFT p95 (ms)",
        }
    )
    for figure, interval in result.spread.items():
        values = [run[figure] for run in result.repeats]
        mean = statistics.fmean(values)
        half = 4.303 * statistics.stdev(values) / 3**0.5  # t(0.975, 2 degrees of freedom)
        assert interval.runs == 3 and interval.least == min(values) and interval.most == max(values)
        assert interval.mean == pytest.approx(mean) and interval.high - interval.low == pytest.approx(2 * half)
    assert result.spread["serial TTFT p50 (ms)"].mean == pytest.approx(TTFT_MS, abs=3)
    assert result.spread["serial ITL p50 (ms)"].mean == pytest.approx(GAP_MS, abs=1)
    assert result.repeats[-1]["serial TTFT p50 (ms)"] == result.serial.ttft_ms["p50"]  # type: ignore[union-attr]
    assert "Over repeated runs" in html.read_text()


@pytest.mark.parametrize("server", [("--prefill-tok-s", "20000")], indirect=True)
def test_depth_rows_give_prefill_and_generation_rates_as_the_community_tables_do(
    server: KnownServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--depth 0,4000 --pp 1000`: prompts the server itself counts as 1,000 and 5,000 tokens (within 1 %), and
    the pp/tg rows at the server's known timing: TTFT = 40 ms + prompt / 20,000 tok/s, a token every 10 ms."""
    html = tmp_path / "report.html"
    argv = ["bench", "--url", server.url, "--max-tokens", "16", "--serial", "3", "--concurrency", "1"]
    assert main([*argv, "--depth", "0,4000", "--pp", "1000", "--json", "--html", str(html), "--no-save"]) == 0
    (result,) = from_document(json.loads(capsys.readouterr().out))[0]
    assert [(d.depth, d.prompt_tokens, d.max_tokens, d.ok) for d in result.depths] == [
        (0, 1000, 16, 3),
        (4000, 1000, 16, 3),
    ]
    for d in result.depths:
        counted = d.counted_prompt_tokens
        total = d.depth + d.prompt_tokens
        assert counted is not None and abs(counted - total) <= total * 0.01, (d.depth, counted)
        truth = counted / (TTFT_MS / 1000 + counted / 20000)
        # A busy machine only delays tokens (rates read low), so the band is wider below than above; a wrong
        # formula (depth or prompt alone, or the first token counted) is off by far more than either side.
        assert truth * 0.93 <= d.pp_tok_s["mean"] <= truth * 1.03, (d.depth, d.pp_tok_s)
        assert 1000 / GAP_MS * 0.93 <= d.tg_tok_s["mean"] <= 1000 / GAP_MS * 1.03, (d.depth, d.tg_tok_s)
    console = Console(width=120, record=True)
    console.print(depth_table([result]))
    out = console.export_text()
    assert all(row in out for row in ("pp1000 ", "tg16 ", "pp1000 @ d4000", "tg16 @ d4000")), out
    assert re.search(r"tg16 @ d4000 .* \d+\.\d\d ± \d+\.\d\d", out), out
    assert "pp1000 @ d4000" in html.read_text()


@pytest.mark.parametrize("server", [("--usage", "none")], indirect=True)
def test_depth_rows_need_the_servers_own_prompt_count(server: KnownServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--url", server.url, "--max-tokens", "8", "--serial", "1", "--concurrency", "1"]
    assert main([*argv, "--depth", "1000", "--no-save"]) == 1
    assert "usage.prompt_tokens" in capsys.readouterr().err


def test_a_prompt_shorter_than_the_shortest_synthetic_one_is_refused(
    server: KnownServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--url", server.url, "--max-tokens", "8", "--serial", "1", "--concurrency", "1"]
    assert main([*argv, "--depth", "0", "--pp", "2", "--no-save"]) == 1
    assert "shorter than the shortest this bench makes" in capsys.readouterr().err


def test_reports_show_dispatch_lag_beside_ttft(
    server: KnownServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "report.html"
    code = main(
        [
            "bench",
            "--url",
            server.url,
            "--max-tokens",
            "10",
            "--serial",
            "2",
            "--concurrency",
            "1,4",
            "--html",
            str(html),
            "--no-save",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "dispatch p50 (ms)" in out and "TTFT p50 + dispatch lag p50 (ms) under load" in out
    assert re.search(r"\d+\.\d \+ \d+\.\d\d", out), out  # "50.4 + 0.12": TTFT, then the client's lag
    assert "dispatch lag p50" in html.read_text()
    # a result saved before dispatch lag was recorded still renders
    result = _run(server.url)
    result.serial.dispatch_lag_ms = {}
    for level in result.levels:
        level.dispatch_lag_ms = {}
    text = html_report([result], [], [], None)
    assert result.levels and re.search(r"<td>\d+\.\d \+ -</td>", text), text


def test_cli_state_mode_fails_on_unmet_expectation(
    server: KnownServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    state = tmp_path / "state.yaml"
    state.write_text(f"""
images: {{nim: nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest}}
services:
  fast: {{container: nim, port: {port}, expect: {{ttft_p50_ms: 200, decode_tok_s: 50}}}}
bench: {{max_tokens: 20, serial_requests: 2, concurrency: [1]}}
hosts: {{local: {{address: 127.0.0.1, services: [fast]}}}}
""")
    args = ["bench", str(state), "--no-resident", "--results-dir", str(tmp_path / "h")]
    assert main(args) == 0
    state.write_text(state.read_text().replace("decode_tok_s: 50", "decode_tok_s: 500"))
    assert main(args) == 2
    assert "FAIL" in capsys.readouterr().out


def test_unreachable_endpoint_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--url", "http://127.0.0.1:9", "--no-save", "--serial", "1", "--concurrency", "1"]) == 1
    assert "cannot bench http://127.0.0.1:9" in capsys.readouterr().err


EXAMPLE_PROMPT = "In one paragraph: what is retrieval-augmented generation and when is it the wrong tool?"


# Long answers on a faster known server (4 ms a token): the same checks in less of the suite's time.
FAST_GAP_MS = 4.0
FAST = ("--step-ms", str(FAST_GAP_MS))


@pytest.mark.parametrize("server", [FAST], indirect=True)
def test_answers_end_at_eos_and_the_bench_measures_them(server: KnownServer) -> None:
    """The field report's answer to its prompt is 165 tokens: a real server stops there, below a 200 ceiling."""
    result = _run(server.url, prompt=EXAMPLE_PROMPT, max_tokens=200, serial_requests=2, requests_per_level=2)
    s, level = result.serial, result.level(1)
    assert s.completion_tokens_p50 == 165 and s.early_stops == 2 and s.ok == 2
    assert s.ttft_ms["p50"] is not None and s.decode_tok_s["p50"] == pytest.approx(1000 / FAST_GAP_MS, rel=0.03)
    assert level.aggregate_tok_s == pytest.approx(
        165 / (TTFT_MS / 1000 + 164 * FAST_GAP_MS / 1000), rel=0.08
    )  # as the serial test: c=1 closed loop
    assert result.settings["ignore_eos"] is False  # the result says how it asked


@pytest.mark.parametrize("server", [FAST], indirect=True)
def test_ignore_eos_asks_for_every_token(server: KnownServer) -> None:
    result = _run(
        server.url,
        prompt=EXAMPLE_PROMPT,
        max_tokens=200,
        serial_requests=1,
        concurrency=[1],
        requests_per_level=1,
        ignore_eos=True,
    )
    assert result.serial.completion_tokens_p50 == 200 and result.serial.early_stops == 0
    assert result.settings["ignore_eos"] is True


def _chat(url: str, **fields: object) -> httpx.Response:
    body = {"model": "standin", "messages": [{"role": "user", "content": EXAMPLE_PROMPT}], **fields}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)


@pytest.mark.parametrize("server", [FAST], indirect=True)
def test_length_fields_as_trtllm_serve_reads_them(server: KnownServer) -> None:
    answer = _chat(server.url, max_tokens=200).json()
    assert answer["usage"]["completion_tokens"] == 165 and answer["choices"][0]["finish_reason"] == "stop"
    answer = _chat(server.url, max_completion_tokens=100).json()  # the newer name of the same limit
    assert answer["usage"]["completion_tokens"] == 100 and answer["choices"][0]["finish_reason"] == "length"
    answer = _chat(server.url, max_tokens=200, min_tokens=180).json()  # runs past EOS up to min_tokens
    assert answer["usage"]["completion_tokens"] == 180 and answer["choices"][0]["finish_reason"] == "stop"
    other = _chat(server.url, max_tokens=400, messages=[{"role": "user", "content": "Name three rivers."}]).json()
    assert 40 <= other["usage"]["completion_tokens"] < 400  # another prompt, another (fixed) length


def test_unknown_request_fields_are_refused_like_trtllm_serve(server: KnownServer) -> None:
    refused = _chat(server.url, max_tokens=8, max_token=8)  # a typo
    assert refused.status_code == 400 and "max_token: Extra inputs are not permitted" in refused.json()["message"]
    refused = _chat(server.url, max_tokens=8, stream_options={"include_usage": True})
    assert refused.status_code == 400 and "only be defined when stream is true" in refused.json()["message"]
    refused = _chat(server.url, max_tokens=8, stream=True, stream_options={"include_usag": True})
    assert refused.status_code == 400 and "stream_options.include_usag" in refused.json()["message"]


@pytest.mark.parametrize("server", [("--unknown-fields", "ignore")], indirect=True)
def test_unknown_request_fields_are_ignored_like_vllm(server: KnownServer) -> None:
    answer = _chat(server.url, max_tokens=8, max_token=8)
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 8


@pytest.mark.parametrize("server", [(), ("--no-done", "--tokens-per-chunk", "3")], indirect=True)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_stand_in_stream_events_are_the_openai_chunk_shape(server: KnownServer, path: str) -> None:
    """Every SSE event the known-timing server writes is one OpenAI chunk object, byte for byte what json.dumps
    gives, whatever the framing: a guard for whoever makes the instrument's chunk building cheaper."""
    chat = path.endswith("chat/completions")
    prompt = {"messages": [{"role": "user", "content": 'say "hi" \\ twice'}]} if chat else {"prompt": "hi"}
    body = {"model": "standin", **prompt, "max_tokens": 7, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server.url + path, json=body, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    events = [line.removeprefix("data: ") for line in lines]
    assert all(line.startswith("data: ") for line in lines) and ("[DONE]" in events) == (
        "--no-done" not in server.proc.args
    )
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    texts = []
    for raw, chunk in zip(events, chunks, strict=False):
        assert raw == json.dumps(chunk)  # the layout json.dumps gives, no stray spacing or escaping
        assert chunk["object"] == ("chat.completion.chunk" if chat else "text_completion")
        assert chunk["id"] == chunks[0]["id"] and chunk["model"] == "standin"
        for choice in chunk["choices"]:
            texts.append(choice["delta"].get("content", "") if chat else choice["text"])
            assert choice["finish_reason"] in (None, "length")
    assert chunks[-1]["usage"]["completion_tokens"] == 7 and len("".join(texts).split()) == 7
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"


@pytest.mark.parametrize("server", [("--stop-after", "5")], indirect=True)
def test_every_table_fits_80_columns_with_every_column(
    server: KnownServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """COLUMNS is honoured when piped, and at 80 no table hides or cuts a column: one too wide goes on in a
    second table that repeats the stack, and every word of every header and note is shown whole."""
    monkeypatch.setenv("COLUMNS", "80")
    argv = ["bench", "--url", f"{server.url}/v1", "--max-tokens", "12", "--serial", "2", "--concurrency", "1,2"]
    extra = ["--rate", "4", "--requests-per-rate", "4", "--repeat", "2", "--depth", "0,64", "--pp", "16"]
    assert main([*argv, *extra, "--no-save"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    words = set(out.replace("┃", " ").replace("│", " ").split())
    headers = ["TTFT p50 (ms)", "dispatch p50 (ms)", "decode (tok/s)", "wall p50 (s)", "tokens", "notes"]
    headers += ["ITL p99", "TPOT p50", "E2EL p99", "goodput %", "achieved", "peak"]
    headers += ["figure", "95 % CI", "min – max", "runs", "serial decode p50 (tok/s)", "4 req/s E2EL p50 (ms)"]
    headers += ["prefill p50 (tok/s)", "test", "t/s", "pp16 @ d64", "tg12 @ d64", "pp16 @ d64 (t/s)"]
    for header in headers:
        assert set(header.split()) <= words, header
    assert {"ended", "before", "max_tokens", server.url} <= words  # a note, the stack: whole
