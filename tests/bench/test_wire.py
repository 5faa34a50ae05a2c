"""The bench's lean HTTP/1.1 client against a real socket server that frames its answers in every legal way
(RFC 9112: chunked with extensions, Content-Length, close-delimited), split at every byte boundary."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from spark_state.bench.client import stream_completion
from spark_state.bench.wire import Endpoint, StreamConnection

SSE = (
    b'data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}]}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {"content": " world"}, "finish_reason": "length"}]}\n\n'
    b'data: {"choices": [], "usage": {"completion_tokens": 2}}\n\n'
    b"data: [DONE]\n\n"
)


def chunked(body: bytes, sizes: tuple[int, ...] = (7, 1, 30)) -> bytes:
    out, i, k = b"", 0, 0
    while i < len(body):
        size = sizes[k % len(sizes)]
        part = body[i : i + size]
        out += f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n"
        i, k = i + size, k + 1
    return out + b"0\r\n\r\n"


Answer = Callable[[int], bytes]  # request number (from 1) on this connection -> the bytes to send


async def _serve(answer: Answer, split: int | None, close: bool, log: list[str]) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log.append("connect")
        number = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                number += 1
                log.append(head.split(b"\r\n")[0].decode())
                data = answer(number)
                step = split or len(data)
                for i in range(0, len(data), step):
                    writer.write(data[i : i + step])
                    await writer.drain()
                    await asyncio.sleep(0)
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _with_server(
    answer: Answer, split: int | None = None, close: bool = False
) -> Callable[[Callable[[str], Awaitable[None]]], list[str]]:
    """Runs `body(url)` against a server that answers request n with `answer(n)`, in pieces of `split` bytes,
    and closes the connection after each answer when `close`; returns the server's log."""

    def run(body: Callable[[str], Awaitable[None]]) -> list[str]:
        log: list[str] = []

        async def main() -> None:
            server, port = await _serve(answer, split, close, log)
            async with server:
                await body(f"http://127.0.0.1:{port}")

        asyncio.run(main())
        return log

    return run


OK_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(SSE)
OK_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(SSE), SSE)
OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + SSE


@pytest.mark.parametrize("split", [None, 1, 3])
@pytest.mark.parametrize("answer", [OK_CHUNKED, OK_LENGTH, OK_CLOSE], ids=["chunked", "content-length", "close"])
def test_every_framing_at_every_split_yields_the_same_result(answer: bytes, split: int | None) -> None:
    results = []

    async def body(url: str) -> None:
        connection = StreamConnection(url)
        for _ in range(2):
            results.append(await stream_completion(connection, "m", "hi", 2, timeout=10))
        connection.close()

    log = _with_server(lambda n: answer, split, close=answer is OK_CLOSE)(body)
    for r in results:
        assert r.ok and r.error is None, r.error
        assert (r.completion_tokens, r.tokens_from, r.content_chunks, r.finish_reason) == (2, "usage", 2, "length")
        assert r.saw_done and not r.early_stop and r.first_token is not None and r.first_token <= r.last_token
    # keep-alive framings reuse the connection; a close-delimited answer needs a new one per request
    assert log.count("connect") == (2 if answer is OK_CLOSE else 1)
    assert log.count("POST /v1/chat/completions HTTP/1.1") == 2


def test_http_error_body_becomes_the_message_and_the_connection_is_reused() -> None:
    error = b'{"object": "error", "message": "No chat template found for the given tokenizer and tools."}'
    answers = [b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error), OK_CHUNKED]
    results = []

    async def body(url: str) -> None:
        connection = StreamConnection(url)
        for _ in answers:
            results.append(await stream_completion(connection, "m", "hi", 2, timeout=10))
        connection.close()

    log = _with_server(lambda n: answers[n - 1], split=5)(body)
    assert results[0].status == 400 and not results[0].ok
    assert results[0].error == "HTTP 400: No chat template found for the given tokenizer and tools."
    assert results[1].ok and log.count("connect") == 1


def test_a_body_cut_short_is_an_error_not_a_short_answer() -> None:
    cut = OK_CHUNKED[: len(OK_CHUNKED) // 2]
    results = []

    async def body(url: str) -> None:
        results.append(await stream_completion(StreamConnection(url), "m", "hi", 2, timeout=10))

    # the server closes after sending half of a chunked body: that is not the end of the answer
    _with_server(lambda n: cut, close=True)(body)
    assert not results[0].ok
    assert results[0].error.startswith("WireError: peer closed the connection before the response was complete")


def test_garbage_instead_of_http_is_a_clear_error() -> None:
    results = []

    async def body(url: str) -> None:
        results.append(await stream_completion(StreamConnection(url), "m", "hi", 2, timeout=10))

    _with_server(lambda n: b"SSH-2.0-OpenSSH_9.2\r\n\r\n", close=True)(body)
    assert results[0].error.startswith("WireError: not an HTTP/1.x response")


def test_refused_connection_is_recorded() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await stream_completion(StreamConnection(f"http://127.0.0.1:{port}"), "m", "hi", 2, timeout=5)

    result = asyncio.run(main())
    assert not result.ok and "ConnectionRefusedError" in result.error


def test_endpoint_parsing_keeps_paths_ports_and_ipv6() -> None:
    e = Endpoint.parse("https://[fd00::1]:8443/proxy/")
    assert (e.host, e.port, e.tls, e.base_path, e.host_header) == ("fd00::1", 8443, True, "/proxy", "[fd00::1]:8443")
    assert Endpoint.parse("http://spark-01").host_header == "spark-01"
    with pytest.raises(ValueError, match="not an http"):
        Endpoint.parse("ftp://x")
