"""NVIDIA NIM: a container that serves its own model (vLLM inside), downloading its model profile on first start."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..desired.fields import Name, Port, ServiceBase, docker_shm_size
from .base import Launch, LaunchInputs, Stack

NIM_CACHE = "/opt/nim/.cache"  # where a NIM keeps downloaded model profiles (NIM docs: mount a host dir here)
NIM_UID = 1000  # NIM containers run as this user: the cache must be writable by it
DEFAULT_PORT = 8000  # NIM's documented port


class NimService(ServiceBase):
    """An NVIDIA NIM container."""

    stack: Literal["nim"] = Field(default="nim", description="The serving stack: nim.")
    port: Port = Field(default=DEFAULT_PORT, description="Where it answers on the host (default: NIM's 8000).")
    container: Name = Field(description="The NIM image (a name in images).")
    container_port: Port = Field(default=DEFAULT_PORT, description="Port the NIM listens on inside the container.")
    shm_size: Annotated[str, AfterValidator(docker_shm_size)] = Field(
        default="16GB", description="The container's /dev/shm (docker --shm-size, e.g. 16GB)."
    )


def launch(svc: NimService, inputs: LaunchInputs) -> Launch:
    cache_dir = f"{inputs.root}/nim-cache/{inputs.service}"
    docker = [f"--shm-size={svc.shm_size}", "-p", f"{inputs.port}:{svc.container_port}"]
    docker += ["-v", f"{cache_dir}:{NIM_CACHE}"]
    return Launch(
        docker=docker,
        command=list(svc.extra_args),
        description=f"NIM {inputs.image_ref} on :{inputs.port}",
        serves=f"NIM {inputs.image_ref}",
        cache_dir=cache_dir,
    )


STACK = Stack(
    name="nim",
    service=NimService,
    default_port=DEFAULT_PORT,
    # NIM documents /v1/health/ready (503 until the model is loaded) and /v1/metrics; it has no /health.
    health_path="/v1/health/ready",
    metrics_path="/v1/metrics",
    health_timeout_s=1800,  # the first start downloads the model profile into the cache
    launch=launch,
    # NIM LLM's configuration and environment-variable pages: `-e NGC_API_KEY` (NGC downloads) and `-e HF_TOKEN`
    # (gated or private Hugging Face models).
    secrets=frozenset({"NGC_API_KEY", "HF_TOKEN"}),
)
