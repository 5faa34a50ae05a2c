"""llama.cpp (`llama-server`): its images and how their build is read, the service a state declares (one GGUF file
of a hub checkpoint), the flags `llama-server` takes at that build (read from llama.cpp's common/arg.cpp:
scripts/llamacpp_flags_from_source.py), and what it leaves to the state.

- Images: ggml-org's server images, `ghcr.io/ggml-org/llama.cpp:server-cuda-bBUILD` (.devops/cuda.Dockerfile,
  target `server`: ENTRYPOINT /app/llama-server, ENV LLAMA_ARG_HOST=0.0.0.0, port 8080, HEALTHCHECK on /health).
  They carry no Python, so they cannot download a checkpoint: another image on the host does (the checkpoint's
  fetch_image, or the image of another service that serves it).
- Readiness: every route but the web UI answers 503 `Loading model` until the model is loaded, then /health is
  200 `{"status": "ok"}` (tools/server/server-http.cpp); /metrics needs `--metrics`, which spark-state passes.
- Memory: llama.cpp sizes its KV cache to its context and, with `--fit on` (its default), shrinks what is unset to
  the memory that is free: the plan cannot reckon it from the state alone, so a service gives memory_gib.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from ..desired.fields import Name, Port, ServiceBase
from . import cli_flags
from .base import Launch, LaunchInputs, Stack
from .cli_flags import OptionValue

STACK_NAME = "llama.cpp"
DEFAULT_PORT = 8080  # llama-server's default, and the server image's HEALTHCHECK
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
MODEL_IN_CONTAINER = "/model"
GGUF_FILE = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,250}\.gguf$"

# ggml-org's images are tagged by build (`server-cuda-b11312`, `server-cuda13-b11312`, ...); `server-cuda` alone
# follows master and says nothing about the flags.
_UPSTREAM_TAG = re.compile(
    r"(?:^|/)ggml-org/llama\.cpp:server(?:-[a-z0-9]+)*-(?P<build>b\d+)(?:@sha256:[0-9a-f]{64})?$"
)

# What spark-state passes itself, from the service's own fields (every spelling common/arg.cpp gives each).
OWNED_FLAGS: dict[str, str] = {
    **dict.fromkeys(("m", "model"), "set the service's checkpoint and gguf"),
    **dict.fromkeys(
        ("hf", "hfr", "hf-repo", "hff", "hf-file", "mu", "model-url", "dr", "docker-repo"),
        "spark-state downloads the checkpoint (pinned, verified): set the service's checkpoint and gguf",
    ),
    "host": "the service listens on every address of its Spark",
    "port": "set the service's port",
    **dict.fromkeys(("a", "alias"), "set the service's served_model_name"),
    **dict.fromkeys(("c", "ctx-size"), "set the service's ctx_size"),
    **dict.fromkeys(("ngl", "gpu-layers", "n-gpu-layers"), "set the service's n_gpu_layers"),
    **dict.fromkeys(("np", "parallel"), "set the service's parallel"),
    "metrics": "spark-state always serves llama-server's /metrics",
}


class LlamaCppService(ServiceBase):
    """`llama-server` on one GGUF file of a hub checkpoint, in a llama.cpp server image."""

    stack: Literal["llama.cpp"] = Field(description="The serving stack: llama.cpp (llama-server).")
    port: Port = Field(default=DEFAULT_PORT, description="Where it answers (default: llama-server's 8080).")
    checkpoint: Name = Field(description="The checkpoint whose GGUF file it serves.")
    gguf: str = Field(
        pattern=GGUF_FILE,
        description="The GGUF file in the checkpoint's repo to serve (of a split model, its first part: "
        "llama.cpp loads the others beside it).",
    )
    image: Name = Field(description="The llama.cpp server image it runs in (its build number tells the flags).")
    served_model_name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$", description="The model id clients ask for."
    )
    ctx_size: int | None = Field(default=None, ge=1, le=1048576, description="Default: the model's own.")
    n_gpu_layers: int | Literal["auto", "all"] = Field(
        default="all", description="Layers kept on the GPU (GB10's memory is unified: all, by default)."
    )
    parallel: int | None = Field(default=None, ge=1, le=1024, description="Request slots decoded together.")
    options: dict[str, OptionValue] = Field(
        default_factory=dict,
        description="Further `llama-server` flags by name (`flash-attn: on`, `jinja: true`, `cache-type-k: q8_0`); "
        "true/false become --flag/--no-flag; checked against the image's llama.cpp build.",
    )


def version_for_image(ref: str) -> str | None:
    upstream = _UPSTREAM_TAG.search(ref)
    return upstream.group("build") if upstream else None


# common_params_parse_ex: "error: invalid argument: --x" (exit 1); no abbreviations
FLAGS = cli_flags.FlagServer(
    STACK_NAME, "llama.cpp", "`llama-server`", OWNED_FLAGS, version_for_image, refusal="invalid argument"
)


def serve_argv(svc: LlamaCppService, port: int) -> list[str]:
    """`llama-server`'s arguments (the image's entrypoint is llama-server itself)."""
    argv = ["--model", f"{MODEL_IN_CONTAINER}/{svc.gguf}", "--host", "0.0.0.0", "--port", str(port)]
    argv += ["--n-gpu-layers", str(svc.n_gpu_layers), "--metrics"]
    if svc.served_model_name:
        argv += ["--alias", svc.served_model_name]
    for flag, value in (("--ctx-size", svc.ctx_size), ("--parallel", svc.parallel)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + cli_flags.option_argv(svc.options) + list(svc.extra_args)


def launch(svc: LlamaCppService, inputs: LaunchInputs) -> Launch:
    docker = ["-p", f"{inputs.port}:{inputs.port}", "-v", f"{inputs.model_dir}:{MODEL_IN_CONTAINER}:ro"]
    return Launch(
        docker=docker,
        command=serve_argv(svc, inputs.port),
        description=f"llama-server {svc.gguf} on :{inputs.port}",
        serves=f"{inputs.served} {svc.gguf} (llama.cpp) on {inputs.image_ref}",
    )


STACK = Stack(
    name=STACK_NAME,
    service=LlamaCppService,
    default_port=DEFAULT_PORT,
    health_path=HEALTH_PATH,
    metrics_path=METRICS_PATH,
    health_timeout_s=900,  # loading a GGUF is reading it: minutes at most for what fits a Spark
    launch=launch,
    flags=FLAGS,
    # common/arg.cpp (b11312): `--api-key` from LLAMA_API_KEY, `--hf-token` from HF_TOKEN.
    secrets=frozenset({"LLAMA_API_KEY", "HF_TOKEN"}),
)
