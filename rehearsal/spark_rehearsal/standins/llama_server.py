"""Stand-in `llama-server` (the server image's entrypoint, /app/llama-server): llama.cpp's own flags at the image's
build (the list read from common/arg.cpp, shipped in the image as llama_server_flags.json) parsed as
common_params_parse does, a GGUF file checked as ggml's loader checks it, every route 503 `Loading model` until
loaded, /health `{"status": "ok"}`, /v1/models (owned_by "llamacpp"), /metrics only with --metrics.

Sources (llama.cpp b11312, commit 0c1e57098, as llama-cpp-python 0.3.36 vendors it):
- common/arg.cpp `common_params_parse_ex`: a `--` argument has `_` read as `-`; an argument not in the list →
  "error: invalid argument: ARG"; a value missing → "expected value for argument"; tools/server/server.cpp returns
  1 when parsing fails. LLAMA_ARG_HOST / LLAMA_ARG_PORT are read when the flag is not given (the image sets
  LLAMA_ARG_HOST=0.0.0.0; .devops/cuda.Dockerfile); defaults 127.0.0.1:8080.
- ggml/src/gguf.cpp: a file that does not begin with "GGUF" → "invalid magic characters"; the server then logs
  "failed to load model" and exits 1 (tools/server/server-context.cpp).
- the model id: the first --alias, else the file's name (server-context.cpp).
Memory held: the file's weights as the published GGUF sizes of Llama 3.1 8B (bartowski's repo: Q4_K_M 4.92 GB,
Q8_0 8.54 GB) and an f16 KV cache of 128 KiB per token of context (32 layers × 8 KV heads × 128 × K and V × 2
bytes). Pacing: no published GB10 figures for llama.cpp on this model; paced as the field report's NVFP4
(Q4) and FP8 (Q8) runs, an assumption."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from .gpu import hold_gib, pacing_for, require_gpu
from .openai_server import ServerConfig, run_server

FLAGS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_server_flags.json")  # in the image
LOAD_S = 10.0  # seed-scale seconds to read an 8B GGUF into unified memory (assumed: no published figure)
WEIGHTS_GB = {"Q4_K_M": 4.92, "Q8_0": 8.54}
KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2
TRAINED_CONTEXT = 131072  # Llama 3.1's: --ctx-size 0 (the default) loads the model's own


class ParseError(Exception):
    pass


def parse(argv: list[str], flags: dict[str, str]) -> dict[str, object]:
    """{dest: value} as common_params_parse_ex reads argv: switches are True, pairs True/False, values strings."""
    values: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            arg = arg.replace("_", "-")
        kind = flags.get(arg)
        if kind is None:
            raise ParseError(f"error: invalid argument: {arg}")
        if kind in ("switch", "bool"):
            values[arg] = True
            if arg.startswith("--no-") and flags.get("--" + arg[5:]) == "bool":
                values["--" + arg[5:]] = False
        else:
            if i + 1 >= len(argv):
                raise ParseError("expected value for argument")
            i += 1
            values[arg] = argv[i]
        i += 1
    return values


def first(values: dict[str, object], *names: str) -> object | None:
    return next((values[n] for n in names if n in values), None)


def main(argv: list[str]) -> int:
    with open(os.environ.get("SPARK_SIM_LLAMA_FLAGS", FLAGS_FILE)) as f:
        flags = json.load(f)["flags"]
    try:
        values = parse(argv, flags)
    except ParseError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if first(values, "--version"):
        print("version: 11312 (0c1e57098)\nbuilt with GNU 13.3.0 for Linux aarch64", file=sys.stderr)
        return 0
    model = first(values, "-m", "--model") or os.environ.get("LLAMA_ARG_MODEL")
    if not isinstance(model, str):
        print("srv    load_models: no model given (-m); router mode is not rehearsed", file=sys.stderr)
        return 1
    gpu = require_gpu()
    try:
        with open(model, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        print(f"gguf_init_from_file: failed to open GGUF file '{model}' ({exc.strerror})", file=sys.stderr)
        print(f"srv    load_model: failed to load model, '{model}'", file=sys.stderr)
        return 1
    if magic != b"GGUF":
        print(
            f"gguf_init_from_file_impl: invalid magic characters: '{magic.decode('latin-1')}', expected 'GGUF'",
            file=sys.stderr,
        )
        print(f"srv    load_model: failed to load model, '{model}'", file=sys.stderr)
        return 1
    quant = "Q8_0" if "Q8_0" in os.path.basename(model) else "Q4_K_M"
    ctx = int(str(first(values, "-c", "--ctx-size") or 0)) or TRAINED_CONTEXT
    alias = first(values, "-a", "--alias")
    name = str(alias).split(",")[0] if alias else os.path.basename(model)
    config = ServerConfig(
        model=name,
        pacing=pacing_for("trtllm-nvfp4" if quant == "Q4_K_M" else "trtllm-fp8", gpu),
        max_batch_size=int(str(first(values, "-np", "--parallel") or 4)),
        max_seq_len=ctx,
        owned_by="llamacpp",
        unknown_fields="ignore",
        metrics="llamacpp" if first(values, "--metrics") else "llamacpp-off",
        loading_error={"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}},
        health_body={"status": "ok"},
    )
    memory = hold_gib(WEIGHTS_GB[quant] * 1e9 / 2**30 + ctx * KV_BYTES_PER_TOKEN / 2**30, gpu)  # noqa: F841
    host = str(first(values, "--host") or os.environ.get("LLAMA_ARG_HOST") or "127.0.0.1")
    port = int(str(first(values, "--port") or os.environ.get("LLAMA_ARG_PORT") or 8080))
    print(f"main: server is listening on http://{host}:{port} - starting the main loop", flush=True)
    asyncio.run(run_server(config, host, port, load_seconds=LOAD_S * float(gpu["time_scale"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
