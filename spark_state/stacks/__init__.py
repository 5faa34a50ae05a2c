"""Serving stacks: what spark-state knows about each server it runs, one module per stack, each declaring its
`STACK` (service model, port, readiness and metrics paths, start timeout, how it is launched)."""

from __future__ import annotations

from . import llamacpp, nim, sglang, trtllm, trtllm_engine, vllm
from .base import Stack

STACKS: dict[str, Stack] = {
    s.name: s for s in (trtllm.STACK, trtllm_engine.STACK, vllm.STACK, sglang.STACK, llamacpp.STACK, nim.STACK)
}
