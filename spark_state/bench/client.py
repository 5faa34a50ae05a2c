"""One streamed completion, measured: TTFT to the first non-empty content, decode from usage, quirks tolerated.

Also the client's self-check: an event-loop lag monitor, since a starved loop makes a fast server look slow.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from .results import RequestResult
from .stats import percentile
from .wire import StreamConnection, WireError


def request_body(
    model: str, prompt: str, max_tokens: int, temperature: float, chat: bool, ignore_eos: bool = False
) -> dict[str, Any]:
    """Only fields trtllm-serve's request models accept (they forbid extra fields) and vLLM/NIM accept too."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if ignore_eos:
        body["ignore_eos"] = True
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


async def stream_completion(
    connection: StreamConnection,
    model: str,
    prompt: str,
    max_tokens: int,
    temperature: float = 0.0,
    chat: bool = True,
    timeout: float = 120.0,
    ignore_eos: bool = False,
) -> RequestResult:
    """Send one streaming request; never raises for server or network trouble (it is recorded instead)."""
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body = json.dumps(request_body(model, prompt, max_tokens, temperature, chat, ignore_eos)).encode()
    started = time.perf_counter()
    result = RequestResult(ok=False, started=started, ended=started)
    usage: list[int] = []  # completion_tokens from the last usage block seen

    def on_line(line: bytes, now: float) -> None:
        tokens = _handle_line(line.strip(), now, result)
        if tokens is not None:
            usage.append(tokens)

    try:
        async with asyncio.timeout(timeout):
            response = await connection.post(path, body, on_line)
        result.status, result.sent = response.status, response.sent
        result.send_delay = max(0.0, response.sent - started - response.connect_time)
        if response.status != 200:
            result.error = f"HTTP {response.status}: {_error_message(response.body.decode(errors='replace'))}"
    except TimeoutError:
        result.error = f"timed out after {timeout:g} s"
    except (WireError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        result.ended = time.perf_counter()
        result.sent = result.sent or started
    if result.error is None:
        if usage:
            result.completion_tokens = usage[-1]
        else:
            result.completion_tokens, result.tokens_from = result.content_chunks, "chunks"
        if result.first_token is None:
            result.error = "stream ended without content"
        else:
            result.ok = True
            result.early_stop = result.completion_tokens < max_tokens or result.finish_reason not in (None, "length")
    return result


def _handle_line(line: bytes, now: float, result: RequestResult) -> int | None:
    """Record one SSE line; returns `usage.completion_tokens` when the line carries it."""
    if not line.startswith(b"data:"):
        return None  # comments, event names, keep-alives
    payload = line[5:].strip()
    if payload == b"[DONE]":
        result.saw_done = True
        return None
    try:
        chunk = json.loads(payload)
    except ValueError:
        return None
    usage = chunk.get("usage")
    usage_tokens = None
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        usage_tokens = int(usage["completion_tokens"])
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        result.prompt_tokens = usage["prompt_tokens"]  # the server's own count: its tokenizer, its chat template
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if content:
            result.content_chunks += 1
            result.chunk_times.append(now)
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

    def p(self, q: int) -> float | None:
        value = percentile(self.samples, q)
        return None if value is None else value * 1000
