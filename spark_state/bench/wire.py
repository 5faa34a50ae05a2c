"""A lean HTTP/1.1 client for the bench's hot path: one keep-alive connection per closed-loop stream, and a
streamed response handed over line by line from the event loop's own `data_received` callback.

Why not httpx here: at c=256 on two cores, each received SSE chunk cost ≈54 µs of client CPU through httpx →
httpcore → h11 → anyio (cProfile, 139k chunks), and a shared httpcore pool re-scanned all of its connections on
every chunk; the client, not the server, became the bottleneck. This module does only what a streamed completion
needs (RFC 9112: status line, headers, chunked / Content-Length / close-delimited bodies, keep-alive, TLS) and
nothing else — no proxies, redirects, cookies or compression, none of which belong between a bench and the
endpoint it measures. httpx still serves every other request (model discovery, health).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

LineHandler = Callable[[bytes, float], None]  # one body line (without its newline) and when it arrived

MAX_HEADER_BYTES = 64 * 1024
MAX_ERROR_BODY = 64 * 1024


class WireError(Exception):
    """The connection broke or the peer spoke something other than HTTP/1.1."""


@dataclass
class Response:
    status: int
    body: bytes  # the body of a non-200 answer (for its error message); empty for a streamed 200
    sent: float  # perf_counter when the whole request was handed to the kernel
    connect_time: float  # seconds spent opening the connection for this request (0 when reused)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.hostname, port, parts.scheme == "https", parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


class _Protocol(asyncio.Protocol):
    """Parses one response at a time; body lines go to the current handler as they arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reset(None, None)

    def _reset(self, on_line: LineHandler | None, done: asyncio.Future[tuple[int, bytes, bool]] | None) -> None:
        self._on_line = on_line
        self._done = done
        self._head = b""
        self._status = 0
        self._in_body = False
        self._chunked = False
        self._remaining: int | None = None  # Content-Length left, or chunk bytes left when chunked
        self._chunk_header = True
        self._until_close = False
        self._keep_alive = True
        self._raw = b""  # chunked framing not yet parsed
        self._line = b""  # body text after the last newline
        self._error_body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is None or self._done.done():
            return
        if self._in_body and self._until_close:
            self._finish(keep_alive=False, now=time.perf_counter())
        else:
            reason = f": {exc}" if exc else ""
            self._done.set_exception(WireError(f"peer closed the connection before the response was complete{reason}"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self._done is None or self._done.done():
            return  # bytes after a complete response (nothing was asked): ignored, the connection will be dropped
        try:
            if not self._in_body:
                self._head += data
                end = self._head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._head) > MAX_HEADER_BYTES:
                        raise WireError("response headers larger than 64 KiB")
                    return
                data = self._head[end + 4 :]
                self._start_body(self._head[:end].decode("latin-1"))
            self._body(data, now)
        except WireError as exc:
            self._done.set_exception(exc)
        except (ValueError, IndexError) as exc:
            self._done.set_exception(WireError(f"malformed HTTP response: {exc}"))

    def _start_body(self, head: str) -> None:
        status_line, *header_lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise WireError(f"not an HTTP/1.x response: {status_line[:80]!r}")
        self._status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        self._in_body = True
        self._keep_alive = version != "HTTP/1.0" and "close" not in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            self._remaining = int(headers["content-length"])
        else:
            self._until_close, self._keep_alive = True, False

    def _body(self, data: bytes, now: float) -> None:
        if not self._chunked:
            if self._remaining is not None:
                data, rest = data[: self._remaining], data[self._remaining :]
                self._remaining -= len(data)
                self._text(data, now)
                if self._remaining == 0:
                    self._finish(keep_alive=self._keep_alive and not rest, now=now)
            else:
                self._text(data, now)
            return
        self._raw += data
        while self._raw:
            if self._chunk_header:
                end = self._raw.find(b"\r\n")
                if end < 0:
                    return
                size = int(self._raw[:end].split(b";", 1)[0], 16)
                self._raw = self._raw[end + 2 :]
                if size == 0:  # last chunk; trailers (none expected) end with an empty line
                    if self._raw.find(b"\r\n") < 0:
                        self._raw = b"0\r\n" + self._raw  # wait for the final CRLF
                        return
                    self._finish(keep_alive=self._keep_alive, now=now)
                    return
                self._remaining, self._chunk_header = size, False
            assert self._remaining is not None
            if len(self._raw) < self._remaining + 2:
                if len(self._raw) > self._remaining:
                    return  # the payload is here, its CRLF not yet
                self._remaining -= len(self._raw)
                self._text(self._raw, now)
                self._raw = b""
                return
            self._text(self._raw[: self._remaining], now)
            self._raw = self._raw[self._remaining + 2 :]
            self._chunk_header = True

    def _text(self, data: bytes, now: float) -> None:
        if self._status != 200:
            self._error_body = (self._error_body + data)[:MAX_ERROR_BODY]
            return
        if self._on_line is None or not data:
            return
        *lines, self._line = (self._line + data).split(b"\n")
        for line in lines:
            self._on_line(line.rstrip(b"\r"), now)

    def _finish(self, keep_alive: bool, now: float) -> None:
        if self._status == 200 and self._line and self._on_line is not None:
            self._on_line(self._line.rstrip(b"\r"), now)
            self._line = b""
        assert self._done is not None
        if not self._done.done():
            self._done.set_result((self._status, self._error_body, keep_alive))

    def begin(self, on_line: LineHandler) -> asyncio.Future[tuple[int, bytes, bool]]:
        done: asyncio.Future[tuple[int, bytes, bool]] = asyncio.get_running_loop().create_future()
        self._reset(on_line, done)
        return done


class StreamConnection:
    """One keep-alive connection to an endpoint, reopened when the server closes it. Not for concurrent use:
    each closed-loop stream owns one."""

    def __init__(self, url: str, tls_context: ssl.SSLContext | None = None, connect_timeout: float = 10.0) -> None:
        self.endpoint = Endpoint.parse(url)
        self._tls = tls_context if self.endpoint.tls else None
        if self.endpoint.tls and self._tls is None:
            self._tls = ssl.create_default_context()
        self._connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None

    async def _connection(self) -> tuple[_Protocol, float]:
        if self._protocol is not None and not self._protocol.closed:
            return self._protocol, 0.0
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        e = self.endpoint
        async with asyncio.timeout(self._connect_timeout):
            _, protocol = await loop.create_connection(
                _Protocol, e.host, e.port, ssl=self._tls, server_hostname=e.host if self._tls else None
            )
        self._protocol = protocol
        return protocol, time.perf_counter() - started

    async def open(self) -> None:
        """Connect ahead of time, so the first request's TTFT holds no handshake."""
        await self._connection()

    async def post(self, path: str, body: bytes, on_line: LineHandler) -> Response:
        """POST `body` (JSON) and feed each line of a 200 answer's body to `on_line` as it arrives."""
        protocol, connect_time = await self._connection()
        assert protocol.transport is not None
        done = protocol.begin(on_line)
        head = (
            f"POST {self.endpoint.base_path}{path} HTTP/1.1\r\nHost: {self.endpoint.host_header}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        protocol.transport.write(head.encode("latin-1") + body)
        sent = time.perf_counter()
        try:
            status, error_body, keep_alive = await done
        except BaseException:
            self.close()  # a half-read response cannot be followed by another on this connection
            raise
        if not keep_alive:
            self.close()
        return Response(status, error_body, sent, connect_time)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
