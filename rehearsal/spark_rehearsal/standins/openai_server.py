"""A stand-in OpenAI-compatible LLM server with continuous-batching pacing (stdlib only: it runs in images).

Behaves like trtllm-serve / NIM where spark-state relies on them: `/health`, `/v1/models`, `/metrics`,
`/v1/chat/completions` and `/v1/completions` with SSE streaming, `max_tokens`, greedy determinism, the HTTP 400
for a tokenizer without chat template. Tokens are paced by a step loop: every active stream gets one token per
step, and a step takes longer the more streams are active, as in a real batched decoder.

Quirks real servers differ in are switchable, so a client can be tested against each of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The field report's example prompt and how long a greedy Llama 3.1 8B answer to it is: it ends at EOS after
# 165 tokens (7.3 s on NIM, 5.1 s on NVFP4), well before the bench's 200-token ceiling.
EXAMPLE_PROMPT = "In one paragraph: what is retrieval-augmented generation and when is it the wrong tool?"
EXAMPLE_ANSWER_TOKENS = 165

# Request fields each real server accepts. trtllm-serve's request models forbid extra fields (pydantic
# extra="forbid" in tensorrt_llm/serve/openai_protocol.py: a typo is a 400); vLLM, inside NIM, allows them and
# only logs "The following fields were present in the request but ignored" (vllm/entrypoints/openai/protocol.py).
TRTLLM_CHAT_FIELDS = frozenset(
    {
        "messages",
        "prompt_token_ids",
        "model",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "max_completion_tokens",
        "max_tokens",
        "n",
        "presence_penalty",
        "response_format",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "reasoning_effort",
        "prompt_ignore_length",
        "best_of",
        "use_beam_search",
        "top_k",
        "top_p_min",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "early_stopping",
        "stop_token_ids",
        "include_stop_str_in_output",
        "ignore_eos",
        "min_tokens",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "truncate_prompt_tokens",
        "lora_request",
        "echo",
        "add_generation_prompt",
        "add_special_tokens",
        "documents",
        "chat_template",
        "chat_template_kwargs",
        "disaggregated_params",
        "cache_salt",
    }
)
TRTLLM_COMPLETION_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "best_of",
        "echo",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_tokens",
        "n",
        "presence_penalty",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "suffix",
        "temperature",
        "top_p",
        "user",
        "lora_request",
        "prompt_ignore_length",
        "use_beam_search",
        "top_k",
        "top_p_min",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "early_stopping",
        "stop_token_ids",
        "include_stop_str_in_output",
        "ignore_eos",
        "min_tokens",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "truncate_prompt_tokens",
        "return_context_logits",
        "detokenize",
        "add_special_tokens",
        "response_format",
        "disaggregated_params",
    }
)
STREAM_OPTIONS_FIELDS = frozenset({"include_usage", "continuous_usage_stats"})


def answer_tokens(prompt: str) -> int:
    """How many tokens the stand-in's greedy answer to `prompt` has before EOS: the field report's 165 for its
    example prompt, otherwise a fixed length between 40 and 399 derived from the prompt (same prompt, same
    length, as greedy decoding gives)."""
    if prompt.strip() == EXAMPLE_PROMPT:
        return EXAMPLE_ANSWER_TOKENS
    return 40 + int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") % 360


ANSWER = [
    "Retrieval-augmented",
    "generation",
    "pairs",
    "a",
    "language",
    "model",
    "with",
    "a",
    "search",
    "step:",
    "before",
    "answering,",
    "the",
    "system",
    "retrieves",
    "passages",
    "from",
    "a",
    "document",
    "store,",
    "usually",
    "by",
    "embedding",
    "similarity,",
    "and",
    "places",
    "them",
    "in",
    "the",
    "prompt",
    "so",
    "the",
    "model",
    "can",
    "ground",
    "its",
    "answer",
    "in",
    "current,",
    "private",
    "or",
    "citable",
    "sources",
    "rather",
    "than",
    "in",
    "whatever",
    "it",
    "memorised",
    "during",
    "training.",
    "It",
    "shines",
    "when",
    "facts",
    "change",
    "faster",
    "than",
    "you",
    "can",
    "retrain,",
    "when",
    "answers",
    "must",
    "cite",
    "their",
    "evidence,",
    "and",
    "when",
    "the",
    "corpus",
    "is",
    "too",
    "large",
    "for",
    "a",
    "context",
    "window.",
    "It",
    "is",
    "the",
    "wrong",
    "tool",
    "when",
    "the",
    "task",
    "needs",
    "reasoning",
    "rather",
    "than",
    "lookup,",
    "when",
    "the",
    "corpus",
    "is",
    "small",
    "enough",
    "to",
    "fit",
    "in",
    "the",
    "prompt,",
    "when",
    "retrieval",
    "quality",
    "is",
    "poor",
    "so",
    "the",
    "model",
    "is",
    "grounded",
    "in",
    "the",
    "wrong",
    "passages,",
    "or",
    "when",
    "latency",
    "budgets",
    "cannot",
    "absorb",
    "the",
    "extra",
    "search",
    "hop;",
    "then",
    "fine-tuning,",
    "long",
    "context",
    "or",
    "a",
    "plain",
    "database",
    "query",
    "serves",
    "better.",
]


@dataclass
class Pacing:
    """Prefill time and decode step time as a function of active streams (linear between the given points)."""

    ttft_ms: float
    step_ms: dict[int, float]  # active streams -> milliseconds per decode step
    # Prefill is compute-bound and grows with the prompt: llama-bench on a Spark reads pp2048 at 3,611 tok/s with
    # an empty context and 2,686 tok/s at depth 16,384 (jetsonhacks.com, "llama.cpp on NVIDIA DGX Spark",
    # b6767). Given a rate, the first token waits ttft_ms plus prompt tokens / rate; None: ttft_ms alone.
    prefill_tok_s: float | None = None
    slowdown: float = 1.0  # >1 simulates a regressed host
    # A GPU description whose "slowdown" is followed while serving (`spark-rehearsal slow`): like a GPU whose
    # clocks drop, a running server gets slower at once, with no restart.
    slowdown_file: str | None = None
    _checked: float = field(default=0.0, repr=False)
    _mtime: float = field(default=0.0, repr=False)

    def _factor(self) -> float:
        now = time.monotonic()
        if self.slowdown_file is not None and now - self._checked > 0.5:
            self._checked = now
            try:
                mtime = os.stat(self.slowdown_file).st_mtime
                if mtime != self._mtime:
                    with open(self.slowdown_file) as f:
                        self.slowdown = float(json.load(f).get("slowdown", 1.0))
                    self._mtime = mtime
            except (OSError, ValueError, TypeError, AttributeError):
                pass  # keep the last known factor
        return self.slowdown

    def step_seconds(self, active: int) -> float:
        points = sorted(self.step_ms.items())
        if len(points) == 1 or active <= points[0][0]:
            ms = points[0][1]
        else:
            ms = points[-1][1]
            for (n0, t0), (n1, t1) in itertools.pairwise(points):
                if active <= n1:
                    ms = t0 + (t1 - t0) * (active - n0) / (n1 - n0)
                    break
            else:  # beyond the table: keep the last slope
                (n0, t0), (n1, t1) = points[-2], points[-1]
                ms = t1 + (t1 - t0) / (n1 - n0) * (active - n1)
        return ms * self._factor() / 1000.0

    def ttft_seconds(self, prompt_tokens: int = 0) -> float:
        prefill = prompt_tokens / self.prefill_tok_s if self.prefill_tok_s else 0.0
        return (self.ttft_ms / 1000.0 + prefill) * self._factor()


@dataclass
class Quirks:
    role_first_chunk: bool = True  # vLLM/NIM send {"role": "assistant"} with no content first
    usage: str = "separate"  # "separate" chunk with empty choices, "last" content chunk, or "none"
    tokens_per_chunk: int = 1
    send_done: bool = True  # False: end the stream by closing the connection
    stop_after: int | None = None  # finish with "stop" after this many tokens (an early stop)
    fail_requests: frozenset[int] = frozenset()  # request numbers (from 1) answered with HTTP 500
    stall_requests: frozenset[int] = frozenset()  # request numbers that never answer
    # A known inter-token-latency distribution for testing clients: in these requests, each token index of
    # `late_tokens` is held for `late_steps` extra decode steps (its gap is (1 + late_steps) steps).
    late_requests: frozenset[int] = frozenset()
    late_tokens: frozenset[int] = frozenset()
    late_steps: int = 0


@dataclass
class ServerConfig:
    model: str
    pacing: Pacing
    quirks: Quirks = field(default_factory=Quirks)
    chat_template: bool = True
    max_batch_size: int = 64
    max_seq_len: int = 4096
    owned_by: str = "tensorrt_llm"
    unknown_fields: str = "refuse"  # "refuse" as trtllm-serve does (HTTP 400), "ignore" as vLLM/NIM does (a log line)
    # NIM's documented routes (NIM API reference): /v1/health/live (the server is up), /v1/health/ready (503 until
    # the model is loaded), /v1/models, /v1/metrics; no /health. trtllm-serve: /health, /metrics.
    nim_routes: bool = False
    # "vllm": vLLM's names (vllm/v1/metrics/loggers.py), labelled by model_name and engine; "sglang": SGLang's
    # (sglang/srt/observability/metrics_collector.py, labelled as its scheduler labels them); "llamacpp":
    # llama-server's (tools/server/server-task.cpp to_metrics, unlabelled, with HELP lines); "none": no /metrics
    # (SGLang without --enable-metrics); "llamacpp-off": llama-server without --metrics (501); "trtllm":
    # trtllm-serve's /metrics, JSON iteration stats (serve/openai_server.py get_iteration_stats), and with
    # "trtllm-perf" (the LLM API option return_perf_metrics) /prometheus/metrics too; "plain": NIM's
    # unprefixed names on /v1/metrics
    metrics: str = "plain"
    # llama-server (tools/server/server-http.cpp middleware_server_state): until the model is loaded every route
    # answers 503 with this error; once loaded /health answers {"status": "ok"}.
    loading_error: dict[str, Any] | None = None
    health_body: dict[str, Any] | None = None


# tensorrt_llm/metrics/collector.py (MetricsCollector): each histogram's documentation and buckets.
_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0)
TRTLLM_HISTOGRAMS = {
    "e2e_request_latency_seconds": (
        "Histogram of end to end request latency in seconds.",
        (*_LATENCY_BUCKETS, 480.0, 960.0, 1920.0, 7680.0),
    ),
    "time_to_first_token_seconds": (
        "Histogram of time to first token in seconds.",
        (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
        + (80.0, 160.0, 640.0, 2560.0),
    ),
    "time_per_output_token_seconds": (
        "Histogram of time per output token in seconds.",
        (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0),
    ),
    "request_queue_time_seconds": (
        "Histogram of time spent in WAITING phase for request.",
        (*_LATENCY_BUCKETS, 480.0, 960.0, 1920.0, 7680.0),
    ),
}


def _labelled(labels: str, families: tuple[tuple[str, str, str, Any], ...]) -> str:
    """Prometheus text for (name, kind, extra labels, value) families, each sample with `labels`."""
    return "".join(
        f"# TYPE {name} {kind}\n{name}{{{labels}{extra}}} {value}\n" for name, kind, extra, value in families
    )


class BatchScheduler:
    """The decode loop: one token per active stream per step; at most max_batch_size streams decode at once.

    Each step hands every active stream its token from the loop itself (a synchronous callback that writes the
    chunk), rather than waking one task per stream: at 64+ streams, waking tasks made the server's own loop the
    slowest part of a known-timing measurement."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.active: dict[int, Callable[[], bool]] = {}  # stream id -> step(); True when the stream is done
        self.slots = asyncio.Semaphore(config.max_batch_size)
        self._next_id = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.completed_tokens = 0
        self.completed_requests = 0
        self.waiting = 0  # requests that arrived while every batch slot was taken

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        next_step = time.perf_counter()
        while True:
            if not self.active:
                self._wake.clear()
                await self._wake.wait()
                next_step = time.perf_counter()
            next_step += self.config.pacing.step_seconds(len(self.active))
            delay = next_step - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_step = time.perf_counter()
            for stream_id, step in list(self.active.items()):
                if step():
                    del self.active[stream_id]

    async def stream(
        self,
        count: int,
        emit: Callable[[int], None],
        arrived: float | None = None,
        held: Mapping[int, int] | None = None,
        prompt_tokens: int = 0,
    ) -> None:
        """Call `emit(index)` for token indices 0..count-1, paced: prefill for the first, then one per decode
        step (plus `held[index]` steps before that index, for a known late token). `emit` raising
        ConnectionError (the client went away) ends the stream with that error.

        Prefill counts from `arrived` (when the request's first bytes reached the server) unless the request
        had to wait for a batch slot: then from when it got one. So the known TTFT holds from arrival, however
        long this one-process server took to read the requests of a burst ahead of it."""
        waited = self.slots.locked()
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            begun = time.perf_counter() if waited or arrived is None else arrived
            prefilled = begun + self.config.pacing.ttft_seconds(prompt_tokens)
            await asyncio.sleep(max(0.0, prefilled - time.perf_counter()))
            emit(0)
            if count == 1:
                return
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            next_index = 1
            waits = dict(held or {})

            def step() -> bool:
                nonlocal next_index
                if waits.get(next_index, 0) > 0:
                    waits[next_index] -= 1
                    return False
                try:
                    emit(next_index)
                except ConnectionError as exc:
                    done.set_exception(exc)
                    return True
                next_index += 1
                if next_index == count:
                    done.set_result(None)
                    return True
                return False

            stream_id = self._next_id
            self._next_id += 1
            self.active[stream_id] = step
            self._wake.set()
            try:
                await done
            finally:
                self.active.pop(stream_id, None)
        finally:
            self.slots.release()

    async def tokens(self, count: int, arrived: float | None = None, prompt_tokens: int = 0) -> AsyncIterator[int]:
        """Token indices 0..count-1 with the same pacing, for answers that are not streamed."""
        queue: asyncio.Queue[int] = asyncio.Queue()
        streaming = self.stream(count, queue.put_nowait, arrived, prompt_tokens=prompt_tokens)
        producer = asyncio.get_running_loop().create_task(streaming)
        try:
            for _ in range(count):
                yield await queue.get()
        finally:
            producer.cancel()


class _ArrivalReader(asyncio.StreamReader):
    """Remembers when bytes reached an empty buffer: the arrival of a request's first bytes, stamped in the
    loop's I/O callback, before any handler runs (the stamp the server's timings count from)."""

    arrived = 0.0

    def feed_data(self, data: bytes) -> None:
        if not self._buffer:  # type: ignore[attr-defined]
            self.arrived = time.perf_counter()
        super().feed_data(data)


def _prompt_text(value: Any) -> str:
    """The prompt as text: a completion prompt, or the contents of the chat messages in order."""
    if isinstance(value, str):
        return value
    parts = []
    for message in value if isinstance(value, list) else []:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(parts)


def _word(index: int) -> str:
    word = ANSWER[index % len(ANSWER)]
    return word if index == 0 else " " + word


class OpenAIServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.scheduler = BatchScheduler(config)
        self.request_count = 0
        # Per request: [arrived, first token sent, last token sent, tokens, [when each chunk was sent]] on the
        # monotonic clock, so a client on the same machine can separate its own overhead from the server's.
        self.timings: dict[int, list[Any]] = {}
        self.finished: list[tuple[float, float, float | None]] = []  # TTFT, end to end, time per output token
        self.stats_read_at = 0  # completed requests when trtllm-serve's iteration stats were last read
        self.started = time.time()
        self.ready = False
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.scheduler.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: asyncio.StreamReaderProtocol(_ArrivalReader(limit=1 << 20, loop=loop), self._handle),
            host,
            port,
            backlog=1024,
        )
        return self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.scheduler._loop_task is not None:
            self.scheduler._loop_task.cancel()

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:  # the whole head in one read: fewer loop turns per request under load
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        raise
                    break
                # taken now: a body arriving later into an emptied buffer would move the stamp
                arrived = reader.arrived if isinstance(reader, _ArrivalReader) else time.perf_counter()
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines:
                    key, _, value = line.partition(":")
                    if key:
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                keep_alive = await self._route(method, target.split("?", 1)[0], body, writer, arrived)
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _respond(
        self, writer: asyncio.StreamWriter, status: int, payload: Any, content_type: str = "application/json"
    ) -> bool:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            500: "Internal Server Error",
            501: "Not Implemented",
            503: "Service Unavailable",
        }
        head = (
            f"HTTP/1.1 {status} {reason.get(status, 'Status')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        return True

    async def _route(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter, arrived: float) -> bool:
        ready_path, metrics_path = (
            ("/v1/health/ready", "/v1/metrics") if self.config.nim_routes else ("/health", "/metrics")
        )
        if not self.ready and self.config.loading_error is not None:
            return await self._respond(writer, 503, self.config.loading_error, "application/json; charset=utf-8")
        if path == ready_path and self.ready and self.config.health_body is not None:
            return await self._respond(writer, 200, self.config.health_body)
        if path == ready_path:
            return await self._respond(writer, 200 if self.ready else 503, b"", "text/plain")
        if path == "/v1/health/live" and self.config.nim_routes:
            return await self._respond(writer, 200, b"", "text/plain")
        if path == "/v1/models" and method == "GET":
            if not self.ready:
                return await self._error(writer, 503, "model is still loading", "ServiceUnavailableError")
            return await self._respond(
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": self.config.model,
                            "object": "model",
                            "created": int(self.started),
                            "owned_by": self.config.owned_by,
                            "max_model_len": self.config.max_seq_len,
                        }
                    ],
                },
            )
        if path == "/debug/timings":
            return await self._respond(writer, 200, {str(k): v for k, v in self.timings.items()})
        if path == metrics_path and self.config.metrics == "llamacpp-off":
            message = "This server does not support metrics endpoint. Start it with `--metrics`"
            error = {"code": 501, "message": message, "type": "not_supported_error"}
            return await self._respond(writer, 501, {"error": error})
        if path == metrics_path and self.config.metrics.startswith("trtllm"):
            return await self._respond(writer, 200, self._iteration_stats())
        if path in ("/prometheus/metrics", "/prometheus/metrics/") and self.config.metrics == "trtllm-perf":
            return await self._respond(writer, 200, self._trtllm_prometheus().encode(), "text/plain; version=0.0.4")
        if path == metrics_path and self.config.metrics != "none":
            return await self._respond(writer, 200, self._metrics().encode(), "text/plain; version=0.0.4")
        if path in ("/v1/chat/completions", "/v1/completions") and method == "POST":
            return await self._completion(path.endswith("chat/completions"), body, writer, arrived)
        return await self._respond(writer, 404, {"object": "error", "message": f"Not Found: {path}", "code": 404})

    def _iteration_stats(self) -> list[dict[str, Any]]:
        """trtllm-serve's /metrics: the iteration stats queued since the last read (`get_stats_async`), as a JSON
        list; one entry here, with the fields every backend fills (camelCase, as the executor names them)."""
        s = self.scheduler
        if s.completed_requests == self.stats_read_at and not s.active:
            return []
        self.stats_read_at = s.completed_requests
        return [
            {
                "iter": s.completed_tokens,
                "numActiveRequests": len(s.active),
                "numQueuedRequests": s.waiting,
                "maxNumActiveRequests": self.config.max_batch_size,
                "numCompletedRequests": s.completed_requests,
                "timestamp": time.strftime("%m-%d-%Y %H:%M:%S"),
            }
        ]

    def _trtllm_prometheus(self) -> str:
        """trtllm-serve's /prometheus/metrics (only with return_perf_metrics): tensorrt_llm/metrics/collector.py's
        counter and histograms, labelled model_name and engine_type "undefined" as openai_server.py creates them,
        observed from the requests this server finished."""
        labels = 'engine_type="undefined",model_name="undefined"'
        text = "# HELP request_success_total Count of successfully processed requests.\n"
        text += "# TYPE request_success_total counter\n"
        text += f'request_success_total{{{labels},finished_reason="stop"}} {self.scheduler.completed_requests}\n'
        observed = {
            "e2e_request_latency_seconds": [e2e for _, e2e, _ in self.finished],
            "time_to_first_token_seconds": [ttft for ttft, _, _ in self.finished],
            "time_per_output_token_seconds": [tpot for _, _, tpot in self.finished if tpot is not None],
        }
        for name, (about, buckets) in TRTLLM_HISTOGRAMS.items():
            values = observed.get(name, [])
            text += f"# HELP {name} {about}\n# TYPE {name} histogram\n"
            for bound in [*buckets, float("inf")]:
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                text += f'{name}_bucket{{{labels},le="{le}"}} {sum(1 for v in values if v <= bound)}\n'
            text += f"{name}_count{{{labels}}} {len(values)}\n{name}_sum{{{labels}}} {sum(values)}\n"
        return text

    def _metrics(self) -> str:
        s = self.scheduler
        if self.config.metrics == "vllm":
            labels = f'engine="0",model_name="{self.config.model}"'
            families = (
                ("vllm:num_requests_running", "gauge", "", len(s.active)),
                ("vllm:num_requests_waiting", "gauge", "", s.waiting),
                ("vllm:kv_cache_usage_perc", "gauge", "", round(len(s.active) / self.config.max_batch_size, 4)),
                ("vllm:generation_tokens_total", "counter", "", s.completed_tokens),
                ("vllm:request_success_total", "counter", ',finished_reason="stop"', s.completed_requests),
            )
            return _labelled(labels, families)
        if self.config.metrics == "llamacpp":
            items = (
                ("counter", "prompt_tokens_total", "Number of prompt tokens processed, excluding cached tokens", 0),
                ("counter", "tokens_predicted_total", "Number of generation tokens processed", s.completed_tokens),
                ("gauge", "requests_processing", "Number of requests processing", len(s.active)),
                ("gauge", "requests_deferred", "Number of requests deferred", s.waiting),
            )
            return "".join(
                f"# HELP llamacpp:{name} {text}\n# TYPE llamacpp:{name} {kind}\nllamacpp:{name} {value}\n"
                for kind, name, text, value in items
            )
        if self.config.metrics == "sglang":
            labels = f'engine_type="unified",model_name="{self.config.model}",moe_ep_rank="0",pp_rank="0",tp_rank="0"'
            families = (
                ("sglang:num_running_reqs", "gauge", "", len(s.active)),
                ("sglang:num_queue_reqs", "gauge", "", s.waiting),
                ("sglang:token_usage", "gauge", "", round(len(s.active) / self.config.max_batch_size, 4)),
                ("sglang:generation_tokens_total", "counter", "", s.completed_tokens),
                ("sglang:num_requests_total", "counter", "", s.completed_requests),
            )
            return _labelled(labels, families)
        return (
            "# TYPE num_requests_running gauge\n"
            f"num_requests_running {len(s.active)}\n"
            "# TYPE request_success_total counter\n"
            f"request_success_total {s.completed_requests}\n"
            "# TYPE generation_tokens_total counter\n"
            f"generation_tokens_total {s.completed_tokens}\n"
        )

    # ------------------------------------------------------------------ completions

    async def _completion(self, chat: bool, body: bytes, writer: asyncio.StreamWriter, arrived: float) -> bool:
        self.request_count += 1
        number = self.request_count
        self.timings[number] = [arrived, 0.0, 0.0, 0, []]
        quirks = self.config.quirks
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            return await self._error(writer, 400, f"invalid JSON: {exc}")
        if number in quirks.stall_requests:
            await asyncio.sleep(3600)
        if number in quirks.fail_requests:
            return await self._error(writer, 500, "simulated internal error", "InternalServerError")
        if not self.ready:
            return await self._error(writer, 503, "model is still loading", "ServiceUnavailableError")
        if chat and not self.config.chat_template:
            return await self._error(writer, 400, "No chat template found for the given tokenizer and tools.")
        if chat and not isinstance(request.get("messages"), list):
            return await self._error(writer, 400, "'messages' is required")
        refused = self._refused_fields(request, chat)
        if refused:
            return await self._error(writer, 400, refused)
        prompt = _prompt_text(request.get("messages") if chat else request.get("prompt"))
        prompt_tokens = len(prompt.split())
        limit = (
            request.get("max_tokens")
            if chat is False
            else (request.get("max_completion_tokens") or request.get("max_tokens"))
        )
        limit = int(limit) if limit is not None else self.config.max_seq_len - prompt_tokens
        if limit < 1:
            return await self._error(writer, 400, "max_tokens must be at least 1")
        # A greedy answer ends at EOS unless asked not to (ignore_eos) or to run on (min_tokens).
        natural = answer_tokens(prompt)
        if request.get("ignore_eos"):
            natural = limit
        natural = max(natural, int(request.get("min_tokens") or 0))
        if quirks.stop_after is not None:
            natural = min(natural, quirks.stop_after)
        count = min(limit, natural)
        finish = "length" if count == limit and quirks.stop_after is None else "stop"
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{number:08d}"
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            await self._stream(writer, chat, rid, count, finish, include_usage, prompt_tokens)
            return quirks.send_done
        text = "".join([t async for t in self._texts(count, arrived, prompt_tokens)])
        self._account(count)
        message = {"role": "assistant", "content": text} if chat else None
        choice = {"index": 0, "finish_reason": finish, **({"message": message} if chat else {"text": text})}
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count, "total_tokens": prompt_tokens + count}
        return await self._respond(
            writer,
            200,
            {
                "id": rid,
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": self.config.model,
                "choices": [choice],
                "usage": usage,
            },
        )

    async def _texts(self, count: int, arrived: float, prompt_tokens: int) -> AsyncIterator[str]:
        async for index in self.scheduler.tokens(count, arrived, prompt_tokens):
            yield _word(index)

    def _refused_fields(self, request: Any, chat: bool) -> str | None:
        """The 400 message trtllm-serve gives for fields its request model does not know; vLLM ignores them."""
        if not isinstance(request, dict):
            return "the request body must be a JSON object"
        known = TRTLLM_CHAT_FIELDS if chat else TRTLLM_COMPLETION_FIELDS
        extra = sorted(set(request) - known)
        if self.config.unknown_fields != "refuse":
            if extra:
                print(
                    f"WARNING The following fields were present in the request but ignored: {set(extra)}",
                    file=sys.stderr,
                    flush=True,
                )
            return None
        options = request.get("stream_options")
        if isinstance(options, dict):
            extra += [f"stream_options.{k}" for k in sorted(set(options) - STREAM_OPTIONS_FIELDS)]
            if not request.get("stream"):
                return "Stream options can only be defined when stream is true."
        if extra:
            return "; ".join(f"{name}: Extra inputs are not permitted" for name in extra)
        return None

    def _account(self, tokens: int, timing: list[Any] | None = None) -> None:
        self.scheduler.completed_tokens += tokens
        self.scheduler.completed_requests += 1
        if timing is not None and timing[2]:  # arrived, first token, last token: what trtllm-serve observes
            arrived, first, last = timing[0], timing[1], timing[2]
            tpot = (last - first) / (tokens - 1) if tokens > 1 else None
            self.finished.append((first - arrived, last - arrived, tpot))

    async def _error(
        self, writer: asyncio.StreamWriter, status: int, message: str, kind: str = "BadRequestError"
    ) -> bool:
        return await self._respond(
            writer, status, {"object": "error", "message": message, "type": kind, "param": None, "code": status}
        )

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        chat: bool,
        rid: str,
        count: int,
        finish: str,
        include_usage: bool,
        prompt_tokens: int,
    ) -> None:
        quirks = self.config.quirks
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count, "total_tokens": prompt_tokens + count}
        headers = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        headers += "Transfer-Encoding: chunked\r\n" if quirks.send_done else "Connection: close\r\n"
        head = (headers + "\r\n").encode()

        # Every chunk shares its envelope; only the choice (and, once, usage) differs: encode the envelope once.
        envelope = json.dumps({"id": rid, "object": obj, "created": created, "model": self.config.model})[:-1]

        def event(choices: list[dict[str, Any]], with_usage: bool = False) -> bytes:
            tail = f', "usage": {json.dumps(usage)}' if with_usage else ""
            return self._frame(
                f'data: {envelope}, "choices": {json.dumps(choices)}{tail}}}\n\n'.encode(), chunked=quirks.send_done
            )

        def choice(text: str, finish_reason: str | None) -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {"content": text}, "finish_reason": finish_reason}
            return {"index": 0, "text": text, "finish_reason": finish_reason}

        if chat and quirks.role_first_chunk:
            head += event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        writer.write(head)  # status, headers and the role chunk in one send
        pending: list[str] = []
        timing = self.timings[int(rid.rsplit("-", 1)[1])]

        def emit(index: int) -> None:
            if writer.is_closing():
                raise ConnectionResetError("the client closed the connection")
            pending.append(_word(index))
            sent = index + 1
            if len(pending) >= quirks.tokens_per_chunk or sent == count:
                last = sent == count
                data = event(
                    [choice("".join(pending), finish if last else None)],
                    with_usage=last and include_usage and quirks.usage == "last",
                )
                if last:  # the answer's end in the same write: one send per stream in the final step
                    if include_usage and quirks.usage == "separate":
                        data += event([], with_usage=True)
                    if quirks.send_done:
                        data += self._frame(b"data: [DONE]\n\n", chunked=True) + b"0\r\n\r\n"
                writer.write(data)
                pending.clear()
                timing[2] = time.perf_counter()
                timing[1] = timing[1] or timing[2]
                timing[3] = sent
                timing[4].append(timing[2])

        number = int(rid.rsplit("-", 1)[1])
        held = dict.fromkeys(quirks.late_tokens, quirks.late_steps) if number in quirks.late_requests else None
        await self.scheduler.stream(count, emit, timing[0], held, prompt_tokens)
        self._account(count, timing)
        await writer.drain()

    @staticmethod
    def _frame(data: bytes, chunked: bool) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data


async def run_server(
    config: ServerConfig, host: str, port: int, load_seconds: float = 0.0, prepare: Callable[[], None] | None = None
) -> None:
    """Serve until cancelled; the readiness path answers 503 until `prepare` (run off the loop, e.g. a model
    download) and the simulated model load are done."""
    server = OpenAIServer(config)
    await server.start(host, port)
    if prepare is not None:
        await asyncio.get_running_loop().run_in_executor(None, prepare)
    await asyncio.sleep(load_seconds)
    server.ready = True
    await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """A server with fixed, known timing (for testing clients): `python -m ...openai_server --port 0 ...`.
    Prints `listening on PORT` once ready."""
    import argparse

    p = argparse.ArgumentParser(description="stand-in OpenAI server with known timing")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="standin")
    p.add_argument("--ttft-ms", type=float, default=30.0)
    p.add_argument("--step-ms", type=float, default=20.0, help="inter-token gap, whatever the number of streams")
    p.add_argument("--prefill-tok-s", type=float, default=None, help="prompt tokens prefilled per second (TTFT grows)")
    p.add_argument("--max-batch-size", type=int, default=1024)
    p.add_argument("--no-role-chunk", action="store_true")
    p.add_argument("--usage", choices=["separate", "last", "none"], default="separate")
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--no-done", action="store_true")
    p.add_argument("--stop-after", type=int, default=None)
    p.add_argument("--fail", default="", help="comma-separated request numbers answered with HTTP 500")
    p.add_argument("--stall", default="", help="comma-separated request numbers that never answer")
    p.add_argument("--no-chat-template", action="store_true")
    p.add_argument(
        "--metrics",
        choices=["plain", "vllm", "sglang", "llamacpp", "trtllm", "trtllm-perf", "none"],
        default="plain",
        help="metric names served",
    )
    p.add_argument("--late", default="", help="comma-separated request numbers with late tokens")
    p.add_argument("--late-tokens", default="", help="comma-separated token indices held in those requests")
    p.add_argument("--late-steps", type=int, default=0, help="extra decode steps each late token is held")
    p.add_argument(
        "--unknown-fields",
        choices=["refuse", "ignore"],
        default="refuse",
        help="request fields the server does not know: refuse (trtllm-serve) or ignore (vLLM/NIM)",
    )
    args = p.parse_args(argv)

    def numbers(text: str) -> frozenset[int]:
        return frozenset(int(x) for x in text.split(",") if x)

    config = ServerConfig(
        model=args.model,
        pacing=Pacing(ttft_ms=args.ttft_ms, step_ms={1: args.step_ms}, prefill_tok_s=args.prefill_tok_s),
        quirks=Quirks(
            role_first_chunk=not args.no_role_chunk,
            usage=args.usage,
            tokens_per_chunk=args.tokens_per_chunk,
            send_done=not args.no_done,
            stop_after=args.stop_after,
            fail_requests=numbers(args.fail),
            stall_requests=numbers(args.stall),
            late_requests=numbers(args.late),
            late_tokens=numbers(args.late_tokens),
            late_steps=args.late_steps,
        ),
        chat_template=not args.no_chat_template,
        max_batch_size=args.max_batch_size,
        unknown_fields=args.unknown_fields,
        metrics=args.metrics,
    )

    async def run() -> None:
        server = OpenAIServer(config)
        port = await server.start(args.host, args.port)
        server.ready = True
        print(f"listening on {port}", flush=True)
        await server.serve_forever()

    try:  # the known-timing server is a measuring instrument: the faster its loop, the truer its timing
        import uvloop  # type: ignore[import-not-found]

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


if __name__ == "__main__":
    main()
