"""Run the bench against one endpoint: warm-up, a serial streaming run, then a closed-loop concurrency sweep."""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from .. import __version__
from ..desired.model import Bench
from ..errors import BenchError
from .client import LoopLagMonitor, stream_completion
from .depth import run_depth, sized_words, synthetic_prompt
from .results import ClientHealth, EndpointResult, LevelResult, RateResult, RequestResult, SerialResult, Slo
from .server_metrics import MetricsSampler
from .stats import percentile, summary
from .wire import StreamConnection

# The client says it limited a figure when its loop wakes this late (p99), or when requests left later than
# this after they were started (a pool wait or a busy loop delays the request, and inflates its TTFT).
LOOP_LAG_LIMIT_MS = 5.0
SEND_DELAY_LIMIT_MS = 5.0

Progress = Callable[[str, int, int], None]
T = TypeVar("T")


def run_measured(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a bench on uvloop where it is installed (its loop wakes ≈2× sooner under load: event-loop lag p99
    at c=64 went from 5.2 to 2.1 ms here), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


NO_SLO = Slo()  # goodput is not reckoned
RATE_WINDOW_S = 30.0  # an open-loop run's default length in arrivals
RATE_SEED = 0  # arrival times are the same on every run (vLLM's benchmark_serving seeds its draw with 0 too)
_DEFAULTS = Bench()  # the state file's bench section as it is when left out: the one set of bench defaults


@dataclass
class BenchSettings:
    """How a bench runs; its defaults are the state file's (desired.model.Bench)."""

    prompt: str = _DEFAULTS.prompt
    max_tokens: int = _DEFAULTS.max_tokens
    temperature: float = _DEFAULTS.temperature
    serial_requests: int = _DEFAULTS.serial_requests
    warmup_requests: int = _DEFAULTS.warmup_requests
    concurrency: list[int] = field(default_factory=lambda: list(_DEFAULTS.concurrency))
    requests_per_level: int | None = _DEFAULTS.requests_per_level  # None: 2 per stream
    rates: list[float] = field(default_factory=lambda: list(_DEFAULTS.rates))  # open-loop runs, requests/s
    requests_per_rate: int | None = _DEFAULTS.requests_per_rate  # None: RATE_WINDOW_S of arrivals, at least 20
    duration_s: float | None = None  # run each level this long instead of a request count
    depths: list[int] = field(default_factory=lambda: list(_DEFAULTS.depths))  # the pp/tg table (bench/depth.py)
    prompt_tokens: int = _DEFAULTS.prompt_tokens  # at each depth, the prompt's own tokens after the context
    # Instead of `prompt`, every request a synthetic prompt of this many tokens as the server counts them;
    # `input_words` is what sizing it found (bench/depth.py).
    input_tokens: int | None = _DEFAULTS.input_tokens
    input_words: int | None = None
    timeout_s: float = _DEFAULTS.timeout_s
    chat: bool = True
    # Ask for exactly max_tokens tokens (`ignore_eos`, which trtllm-serve and vLLM/NIM accept; plain OpenAI
    # endpoints do not): comparable figures across stacks. Off: answers end at EOS, as users get them.
    ignore_eos: bool = _DEFAULTS.ignore_eos

    def requests_at(self, concurrency: int) -> int:
        return self.requests_per_level or 2 * concurrency

    def requests_at_rate(self, rate: float) -> int:
        return self.requests_per_rate or max(20, round(RATE_WINDOW_S * rate))


def _errors(results: list[RequestResult]) -> list[str]:
    counts = Counter(r.error for r in results if not r.ok and r.error)
    return [f"{count}× {message}" for message, count in counts.most_common(10)]


def _client_health(lag: LoopLagMonitor, results: list[RequestResult], first_wave: int = 0) -> ClientHealth:
    """`first_wave` requests start together by construction; their queueing says nothing about the client."""
    steady = sorted(results, key=lambda r: r.started)[first_wave:]
    delays = [r.send_delay * 1000 for r in steady]
    health = ClientHealth(
        loop_lag_p50_ms=lag.p(50),
        loop_lag_p99_ms=lag.p(99),
        loop_lag_max_ms=max(lag.samples) * 1000 if lag.samples else None,
        send_delay_p99_ms=percentile(delays, 99),
    )
    if health.loop_lag_p99_ms is not None and health.loop_lag_p99_ms > LOOP_LAG_LIMIT_MS:
        health.reasons.append(f"event-loop lag p99 {health.loop_lag_p99_ms:.1f} ms > {LOOP_LAG_LIMIT_MS:g} ms")
    if health.send_delay_p99_ms is not None and health.send_delay_p99_ms > SEND_DELAY_LIMIT_MS:
        health.reasons.append(
            f"request send delay p99 {health.send_delay_p99_ms:.1f} ms > {SEND_DELAY_LIMIT_MS:g} ms (pool wait or busy loop)"
        )
    health.limited = bool(health.reasons)
    return health


def _ms(values: list[float]) -> dict[str, float | None]:
    return summary([v * 1000 for v in values])


def _latencies(results: list[RequestResult], slo: Slo) -> dict[str, Any]:
    """ITL (every gap, pooled over the requests), TPOT, E2EL and prefill rate of the answers that arrived, and
    goodput: the share of all requests (failed ones included) that met every objective of `slo`."""
    good = [r for r in results if r.ok]
    return {
        "itl_ms": _ms([gap for r in good for gap in r.itls]),
        "tpot_ms": _ms([r.tpot for r in good if r.tpot is not None]),
        "e2el_ms": _ms([r.e2el for r in good if r.e2el is not None]),
        # prompt tokens (the server's count) / TTFT: the prefill rate each request saw
        "prefill_tok_s": summary([r.prompt_tokens / r.ttft for r in good if r.prompt_tokens and r.ttft]),
        "goodput_pct": 100.0 * sum(r.meets(slo) for r in results) / len(results) if slo and results else None,
    }


_REQUEST_NUMBERS = itertools.count(1)  # each synthetic prompt's own first line


async def _one(connection: StreamConnection, model: str, s: BenchSettings) -> RequestResult:
    prompt = s.prompt if s.input_words is None else synthetic_prompt(s.input_words, next(_REQUEST_NUMBERS))
    return await stream_completion(
        connection, model, prompt, s.max_tokens, s.temperature, s.chat, s.timeout_s, s.ignore_eos
    )


async def discover_model(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(f"{url}/v1/models", timeout=10)
    response.raise_for_status()
    models = response.json().get("data") or []
    if not models:
        raise BenchError(f"{url}/v1/models lists no model")
    return str(models[0]["id"])


async def run_serial(
    url: str,
    model: str,
    s: BenchSettings,
    progress: Progress | None = None,
    sink: list[RequestResult] | None = None,
    slo: Slo = NO_SLO,
) -> SerialResult:
    connection = stream_connection(url, s)
    try:
        return await _serial(connection, model, s, progress, sink, slo)
    finally:
        connection.close()


async def _serial(
    connection: StreamConnection,
    model: str,
    s: BenchSettings,
    progress: Progress | None,
    sink: list[RequestResult] | None,
    slo: Slo,
) -> SerialResult:
    for i in range(s.warmup_requests):
        await _one(connection, model, s)
        if progress:
            progress("warm-up", i + 1, s.warmup_requests)
    lag = LoopLagMonitor()
    lag.start()
    results = []
    for i in range(s.serial_requests):
        result = await _one(connection, model, s)
        result.due = result.started
        results.append(result)
        if progress:
            progress("serial", i + 1, s.serial_requests)
    await lag.stop()
    if sink is not None:
        sink.extend(results)
    good = [r for r in results if r.ok]  # an answer that ended at EOS is measured like any other
    return SerialResult(
        requests=len(results),
        ok=sum(r.ok for r in results),
        ttft_ms=_ms([r.ttft for r in good if r.ttft is not None]),
        dispatch_lag_ms=_ms([r.dispatch_lag for r in results]),
        decode_tok_s=summary([r.decode_tok_s for r in good if r.decode_tok_s is not None]),
        wall_s=summary([r.wall for r in good]),
        completion_tokens_p50=percentile([float(r.completion_tokens) for r in results if r.ok], 50),
        early_stops=sum(r.ok and r.early_stop for r in results),
        errors=_errors(results),
        fallback_token_counts=sum(r.ok and r.tokens_from == "chunks" for r in results),
        client=_client_health(lag, results),
        **_latencies(results, slo),
    )


def stream_connection(url: str, settings: BenchSettings) -> StreamConnection:
    """A connection of its own for one closed-loop stream (wire.py says why not a shared httpx pool)."""
    return StreamConnection(url, _tls_context(), connect_timeout=min(10.0, settings.timeout_s))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verified TLS context for every stream: loading the CA bundle costs ≈20 ms each time."""
    return ssl.create_default_context()


async def run_level(
    url: str,
    model: str,
    s: BenchSettings,
    concurrency: int,
    progress: Progress | None = None,
    sink: list[RequestResult] | None = None,
    slo: Slo = NO_SLO,
    metrics_url: str | None = None,
) -> LevelResult:
    """`concurrency` closed-loop streams: each sends its next request as soon as the previous one ends."""
    total = s.requests_at(concurrency)
    results: list[RequestResult] = []
    issued = 0
    connections = [stream_connection(url, s) for _ in range(concurrency)]
    deadline: float | None = None

    async def stream_worker(connection: StreamConnection, begun: float) -> None:
        nonlocal issued
        due = begun  # closed loop: the next request is due when the previous one ended
        while (deadline is None and issued < total) or (deadline is not None and time.perf_counter() < deadline):
            issued += 1
            result = await _one(connection, model, s)
            result.due = due
            due = result.ended
            results.append(result)
            if progress:
                progress(f"c={concurrency}", len(results), total if deadline is None else len(results))

    try:
        # Open every stream's connection first, so no stream pays for a TCP handshake inside its TTFT.
        await asyncio.gather(*(c.open() for c in connections), return_exceptions=True)
        lag = LoopLagMonitor()
        lag.start()
        server = MetricsSampler(metrics_url)
        server.start()
        begun = time.perf_counter()
        deadline = begun + s.duration_s if s.duration_s else None
        await asyncio.gather(*(stream_worker(c, begun) for c in connections))
        await lag.stop()
        server_figures = await server.stop()
    finally:
        for connection in connections:
            connection.close()
    if sink is not None:
        sink.extend(results)
    return LevelResult(
        concurrency=concurrency,
        # figures from whatever arrived: answers that ended at EOS are measured, not dropped
        per_stream_decode_tok_s=summary([r.decode_tok_s for r in results if r.ok and r.decode_tok_s is not None]),
        **_load_figures(results, begun, _client_health(lag, results, first_wave=concurrency), server_figures, slo),
    )


def _load_figures(
    results: list[RequestResult], begun: float, client: ClientHealth, server: dict[str, float], slo: Slo
) -> dict[str, Any]:
    """What every run under load reports (LoadFigures), from its requests."""
    ok = [r for r in results if r.ok]
    span = (max(r.ended for r in ok) - min(r.started for r in ok)) if ok else 0.0
    tokens = sum(r.completion_tokens for r in ok)
    return {
        "requests": len(results),
        "ok": len(ok),
        "aggregate_tok_s": tokens / span if span > 0 else None,
        "ttft_ms": _ms([r.ttft for r in ok if r.ttft is not None]),
        "dispatch_lag_ms": _ms([r.dispatch_lag for r in results]),
        "duration_s": time.perf_counter() - begun,
        "completion_tokens": tokens,
        "early_stops": sum(r.early_stop for r in ok),
        "errors": _errors(results),
        "client": client,
        "server": server,
        **_latencies(results, slo),
    }


def arrival_offsets(rate: float, count: int, seed: int = RATE_SEED) -> list[float]:
    """Seconds after the start at which `count` requests leave: exponential gaps (Poisson arrivals, as vLLM's
    benchmark_serving.py draws them at burstiness 1), scaled so that the run offers exactly `rate`."""
    rng = random.Random(seed)
    gaps = [rng.expovariate(1.0) for _ in range(count - 1)]
    scale = (count - 1) / rate / sum(gaps) if gaps else 0.0
    return [0.0, *itertools.accumulate(g * scale for g in gaps)]


async def run_rate(
    url: str,
    model: str,
    s: BenchSettings,
    rate: float,
    progress: Progress | None = None,
    sink: list[RequestResult] | None = None,
    slo: Slo = NO_SLO,
    metrics_url: str | None = None,
) -> RateResult:
    """Open loop: each request leaves at its arrival time whatever the server is doing, on a free connection or
    a new one, so a slow server builds a queue instead of slowing the arrivals (as users do)."""
    offsets = arrival_offsets(rate, s.requests_at_rate(rate))
    idle: list[StreamConnection] = []
    every: list[StreamConnection] = []
    results: list[RequestResult] = []
    in_flight = peak = 0

    async def send(due: float) -> None:
        nonlocal in_flight, peak
        if idle:
            connection = idle.pop()
        else:
            connection = stream_connection(url, s)
            every.append(connection)
        in_flight += 1
        peak = max(peak, in_flight)
        result = await _one(connection, model, s)
        in_flight -= 1
        idle.append(connection)
        result.due = due
        results.append(result)
        if progress:
            progress(f"{rate:g} req/s", len(results), len(offsets))

    lag = LoopLagMonitor()
    lag.start()
    server = MetricsSampler(metrics_url)
    server.start()
    begun = time.perf_counter()
    try:
        sending: list[asyncio.Task[None]] = []
        for offset in offsets:
            delay = begun + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sending.append(asyncio.create_task(send(begun + offset)))
        await asyncio.gather(*sending)
    finally:
        await lag.stop()
        server_figures = await server.stop()
        for connection in every:
            connection.close()
    if sink is not None:
        sink.extend(results)
    sent = sorted(r.sent for r in results)
    return RateResult(
        rate_rps=rate,
        achieved_rps=(len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 and sent[-1] > sent[0] else None,
        peak_in_flight=peak,
        **_load_figures(results, begun, _client_health(lag, results), server_figures, slo),
    )


def server_root(url: str) -> str:
    """The server's root from a base URL written either way, `http://h:8000` or OpenAI's `http://h:8000/v1`."""
    root = url.rstrip("/")
    return root.removesuffix("/v1").rstrip("/")


async def run_endpoint(
    url: str,
    settings: BenchSettings,
    model: str | None = None,
    host: str | None = None,
    service: str | None = None,
    progress: Progress | None = None,
    slo: Slo = NO_SLO,
    metrics_path: str | None = "/metrics",
) -> EndpointResult:
    """`metrics_path`: where the server's Prometheus metrics are read during the levels and rates (None: not)."""
    url = server_root(url)
    metrics_url = f"{url}{metrics_path}" if metrics_path else None
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    if model is None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(settings.timeout_s, connect=10.0)) as client:
            model = await discover_model(client, url)
    if settings.input_tokens:  # sized for this endpoint: each served model counts with its own tokenizer
        connection = stream_connection(url, settings)
        try:
            words = await sized_words(connection, model, settings, settings.input_tokens)
        finally:
            connection.close()
        settings = replace(settings, input_words=words)
    serial = await run_serial(url, model, settings, progress, slo=slo) if settings.serial_requests else None
    levels = [
        await run_level(url, model, settings, c, progress, slo=slo, metrics_url=metrics_url)
        for c in settings.concurrency
    ]
    rates = [
        await run_rate(url, model, settings, r, progress, slo=slo, metrics_url=metrics_url) for r in settings.rates
    ]
    depths = []
    if settings.depths:
        connection = stream_connection(url, settings)
        try:
            depths = [await run_depth(connection, model, settings, d, progress) for d in settings.depths]
        finally:
            connection.close()
    return EndpointResult(
        url=url,
        model=model,
        spark_state=__version__,
        host=host,
        service=service,
        started_at=started_at,
        settings=asdict(settings),
        serial=serial,
        levels=levels,
        rates=rates,
        depths=depths,
    )
