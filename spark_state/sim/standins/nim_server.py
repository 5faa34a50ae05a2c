"""Stand-in NIM (Llama 3.1 8B Instruct, DGX Spark build: vLLM FP8): needs NGC_API_KEY and a GPU, caches its
model under /opt/nim/.cache, serves on NIM_SERVER_PORT (8000)."""

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


def main(argv: list[str]) -> int:
    if not os.environ.get("NGC_API_KEY"):
        print("ERROR: NGC_API_KEY is not set; it is required to download the model profile.", file=sys.stderr)
        return 1
    gpu = require_gpu()
    port = int(os.environ.get("NIM_SERVER_PORT", "8000"))
    marker = os.path.join(CACHE, "ngc", "hub", "models--nim--meta--llama-3.1-8b-instruct-dgx-spark", "profile.json")
    load = 20 * float(gpu["time_scale"])
    if not os.path.exists(marker):
        print("INFO Downloading model profile hf-fp8-42d9515+chk1 (BACKEND_TYPE=vllm)", flush=True)
        time.sleep(load)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "w") as f:
            json.dump({"profile": "hf-fp8-42d9515+chk1", "backend": "vllm"}, f)
    config = ServerConfig(model=MODEL, pacing=pacing_for("nim-vllm-fp8", gpu), max_batch_size=256, owned_by="system",
                          unknown_fields="ignore")  # vLLM inside NIM logs unknown fields and goes on
    memory = hold_memory("nim-vllm-fp8", gpu)  # noqa: F841 - held for the process lifetime
    print(f"INFO Uvicorn running on http://0.0.0.0:{port}", flush=True)
    asyncio.run(run_server(config, "0.0.0.0", port, load_seconds=load))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
