"""Stand-in `python3 -m sglang.launch_server`: SGLang's own flags at the image's version (the list read from SGLang's
wheel, shipped in the image as sglang_flags.json) and argparse's refusal of any other; SGLang's memory sizing and
its refusal when the weights leave no KV cache; `/health` (503 while starting), `/v1/models` (owned_by "sglang")
and, with --enable-metrics only, `/metrics` with SGLang's metric names.

Sources (sglang 0.5.23 wheel):
- the parser: sglang/srt/server_args.py `prepare_server_args` — `argparse.ArgumentParser(prog="sglang serve")`
  (abbreviations allowed, as argparse's default), `--model-path` (alias `--model`) required;
- memory: sglang/srt/distributed/bootstrap.py takes the available memory before the weights load; on an integrated
  GPU (GB10) that is the system's available memory (sglang/srt/utils/common.py `get_available_gpu_memory`);
  sglang/srt/mem_cache/kv_cache_configurator.py `_profile_available_bytes` leaves the KV pool what is free after
  the weights less pre-load × (1 - mem_fraction_static), and raises its ValueError when that is not positive;
- `mem_fraction_static` None: SGLang picks one from the GPU's size; 0.9 is assumed here for 120 GB-class GPUs
  (the stricter reading would refuse, but the product always passes one)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys

from .checkpoint_formats import quant_algo
from .flag_parsers import package_version, parser_from_flags
from .gpu import ENGINE_BYTES, hold_gib, pacing_for, require_gpu
from .openai_server import ServerConfig, run_server

FLAGS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sglang_flags.json")  # shipped in the image
LOAD_S = 25.0  # seed-scale seconds to load an 8B checkpoint and capture CUDA graphs (assumed: no published figure)
DEFAULT_FRACTION = 0.9


def parser() -> argparse.ArgumentParser:
    # Arg(aliases=...) share their field's destination
    dests = {"--model": "model_path", "--tensor-parallel-size": "tp_size"}
    return parser_from_flags(os.environ.get("SPARK_SIM_SGLANG_FLAGS", FLAGS_FILE), "sglang serve", True, dests)


def weights_gib(model: str) -> float:
    """What loading the checkpoint claims, as the field report's engines of that quantization weighed."""
    quant = quant_algo(model)[0]
    return ENGINE_BYTES["NVFP4" if quant == "NVFP4" else "FP8"] / 2**30


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not args.model_path:
        print(
            "usage: sglang serve [-h] --model-path MODEL_PATH ...\n"
            "sglang serve: error: the following arguments are required: --model-path/--model",
            file=sys.stderr,
        )
        return 2
    gpu = require_gpu()
    model = args.model_path
    try:
        with open(os.path.join(model, "config.json")) as f:
            json.load(f)
    except (OSError, ValueError) as exc:
        print(f"OSError: Can't load the configuration of '{model}': {exc}", file=sys.stderr)
        return 1
    fraction = float(args.mem_fraction_static or DEFAULT_FRACTION)
    total = float(gpu["memory_total_gib"])
    available = float(gpu.get("memory_free_gib_at_start", total))
    weights = weights_gib(model)
    claimed = available * fraction
    if claimed - weights <= 0:
        minimum = 1 - (available - weights) / available
        print(
            "ValueError: Loaded weights leave no GPU memory for the KV cache under "
            f"--mem-fraction-static={fraction}. Raise --mem-fraction-static above "
            f"{math.ceil(minimum * 1000) / 1000:.3f} (minimum viable = 1 - available/pre = {minimum:.4f}). "
            "If using speculative decoding, draft weights are now counted.",
            file=sys.stderr,
        )
        return 1
    print(
        f"[sglang] SGLang {package_version('sglang')}: mem_fraction_static={fraction}, {claimed:.2f} GB claimed",
        flush=True,
    )
    from .trtllm_serve import has_chat_template

    # No published GB10 figures for SGLang on these checkpoints: paced as the field report's vLLM (FP8) and
    # TensorRT-LLM (NVFP4) runs, an assumption.
    profile = "trtllm-nvfp4" if quant_algo(model)[0] == "NVFP4" else "nim-vllm-fp8"
    config = ServerConfig(
        model=args.served_model_name or model,
        pacing=pacing_for(profile, gpu),
        chat_template=has_chat_template(args.tokenizer_path or model),
        max_batch_size=int(args.max_running_requests or 256),
        max_seq_len=int(args.context_length or 4096),
        owned_by="sglang",
        unknown_fields="ignore",
        metrics="sglang" if args.enable_metrics else "none",
    )
    memory = hold_gib(claimed, gpu)  # noqa: F841 - the static pool is held for the process lifetime
    host, port = args.host or "127.0.0.1", int(args.port or 30000)
    print(f"[sglang] Uvicorn running on http://{host}:{port}", flush=True)
    asyncio.run(run_server(config, host, port, load_seconds=LOAD_S * float(gpu["time_scale"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
