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
        return (f"PermissionError: [Errno {exc.errno}] {exc.strerror}: {exc.filename!r} — the NIM cache "
                f"{CACHE} must be writable by UID {os.getuid()} (mount a directory owned by it)")  # fmt: skip
    return None


def main(argv: list[str]) -> int:
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

    config = ServerConfig(model=MODEL, pacing=pacing_for("nim-vllm-fp8", gpu), max_batch_size=256, owned_by="system",
                          unknown_fields="ignore", nim_routes=True)  # fmt: skip
    memory = hold_memory("nim-vllm-fp8", gpu)  # noqa: F841 - held for the process lifetime
    print(f"INFO Uvicorn running on http://0.0.0.0:{port}", flush=True)
    asyncio.run(run_server(config, "0.0.0.0", port, load_seconds=LOAD_S * scale, prepare=download_profile))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
