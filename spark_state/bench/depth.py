"""Prefill and generation by context depth, as the Spark community compares them (llama-bench's and
llama-benchy's `pp2048 @ d4096` / `tg32 @ d4096` rows, t/s as mean ± standard deviation over the runs).

Each depth D asks for D + P prompt tokens (P: `prompt_tokens`) counted by the served model itself: the prompt is
synthetic text sized against the server's own `usage.prompt_tokens` (its tokenizer and its chat template, so no
tokenizer is needed here), re-measured until the count lands within 1 % of the target. Every request starts
with its own line, so no request reuses another's cached prefix.

Per request, as llama-benchy reckons them (src/llama_benchy/results.py): prefill rate = the prompt tokens the
server counted / TTFT; generation rate = the tokens after the first / the time from the first token to the
last (the client's decode_tok_s)."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from ..errors import BenchError
from .client import stream_completion
from .results import DepthResult, RequestResult
from .stats import summary

if TYPE_CHECKING:
    from .runner import BenchSettings, Progress
    from .wire import StreamConnection

# Plain words; how many make a prompt is the server's count, whatever its tokenizer makes of them.
_PASSAGE = (
    "the quiet river carried small boats past the old mill while people on the bridge watched the light change "
    "over the hills and talked about the harvest the weather the long road north and the news from town"
)
_FILLER = _PASSAGE.split(" ")
_TOLERANCE = 0.01  # the counted prompt may miss its target by 1 % (at least 2 tokens): one filler word's slack
_SIZING_ROUNDS = 6


def synthetic_prompt(words: int, request: int) -> str:
    """`words` filler words after a first line of the request's own (the same width for every request)."""
    body = " ".join(_FILLER[i % len(_FILLER)] for i in range(words))
    return f"Passage {request:06d}.\n{body}\nSummarize the passage."


def _counted(result: RequestResult, target: int) -> int:
    if not result.ok:
        raise BenchError(f"sizing a {target}-token prompt: {result.error}")
    if result.prompt_tokens is None:
        raise BenchError(
            "sized prompts (--depth, --input-tokens) are counted by the server's usage.prompt_tokens, "
            "and this server sends none"
        )
    return result.prompt_tokens


async def sized_words(connection: StreamConnection, model: str, s: BenchSettings, target: int) -> int:
    """How many filler words make a prompt the server counts as `target` tokens (one token asked per try)."""
    words, tried = max(1, target), []
    for _ in range(_SIZING_ROUNDS):
        result = await stream_completion(
            connection, model, synthetic_prompt(words, 0), 1, s.temperature, s.chat, s.timeout_s
        )
        counted = _counted(result, target)
        tried.append(f"{words} words: {counted}")
        if abs(counted - target) <= max(2, target * _TOLERANCE):
            return words
        if words == 1 and counted > target:
            raise BenchError(
                f"a prompt of {target} tokens is shorter than the shortest this bench makes (its first line, one "
                f"word and its closing line: {counted} tokens as the server counts them)"
            )
        words = max(1, words + round((target - counted) * words / max(counted, 1)))
    raise BenchError(f"could not size a prompt of {target} tokens; the server counted {', '.join(tried)}")


async def run_depth(
    connection: StreamConnection, model: str, s: BenchSettings, depth: int, progress: Progress | None = None
) -> DepthResult:
    """`s.serial_requests` requests one after another, each with a prompt of depth + s.prompt_tokens tokens."""
    target = depth + s.prompt_tokens
    words = await sized_words(connection, model, s, target)
    results: list[RequestResult] = []
    for i in range(s.serial_requests):
        results.append(
            await stream_completion(
                connection,
                model,
                synthetic_prompt(words, i + 1),
                s.max_tokens,
                s.temperature,
                s.chat,
                s.timeout_s,
                s.ignore_eos,
            )
        )
        if progress:
            progress(f"depth {depth}", i + 1, s.serial_requests)
    good = [r for r in results if r.ok and r.ttft]
    prefill = [r.prompt_tokens / r.ttft for r in good if r.prompt_tokens is not None and r.ttft]
    generation = [r.decode_tok_s for r in good if r.decode_tok_s is not None]
    counted = [float(r.prompt_tokens) for r in good if r.prompt_tokens is not None]
    return DepthResult(
        depth=depth,
        prompt_tokens=s.prompt_tokens,
        max_tokens=s.max_tokens,
        requests=len(results),
        ok=len(good),
        counted_prompt_tokens=statistics.median(counted) if counted else None,
        pp_tok_s=_mean_sd(prefill),
        tg_tok_s=_mean_sd(generation),
        ttft_ms=summary([r.ttft * 1000 for r in good if r.ttft is not None]),
        errors=sorted({r.error for r in results if r.error}),
    )


def _mean_sd(values: list[float]) -> dict[str, float | None]:
    """Mean and standard deviation as llama-bench prints them (`3610.56 ± 15.16`; numpy's std: population)."""
    if not values:
        return {"mean": None, "sd": None}
    return {"mean": statistics.fmean(values), "sd": statistics.pstdev(values)}


def row_name(kind: str, tokens: int, depth: int) -> str:
    """llama-bench's name for a row: `pp2048`, `tg32 @ d4096`."""
    return f"{kind}{tokens}" + (f" @ d{depth}" if depth else "")
