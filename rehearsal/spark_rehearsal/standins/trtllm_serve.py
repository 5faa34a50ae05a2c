"""Stand-in `trtllm-serve serve`: refuses an engine built by another TensorRT-LLM, answers the chat-template
400 for a tokenizer without one, and paces tokens like the field report's measurements."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from .gpu import hold_memory, pacing_for, require_gpu, trtllm_version
from .openai_server import ServerConfig, run_server


def has_chat_template(tokenizer_dir: str) -> bool:
    if os.path.exists(os.path.join(tokenizer_dir, "chat_template.jinja")):
        return True
    try:
        with open(os.path.join(tokenizer_dir, "tokenizer_config.json")) as f:
            return bool(json.load(f).get("chat_template"))
    except (OSError, ValueError):
        return False


def _fail(message: str) -> int:
    print(f"[TRT-LLM] [E] {message}", file=sys.stderr)
    return 1


class ClickLikeParser(argparse.ArgumentParser):
    """`trtllm-serve` is a click command: no abbreviated options, and click's own error text and exit code 2."""

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        unknown = message.split("unrecognized arguments: ", 1)[1].split()[0] if "unrecognized" in message else None
        said = f"No such option: {unknown}" if unknown else message
        self.exit(
            2,
            f"Usage: trtllm-serve serve [OPTIONS] MODEL\nTry 'trtllm-serve serve --help' for help.\n\nError: {said}\n",
        )


# `trtllm-serve serve`'s options as TensorRT-LLM defines them (tensorrt_llm/commands/serve.py, click options).
# Read from TensorRT-LLM's main branch; options that appeared after 1.1 there (custom tokenizers, context
# parallelism, OTLP traces, disaggregated-cluster URIs, media I/O, custom modules, chat_template, chunked
# prefill) are left out: the stricter reading for the 1.1/1.2 images rehearsed here.
SEVERITIES = ["internal_error", "error", "warning", "info", "verbose", "debug", "trace"]


def parser() -> argparse.ArgumentParser:
    p = ClickLikeParser(prog="trtllm-serve")
    sub = p.add_subparsers(dest="command", required=True, parser_class=ClickLikeParser)
    s = sub.add_parser("serve")
    s.add_argument("model")
    s.add_argument("--tokenizer", default=None)
    s.add_argument("--host", default="localhost")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--backend", choices=["pytorch", "tensorrt", "_autodeploy", "trt"], default="pytorch")
    s.add_argument("--log_level", choices=SEVERITIES, default="info")
    s.add_argument("--max_beam_width", type=int, default=1)
    s.add_argument("--max_batch_size", type=int, default=2048)
    s.add_argument("--max_num_tokens", type=int, default=8192)
    s.add_argument("--max_seq_len", type=int, default=None)
    s.add_argument("--tensor_parallel_size", "--tp_size", type=int, default=1)
    s.add_argument("--pipeline_parallel_size", "--pp_size", type=int, default=1)
    s.add_argument("--moe_expert_parallel_size", "--ep_size", type=int, default=None)
    s.add_argument("--moe_cluster_parallel_size", "--cluster_size", type=int, default=None)
    s.add_argument("--gpus_per_node", type=int, default=None)
    s.add_argument(
        "--kv_cache_free_gpu_memory_fraction",
        "--free_gpu_memory_fraction",
        dest="kv_cache_free_gpu_memory_fraction",
        type=float,
        default=0.9,
    )
    s.add_argument("--num_postprocess_workers", type=int, default=0)
    s.add_argument("--trust_remote_code", action="store_true")
    s.add_argument("--revision", default=None)
    s.add_argument("--extra_llm_api_options", default=None)
    s.add_argument("--reasoning_parser", choices=["deepseek-r1", "qwen3"], default=None)
    s.add_argument("--tool_parser", default=None)
    s.add_argument("--metadata_server_config_file", default=None)
    s.add_argument("--server_role", default=None)
    return p


def without_tensorrt_backend(version: str) -> bool:
    """TensorRT-LLM after v1.3.0rc20 has no TensorRT backend (docs/source/legacy/tensorrt-backend-removal.md)."""
    head, _, rc = version.partition("rc")
    numbers = tuple(int(part) for part in head.split(".")[:3] if part.isdigit())
    return numbers > (1, 3, 0) or (numbers == (1, 3, 0) and (not rc.isdigit() or int(rc) > 20))


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.backend == "trt":  # click's ChoiceWithAlias
        args.backend = "tensorrt"
    version = trtllm_version()
    if args.backend in ("tensorrt", "trt") and without_tensorrt_backend(version):
        # the migration guide: `--backend tensorrt` (CLI) → omit, or pass `--backend pytorch`
        print(
            "Usage: trtllm-serve serve [OPTIONS] MODEL\nTry 'trtllm-serve serve --help' for help.\n\n"
            f"Error: Invalid value for '--backend': '{args.backend}' is not one of 'pytorch', '_autodeploy'.",
            file=sys.stderr,
        )
        return 2
    options: dict = {}
    if args.extra_llm_api_options is not None:
        from .llm_args import load_options

        loaded, problem = load_options(args.extra_llm_api_options)
        options = loaded or {}
        if problem:
            print(f"Traceback (most recent call last):\n  ...\n{problem}", file=sys.stderr)
            return 1
    if args.tensor_parallel_size * args.pipeline_parallel_size > 1:
        return _fail(
            f"world size {args.tensor_parallel_size * args.pipeline_parallel_size} needs that many GPUs; "
            "this host has 1"
        )
    gpu = require_gpu()
    print(f"[TensorRT-LLM] TensorRT-LLM version: {version}", flush=True)
    try:
        with open(os.path.join(args.model, "config.json")) as f:
            model_config = json.load(f)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot load model from {args.model}: {exc}")
    if args.backend == "tensorrt":
        built_by = model_config.get("version")
        if built_by != version:
            return _fail(
                f"The engine in {args.model} was built with TensorRT-LLM {built_by}, but this runtime is "
                f"TensorRT-LLM {version}; rebuild the engine with the same version."
            )
        if not os.path.exists(os.path.join(args.model, "rank0.engine")):
            return _fail(f"no rank0.engine in {args.model}")
        quant = (model_config.get("pretrained_config", {}).get("quantization") or {}).get("quant_algo")
        max_batch = min(args.max_batch_size, model_config.get("build_config", {}).get("max_batch_size", 2048))
    else:
        from .checkpoint_formats import quant_algo

        quant = quant_algo(args.model)[0]
        max_batch = args.max_batch_size
    profile = "trtllm-nvfp4" if quant == "NVFP4" else "trtllm-fp8"
    tokenizer = args.tokenizer or args.model
    config = ServerConfig(
        model=args.model,
        pacing=pacing_for(profile, gpu),
        chat_template=has_chat_template(tokenizer),
        max_batch_size=max_batch,
        max_seq_len=args.max_seq_len or 4096,
        # /prometheus/metrics is mounted only with return_perf_metrics (serve/openai_server.py, mount_metrics)
        metrics="trtllm-perf" if options.get("return_perf_metrics") else "trtllm",
    )
    memory = hold_memory(profile, gpu)  # noqa: F841 - held for the process lifetime
    print(f"[TRT-LLM] [I] Serving {profile} on {args.host}:{args.port}", flush=True)
    asyncio.run(run_server(config, args.host, args.port, load_seconds=20 * float(gpu["time_scale"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
