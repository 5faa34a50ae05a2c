"""Bench results as plain data, and their versioned JSON document."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

RESULT_FORMAT = "spark-state/bench/v1"


@dataclass
class RequestResult:
    """One request as the client saw it. Times are perf_counter seconds."""

    ok: bool
    started: float
    ended: float
    sent: float = 0.0  # the request was on the wire: TTFT starts here (client queuing is send_delay)
    status: int | None = None
    error: str | None = None
    first_token: float | None = None  # first chunk with non-empty content
    last_token: float | None = None
    completion_tokens: int = 0
    prompt_tokens: int | None = None  # usage.prompt_tokens: what the server counted (None: it sent no usage)
    tokens_from: str = "usage"  # "usage", or "chunks" when the server sent no usage (a flagged fallback)
    content_chunks: int = 0
    finish_reason: str | None = None
    early_stop: bool = False  # ended before max_tokens (EOS, a stop word): counted, measured, reported
    send_delay: float = 0.0  # start → request headers on the wire, less TCP connect: pool wait or a busy loop
    saw_done: bool = False
    due: float | None = None  # when the request should have left: level start or the stream's previous end
    chunk_times: list[float] = field(default_factory=list)  # arrival of each chunk with content (first_token…)

    @property
    def dispatch_lag(self) -> float:
        """Due → on the wire: what the client added before the server could start (TTFT excludes it)."""
        return max(0.0, (self.sent or self.started) - (self.started if self.due is None else self.due))

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - (self.sent or self.started)

    @property
    def decode_tok_s(self) -> float | None:
        if self.first_token is None or self.last_token is None or self.completion_tokens < 2:
            return None
        span = self.last_token - self.first_token
        # Tokens after the first chunk; a server may pack several tokens per chunk.
        first_chunk_tokens = self.completion_tokens / max(self.content_chunks, 1)
        return (self.completion_tokens - first_chunk_tokens) / span if span > 0 else None

    @property
    def wall(self) -> float:
        return self.ended - self.started

    # Latency figures as vLLM's benchmark_serving.py defines them (benchmarks/backend_request_func.py and
    # calculate_metrics): ITL = every gap between two chunks with content; TPOT = (last − first token) over the
    # tokens after the first; E2EL = on the wire → last token.
    @property
    def itls(self) -> list[float]:
        times = self.chunk_times
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def tpot(self) -> float | None:
        if self.first_token is None or self.last_token is None or self.completion_tokens < 2:
            return None
        return (self.last_token - self.first_token) / (self.completion_tokens - 1)

    @property
    def e2el(self) -> float | None:
        return None if self.last_token is None else self.last_token - (self.sent or self.started)

    def meets(self, slo: Slo) -> bool:
        """Every per-request objective held (a failed request meets none)."""
        checks = (
            (slo.ttft_ms, [self.ttft]),
            (slo.itl_ms, self.itls),
            (slo.tpot_ms, [self.tpot]),
            (slo.e2el_ms, [self.e2el]),
        )
        return self.ok and all(
            bound is None or all(v is not None and v * 1000 <= bound for v in values) for bound, values in checks
        )


@dataclass(frozen=True)
class Slo:
    """What one request must meet to count toward goodput (milliseconds; None: no objective). A late token
    anywhere in an answer is a missed ITL objective."""

    ttft_ms: float | None = None
    itl_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.itl_ms, self.tpot_ms, self.e2el_ms))


@dataclass
class ClientHealth:
    """How the client itself was doing: a busy event loop or pool waits inflate the server's figures."""

    loop_lag_p50_ms: float | None = None
    loop_lag_p99_ms: float | None = None
    loop_lag_max_ms: float | None = None
    send_delay_p99_ms: float | None = None
    limited: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RunFigures:
    """A run's latency tail (ms summaries, vLLM's definitions: RequestResult), goodput, and the server's own
    figures while it ran (server_metrics: peaks of running/waiting requests and KV-cache use, preemptions)."""

    itl_ms: dict[str, float | None] = field(default_factory=dict)
    tpot_ms: dict[str, float | None] = field(default_factory=dict)
    e2el_ms: dict[str, float | None] = field(default_factory=dict)
    prefill_tok_s: dict[str, float | None] = field(default_factory=dict)  # prompt tokens / TTFT, per request
    goodput_pct: float | None = None  # share of requests meeting the service's Slo; None when it declares none
    server: dict[str, float] = field(default_factory=dict)


@dataclass
class SerialResult(RunFigures):
    requests: int
    ok: int
    ttft_ms: dict[str, float | None]
    decode_tok_s: dict[str, float | None]
    wall_s: dict[str, float | None]
    completion_tokens_p50: float | None
    early_stops: int
    errors: list[str]
    fallback_token_counts: int  # requests whose token count came from chunks, not usage
    client: ClientHealth
    dispatch_lag_ms: dict[str, float | None] = field(default_factory=dict)  # next to TTFT: their sum is the wait


@dataclass(kw_only=True)
class LoadFigures(RunFigures):
    """A run under load (a concurrency level or a request rate): what it served and how fast."""

    requests: int
    ok: int
    aggregate_tok_s: float | None
    ttft_ms: dict[str, float | None]
    duration_s: float
    completion_tokens: int
    early_stops: int
    errors: list[str]
    client: ClientHealth
    dispatch_lag_ms: dict[str, float | None] = field(default_factory=dict)  # next to TTFT: their sum is the wait


@dataclass(kw_only=True)
class LevelResult(LoadFigures):
    """A closed-loop run: `concurrency` streams, each sending its next request when the last one ended."""

    concurrency: int
    per_stream_decode_tok_s: dict[str, float | None]


@dataclass(kw_only=True)
class RateResult(LoadFigures):
    """An open-loop run: requests leave at Poisson arrival times for `rate_rps`, whatever the answers."""

    rate_rps: float
    achieved_rps: float | None  # requests over the span from the first to the last one on the wire
    peak_in_flight: int


@dataclass
class DepthResult:
    """Serial requests at one context depth (bench/depth.py): prefill and generation rates as mean ± sd."""

    depth: int  # context tokens before the prompt's own
    prompt_tokens: int  # the prompt's own tokens (llama-bench's pp)
    max_tokens: int  # tokens asked for (llama-bench's tg)
    requests: int
    ok: int
    counted_prompt_tokens: float | None  # the server's count of the whole prompt, median over the requests
    pp_tok_s: dict[str, float | None]  # mean, sd
    tg_tok_s: dict[str, float | None]  # mean, sd
    ttft_ms: dict[str, float | None]
    errors: list[str] = field(default_factory=list)


@dataclass
class Interval:
    """One figure over repeated runs of the same bench: mean with its 95 % confidence interval, and the range."""

    mean: float
    low: float
    high: float
    least: float
    most: float
    runs: int


@dataclass
class EndpointResult:
    url: str
    model: str
    host: str | None
    service: str | None
    started_at: str  # ISO-8601 UTC
    settings: dict[str, Any]
    serial: SerialResult | None
    levels: list[LevelResult]
    resident_gib: float | None = None
    rates: list[RateResult] = field(default_factory=list)
    depths: list[DepthResult] = field(default_factory=list)
    stack: str | None = None  # what served it (a service's stack; None for a bare --url)
    image: str | None = None  # the image it ran from, as the host names it
    spark_state: str = ""  # the spark-state version that measured it
    # With --repeat N: the headline figures of each run (bench.repeats), and how each moved over the runs.
    # The figures above are the last run's.
    repeats: list[dict[str, float | None]] = field(default_factory=list)
    spread: dict[str, Interval] = field(default_factory=dict)

    def level(self, concurrency: int) -> LevelResult | None:
        return next((lv for lv in self.levels if lv.concurrency == concurrency), None)


@dataclass
class Check:
    """One expectation against one measurement."""

    metric: str
    expected: str  # e.g. "<= 35 ms"
    measured: float | None
    ok: bool
    note: str = ""
    skipped: bool = False  # the run was asked not to measure it (--serial 0, other levels, --no-resident)

    @property
    def failed(self) -> bool:
        return not self.ok and not self.skipped


@dataclass
class Verdict:
    service: str
    host: str | None
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)


def to_document(results: list[EndpointResult], verdicts: list[Verdict], baseline: str | None = None) -> dict[str, Any]:
    return {
        "format": RESULT_FORMAT,
        "baseline": baseline,
        "results": [asdict(r) for r in results],
        "verdicts": [{**asdict(v), "passed": v.passed} for v in verdicts],
    }


def _client(data: dict[str, Any]) -> ClientHealth:
    return ClientHealth(**data)


def from_document(doc: dict[str, Any]) -> tuple[list[EndpointResult], list[Verdict]]:
    if doc.get("format") != RESULT_FORMAT:
        raise ValueError(f"not a bench result of format {RESULT_FORMAT}: {doc.get('format')!r}")
    results = []
    for r in doc["results"]:
        serial = r.get("serial")
        if serial is not None:
            serial = SerialResult(**{**serial, "client": _client(serial["client"])})
        levels = [LevelResult(**{**lv, "client": _client(lv["client"])}) for lv in r.get("levels", [])]
        rates = [RateResult(**{**rr, "client": _client(rr["client"])}) for rr in r.get("rates", [])]
        depths = [DepthResult(**d) for d in r.get("depths", [])]
        spread = {name: Interval(**i) for name, i in r.get("spread", {}).items()}
        parsed = {"serial": serial, "levels": levels, "rates": rates, "depths": depths, "spread": spread}
        results.append(EndpointResult(**{**r, **parsed}))
    verdicts = [
        Verdict(v["service"], v.get("host"), [Check(**c) for c in v["checks"]]) for v in doc.get("verdicts", [])
    ]
    return results, verdicts
