"""The server's own view of a bench run: its Prometheus metrics, sampled while the run goes, say how many
requests it ran and queued, how full its KV cache got and how often it preempted. A server without them (or whose
metrics are not Prometheus text) gives no figures, never an error: they explain a result, they are not one."""

from __future__ import annotations

import asyncio
import math

import httpx
from prometheus_client.parser import text_string_to_metric_families

SAMPLE_INTERVAL_S = 0.5
# Figure → the sample names the servers export for it, as their sources name them: vLLM
# (vllm/v1/metrics/loggers.py), SGLang (srt/observability/metrics_collector.py), llama-server
# (tools/server/server-task.cpp, `--metrics`).
PEAK_GAUGES = {
    "running": ("vllm:num_requests_running", "sglang:num_running_reqs", "llamacpp:requests_processing"),
    "waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "llamacpp:requests_deferred"),
    "kv_cache_use": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),
}
RUN_COUNTERS = {"preemptions": ("vllm:num_preemptions_total",)}  # how much each grew during the run


def read(text: str) -> dict[str, float]:
    """Each known figure's value in one scrape (summed over label sets: one engine per server here)."""
    values: dict[str, float] = {}
    known = {name: figure for figure, names in (PEAK_GAUGES | RUN_COUNTERS).items() for name in names}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            figure = known.get(sample.name)
            if figure is not None and math.isfinite(sample.value):
                values[figure] = values.get(figure, 0.0) + sample.value
    return values


class MetricsSampler:
    """Scrapes `url` every SAMPLE_INTERVAL_S from start() to stop(); stop() gives each gauge's peak and each
    counter's growth over the run, or {} when the server had no metrics to read."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.samples: list[dict[str, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _scrape(self, client: httpx.AsyncClient) -> bool:
        assert self.url is not None
        try:
            response = await client.get(self.url)
            if response.status_code != 200:
                return False
            self.samples.append(read(response.text))
        except (httpx.HTTPError, ValueError):  # unreachable, or not Prometheus text (trtllm-serve answers JSON)
            return False
        return True

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while await self._scrape(client):
                await asyncio.sleep(SAMPLE_INTERVAL_S)

    def start(self) -> None:
        if self.url is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict[str, float]:
        if self._task is None:
            return {}
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        if self.url is not None:  # the run's last word: what the counters reached at its end
            async with httpx.AsyncClient(timeout=2.0) as client:
                await self._scrape(client)
        return summarize(self.samples)


def summarize(samples: list[dict[str, float]]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for figure in PEAK_GAUGES:
        seen = [s[figure] for s in samples if figure in s]
        if seen:
            figures[f"{figure}_peak"] = max(seen)
    for figure in RUN_COUNTERS:
        seen = [s[figure] for s in samples if figure in s]
        if seen:
            figures[figure] = max(seen) - seen[0]
    return figures
