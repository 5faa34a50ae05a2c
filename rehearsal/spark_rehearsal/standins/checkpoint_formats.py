"""Checkpoint formats the stand-ins read and write (stdlib only): a Hugging Face (ModelOpt) checkpoint's
quantization, and the TensorRT-LLM checkpoint (config.json + rank0.safetensors) that trtllm-build reads."""

from __future__ import annotations

import json
import os
from typing import Any


def quant_algo(model_dir: str) -> tuple[str | None, str | None]:
    """(weights, kv cache) quantization of a ModelOpt export: hf_quant_config.json, else config.json."""
    path = os.path.join(model_dir, "hf_quant_config.json")
    if os.path.exists(path):
        with open(path) as f:
            q = json.load(f).get("quantization", {})
        return q.get("quant_algo"), q.get("kv_cache_quant_algo")
    with open(os.path.join(model_dir, "config.json")) as f:
        q = json.load(f).get("quantization_config") or {}
    algo = q.get("quant_algo") or ("FP8" if q.get("quant_method") in ("fp8", "modelopt") else None)
    return algo, q.get("kv_cache_quant_algo")


def write_trtllm_checkpoint(output_dir: str, config: dict[str, Any]) -> None:
    """A TensorRT-LLM checkpoint: its config.json and one rank's (empty) safetensors."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(output_dir, "rank0.safetensors"), "wb") as f:
        f.write(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
