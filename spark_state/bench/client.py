"""One streamed completion, measured: TTFT to the first non-empty content, decode from usage, quirks tolerated.

Also the client's self-check: an event-loop lag monitor, since a starved loop makes a fast server look slow.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from .results import RequestResult
from .stats import percentile


def request_body(model: str, prompt: str, max_tokens: int, temperature: float, chat: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


class _Trace:
    """httpcore trace hook: when the request headers went out, and how long connecting took."""

    def __init__(self) -> None:
        self.headers_sent: float | None = None
        self.body_sent: float | None = None
        self.connect_started: float | None = None
        self.connect_time = 0.0

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if event == "connection.connect_tcp.started":
            self.connect_started = now
        elif event == "connection.connect_tcp.complete" and self.connect_started is not None:
            self.connect_time = now - self.connect_started
        elif event == "http11.send_request_headers.started" and self.headers_sent is None:
            self.headers_sent = now
        elif event == "http11.send_request_body.complete" and self.body_sent is None:
            self.body_sent = now


async def stream_completion(
    client: httpx.AsyncClient,
    base_url: str,
    model: str,
    prompt: str,
    max_tokens: int,
    temperature: float = 0.0,
    chat: bool = True,
    timeout: float = 120.0,
) -> RequestResult:
    """Send one streaming request; never raises for server or network trouble (it is recorded instead)."""
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body = json.dumps(request_body(model, prompt, max_tokens, temperature, chat)).encode()
    trace = _Trace()
    started = time.perf_counter()
    result = RequestResult(ok=False, started=started, ended=started)
    usage_tokens: int | None = None
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "POST", base_url + path, content=body, headers={"Content-Type": "application/json"},
                extensions={"trace": trace},
            ) as response:  # fmt: skip
                result.status = response.status_code
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")
                    result.error = f"HTTP {response.status_code}: {_error_message(text)}"
                    return result
                buffer = b""
                async for data in response.aiter_bytes():
                    now = time.perf_counter()
                    buffer += data
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        usage_tokens = _handle_line(line.strip(), now, result, usage_tokens)
                if buffer.strip():
                    usage_tokens = _handle_line(buffer.strip(), time.perf_counter(), result, usage_tokens)
    except TimeoutError:
        result.error = f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        result.ended = time.perf_counter()
        if trace.headers_sent is not None:
            result.send_delay = max(0.0, trace.headers_sent - started - trace.connect_time)
        result.sent = trace.body_sent or trace.headers_sent or started
    if result.error is None:
        if usage_tokens is not None:
            result.completion_tokens = usage_tokens
        else:
            result.completion_tokens, result.tokens_from = result.content_chunks, "chunks"
        if result.first_token is None:
            result.error = "stream ended without content"
        else:
            result.ok = True
            result.early_stop = result.completion_tokens < max_tokens or result.finish_reason not in (None, "length")
    return result


def _handle_line(line: bytes, now: float, result: RequestResult, usage_tokens: int | None) -> int | None:
    if not line.startswith(b"data:"):
        return usage_tokens  # comments, event names, keep-alives
    payload = line[5:].strip()
    if payload == b"[DONE]":
        result.saw_done = True
        return usage_tokens
    try:
        chunk = json.loads(payload)
    except ValueError:
        return usage_tokens
    usage = chunk.get("usage")
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        usage_tokens = int(usage["completion_tokens"])
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if content:
            result.content_chunks += 1
            result.last_token = now
            if result.first_token is None:
                result.first_token = now
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]
    return usage_tokens


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        error = data.get("error")
        message = data.get("message") or (error.get("message") if isinstance(error, dict) else error)
        return str(message or text)[:300]
    return text[:300]


class LoopLagMonitor:
    """Samples how late the event loop wakes up; sustained lag means the client, not the server, is the limit."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, time.perf_counter() - before - self.interval))

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return self.samples

    def p(self, q: float) -> float | None:
        value = percentile(self.samples, q)
        return None if value is None else value * 1000
