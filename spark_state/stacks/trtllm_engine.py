"""The field report's TensorRT-LLM path: an engine built with `trtllm-build`, served by `trtllm-serve --backend
tensorrt`. Kept for the images that still have both (TensorRT-LLM before its backend's removal, stacks/trtllm.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..desired.fields import Name, Port, ServiceBase
from .base import Launch, LaunchInputs, Stack
from .trtllm import TrtllmServeFlags, serve_command

DEFAULT_PORT = 8000  # trtllm-serve's default


class EngineService(ServiceBase, TrtllmServeFlags):
    """trtllm-serve with the TensorRT backend, serving a built engine."""

    stack: Literal["trtllm-engine"] = Field(
        default="trtllm-engine", description="The serving stack: trtllm-engine (trtllm-serve on a built engine)."
    )
    port: Port = Field(default=DEFAULT_PORT, description="Where it answers (default: trtllm-serve's 8000).")
    engine: Name = Field(description="The engine it serves (trtllm-serve --backend tensorrt).")
    image: Name | None = Field(default=None, description="Serving image; defaults to the engine's build image.")


def launch(svc: EngineService, inputs: LaunchInputs) -> Launch:
    docker = ["-p", f"{inputs.port}:{inputs.port}"]
    docker += ["-v", f"{inputs.model_dir}/engine:/engine:ro", "-v", f"{inputs.tokenizer_dir}:/tokenizer:ro"]
    return Launch(
        docker=docker,
        command=serve_command(svc, inputs, "/engine", "tensorrt", []),
        description=f"trtllm-serve engine {svc.engine} on :{inputs.port}",
        serves=f"{inputs.served} on {inputs.image_ref}",
    )


STACK = Stack(
    name="trtllm-engine",
    service=EngineService,
    default_port=DEFAULT_PORT,
    health_path="/health",
    # trtllm-serve's /metrics answers JSON iteration stats; its Prometheus text needs the LLM API option
    # return_perf_metrics, which an engine service is not given: not scraped, not sampled by the bench.
    metrics_path=None,
    health_timeout_s=600,
    launch=launch,
    takes_free_memory=True,
    # No `secrets`: Triton serves a built engine and reads its tokenizer from disk; it documents no credential.
)
