"""What the stand-ins know about 'their GPU': the file the runtime hook copies into GPU containers, and the
seed's measured figures they pace themselves by (stdlib only)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .flag_parsers import package_version
from .openai_server import Pacing

GPU_FILE = os.environ.get("SPARK_SIM_GPU_FILE", "/etc/spark-sim/gpu.json")
SEED_MAX_TOKENS = 200  # the seed's bench: 200-token greedy completions

DEFAULT_GPU: dict[str, Any] = {
    "name": "NVIDIA GB10",
    "compute_capability": "12.1",
    "sm_count": 48,
    "driver_version": "580.95.05",
    "cuda_version": "13.0",
    "uuid": "GPU-5a1e0000-0000-4000-8000-00000000gb10",
    "memory_scale": 1 / 64,  # resident memory held = seed figure × this, so a fleet fits on a small machine
    "time_scale": 0.1,  # convert/build/load durations = seed figure × this
    "slowdown": 1.0,  # token pacing multiplier: 1.3 simulates a host regressed by 30 %
    "toolkit_version": "1.17.8",  # the NVIDIA container toolkit (runtime hook) installed on the host
    "memory_total_gib": 121.7,  # unified memory as CUDA reports it (cudaMemGetInfo's total)
}

# The field report's measurements (29-token prompt, 200-token greedy completion, streaming).
# resident_gib for TRT-LLM FP8 was not measured; it is scaled from NVFP4 by engine size (8.6 / 5.7 GB).
SEED_PROFILES: dict[str, dict[str, Any]] = {
    "nim-vllm-fp8": {
        "ttft_ms": 54.0,
        "decode_tok_s": 22.06,
        "aggregate": {1: 21.9, 2: 45.0, 4: 89.6, 8: 175.2},
        "resident_gib": 11.2,
    },
    "trtllm-fp8": {
        "ttft_ms": 46.1,
        "decode_tok_s": 24.57,
        "aggregate": {1: 26.9, 2: 52.8, 4: 107.6, 8: 193.5},
        "resident_gib": 3.8,
    },
    "trtllm-nvfp4": {
        "ttft_ms": 30.8,
        "decode_tok_s": 38.82,
        "aggregate": {1: 36.3, 2: 69.2, 4: 135.2, 8: 264.7},
        "resident_gib": 2.5,
    },
}

ENGINE_BYTES = {"FP8": int(8.6e9), "NVFP4": int(5.7e9)}  # a single rank0.engine, as the seed built them


def read_gpu() -> dict[str, Any] | None:
    """The GPU visible to this process, or None (no --gpus, or no driver)."""
    try:
        with open(GPU_FILE) as f:
            return {**DEFAULT_GPU, **json.load(f)}
    except (OSError, ValueError):
        return None


def require_gpu() -> dict[str, Any]:
    gpu = read_gpu()
    if gpu is None:
        print("RuntimeError: No CUDA GPUs are available", file=sys.stderr)
        sys.exit(1)
    return gpu


def pacing_for(profile: str, gpu: dict[str, Any]) -> Pacing:
    """Step times that reproduce the seed: decode rate at one stream, aggregate tok/s at higher concurrency."""
    seed = SEED_PROFILES[profile]
    ttft = seed["ttft_ms"]
    steps = {1: 1000.0 / seed["decode_tok_s"]}
    for streams, aggregate in seed["aggregate"].items():
        if streams > 1:
            wall_ms = streams * SEED_MAX_TOKENS / aggregate * 1000.0
            steps[streams] = (wall_ms - ttft) / (SEED_MAX_TOKENS - 1)
    return Pacing(ttft_ms=ttft, step_ms=steps, slowdown=float(gpu.get("slowdown", 1.0)), slowdown_file=GPU_FILE)


def hold_memory(profile: str, gpu: dict[str, Any]) -> bytearray:
    """Allocate and touch the profile's resident memory (scaled), so RSS shows it like docker stats would."""
    return hold_gib(SEED_PROFILES[profile]["resident_gib"], gpu)


def hold_gib(gib: float, gpu: dict[str, Any]) -> bytearray:
    """Hold `gib` of the simulated Spark's memory (scaled, touched), as a server that claimed it would."""
    size = int(gib * 2**30 * float(gpu.get("memory_scale", 1 / 64)))
    block = bytearray(size)
    for offset in range(0, size, 4096):
        block[offset] = 1
    return block


def trtllm_version() -> str:
    return package_version("tensorrt_llm")


def version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)
