"""Stand-in `vllm serve`: vLLM's own flags at the image's version (the list read from vLLM's wheel, shipped in the
image as vllm_flags.json) and argparse's refusal of any other; vLLM's startup memory check, with its error text
(vllm/v1/worker/utils.py, `request_memory`: the share `--gpu-memory-utilization` × total must be free when it
starts); `/health`, `/v1/models` (owned_by "vllm") and `/metrics` with vLLM's metric names; unknown request fields
ignored as vLLM ignores them."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys

from .flag_parsers import package_version, parser_from_flags
from .gpu import hold_gib, pacing_for, require_gpu
from .openai_server import ServerConfig, run_server

FLAGS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vllm_flags.json")  # shipped in the image
LOAD_S = 25.0  # seed-scale seconds to load an 8B checkpoint and capture CUDA graphs (assumed: no published figure)


def parser() -> argparse.ArgumentParser:
    """`vllm serve`'s parser: the positional model tag, then every flag of this vLLM (vllm/entrypoints/.../
    cli_args.py `make_arg_parser`); bool fields take --flag/--no-flag (argparse.BooleanOptionalAction)."""
    p = parser_from_flags(os.environ.get("SPARK_SIM_VLLM_FLAGS", FLAGS_FILE), "vllm serve", False)
    p.add_argument("model_tag", nargs="?")
    return p


def main(argv: list[str]) -> int:
    if argv[:1] != ["serve"]:
        print("usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...", file=sys.stderr)
        return 2
    args = parser().parse_args(argv[1:])
    model = args.model_tag or args.model
    if not model:
        print("vllm serve: error: the model tag is required", file=sys.stderr)
        return 2
    gpu = require_gpu()
    version = package_version("vllm")
    print(f"INFO vLLM API server version {version}", flush=True)
    try:
        with open(os.path.join(model, "config.json")) as f:
            json.load(f)
    except (OSError, ValueError) as exc:
        print(f"OSError: cannot load model config from {model}: {exc}", file=sys.stderr)
        return 1
    utilization = float(args.gpu_memory_utilization or 0.9)
    total = float(gpu["memory_total_gib"])
    free = float(gpu.get("memory_free_gib_at_start", total))
    requested = math.ceil(total * 2**30 * utilization) / 2**30
    if free < requested:
        print(
            "ValueError: Free memory on device cuda:0 "
            f"({round(free, 2)}/{round(total, 2)} GiB) on startup is less than desired GPU memory utilization "
            f"({utilization}, {round(requested, 2)} GiB). Decrease GPU memory utilization or reduce GPU memory "
            "used by other processes.",
            file=sys.stderr,
        )
        return 1
    tokenizer = args.tokenizer or model
    from .trtllm_serve import has_chat_template

    config = ServerConfig(
        model=args.served_model_name or model,
        pacing=pacing_for("nim-vllm-fp8", gpu),
        chat_template=has_chat_template(tokenizer),
        max_batch_size=int(args.max_num_seqs or 256),
        max_seq_len=int(args.max_model_len or 4096),
        owned_by="vllm",
        unknown_fields="ignore",
        metrics="vllm",
    )
    memory = hold_gib(requested, gpu)  # noqa: F841 - vLLM holds its whole share for the process lifetime
    port = int(args.port or 8000)
    print(f"INFO Starting vLLM API server on http://{args.host or '0.0.0.0'}:{port}", flush=True)
    asyncio.run(run_server(config, args.host or "0.0.0.0", port, load_seconds=LOAD_S * float(gpu["time_scale"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
