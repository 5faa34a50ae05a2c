"""Stand-in NIM (Llama 3.1 8B Instruct, DGX Spark build: vLLM FP8), as NVIDIA documents NIM containers:
needs NGC_API_KEY and a GPU; runs as UID 1000 and keeps its model profile in the cache mounted at
/opt/nim/.cache, which must be writable by that user; the first start downloads the profile into it (slow),
later starts reuse it (fast); serves on NIM_SERVER_PORT (8000) with /v1/health/live, /v1/health/ready,
/v1/models, /v1/metrics and the OpenAI routes (vLLM underneath: unknown request fields are logged and ignored)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from .gpu import hold_memory, pacing_for, require_gpu
from .openai_server import ServerConfig, run_server

MODEL = "meta/llama-3.1-8b-instruct"
CACHE = os.environ.get("NIM_CACHE_PATH", "/opt/nim/.cache")
PROFILE = "hf-fp8-42d9515+chk1"
PROFILE_DIR = os.path.join(CACHE, "ngc", "hub", "models--nim--meta--llama-3.1-8b-instruct-dgx-spark")
# The NIM_* variables NVIDIA's NIM for LLMs documents ("Environment Variables" reference: logging, server, model
# profile and path, cache, LoRA/PEFT, TLS, guided decoding, KV cache, limits). A real NIM ignores a NIM_* name it
# does not know; the stand-in refuses it (the stricter reading: a typo fails in rehearsal, not silently on a Spark).
DOCUMENTED_ENV = frozenset(
    {
        "NIM_CACHE_PATH",
        "NIM_LOG_LEVEL",
        "NIM_JSONL_LOGGING",
        "NIM_SERVER_PORT",
        "NIM_HEALTH_PORT",
        "NIM_MODEL_PROFILE",
        "NIM_MODEL_PATH",
        "NIM_MODEL_NAME",
        "NIM_SERVED_MODEL_NAME",
        "NIM_CUSTOM_MODEL_NAME",
        "NIM_MAX_MODEL_LEN",
        "NIM_MAX_NUM_SEQS",
        "NIM_TENSOR_PARALLEL_SIZE",
        "NIM_PIPELINE_PARALLEL_SIZE",
        "NIM_LOW_MEMORY_MODE",
        "NIM_ENABLE_KV_CACHE_REUSE",
        "NIM_KV_CACHE_PERCENT",
        "NIM_NUM_KV_CACHE_SEQ_LENS",
        "NIM_DISABLE_LOG_REQUESTS",
        "NIM_TRUST_CUSTOM_CODE",
        "NIM_MANIFEST_ALLOW_UNSAFE",
        "NIM_PEFT_SOURCE",
        "NIM_PEFT_REFRESH_INTERVAL",
        "NIM_MAX_LORA_RANK",
        "NIM_MAX_GPU_LORAS",
        "NIM_MAX_CPU_LORAS",
        "NIM_GUIDED_DECODING_BACKEND",
        "NIM_CUSTOM_GUIDED_DECODING_BACKENDS",
        "NIM_SSL_MODE",
        "NIM_SSL_KEY_PATH",
        "NIM_SSL_CERTS_PATH",
        "NIM_SSL_CA_CERTS_PATH",
        "NIM_ENABLE_OTEL",
        "NIM_OTEL_SERVICE_NAME",
        "NIM_OTEL_TRACES_EXPORTER",
        "NIM_OTEL_METRICS_EXPORTER",
        "NIM_OTEL_EXPORTER_OTLP_ENDPOINT",
        "NIM_CORS_ALLOW_ORIGINS",
        "NIM_REPOSITORY_OVERRIDE",
    }
)
DOWNLOAD_S, LOAD_S = 120.0, 20.0  # seed-scale seconds: a first start downloads the profile; every start loads it


def cache_writable() -> str | None:
    """None when the cache can be written by this process, else the error NIM dies with."""
    try:
        os.makedirs(PROFILE_DIR, exist_ok=True)
        probe = os.path.join(PROFILE_DIR, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as exc:
        return (
            f"PermissionError: [Errno {exc.errno}] {exc.strerror}: {exc.filename!r} — the NIM cache "
            f"{CACHE} must be writable by UID {os.getuid()} (mount a directory owned by it)"
        )
    return None


def main(argv: list[str]) -> int:
    unknown = sorted(n for n in os.environ if n.startswith("NIM_") and n not in DOCUMENTED_ENV)
    if unknown:
        print(
            f"ERROR: unknown NIM setting(s) {', '.join(unknown)}: not among the documented NIM_* environment variables",
            file=sys.stderr,
        )
        return 1
    if not os.environ.get("NGC_API_KEY"):
        print("ERROR: NGC_API_KEY is not set; it is required to download the model profile.", file=sys.stderr)
        return 1
    gpu = require_gpu()
    error = cache_writable()
    if error:
        print(error, file=sys.stderr, flush=True)
        return 1
    port = int(os.environ.get("NIM_SERVER_PORT", "8000"))
    marker = os.path.join(PROFILE_DIR, "profile.json")
    scale = float(gpu["time_scale"])

    def download_profile() -> None:
        if os.path.exists(marker):
            print(f"INFO Using cached model profile {PROFILE} from {CACHE}", flush=True)
            return
        print(f"INFO Downloading model profile {PROFILE} (BACKEND_TYPE=vllm) into {CACHE}", flush=True)
        time.sleep(DOWNLOAD_S * scale)
        with open(marker + ".tmp", "w") as f:
            json.dump({"profile": PROFILE, "backend": "vllm"}, f)
        os.replace(marker + ".tmp", marker)

    config = ServerConfig(
        model=MODEL,
        pacing=pacing_for("nim-vllm-fp8", gpu),
        max_batch_size=256,
        owned_by="system",
        unknown_fields="ignore",
        nim_routes=True,
    )
    memory = hold_memory("nim-vllm-fp8", gpu)  # noqa: F841 - held for the process lifetime
    print(f"INFO Uvicorn running on http://0.0.0.0:{port}", flush=True)
    asyncio.run(run_server(config, "0.0.0.0", port, load_seconds=LOAD_S * scale, prepare=download_profile))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
