"""vLLM (`vllm serve`): its images and how their vLLM version is read, the service a state declares, the flags it
takes at that version (read from vLLM's own wheels: scripts/vllm_flags_from_wheel.py), and how it sizes memory.

vLLM claims `--gpu-memory-utilization` × the device's *total* memory, weights and KV cache together, and refuses to
start when that much is not free (vllm/v1/worker/utils.py: "Free memory on device ... is less than desired GPU
memory utilization"). NVIDIA's vLLM release notes warn that on unified memory (DGX Spark) its default is too
aggressive; the playbooks pass a share explicitly."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from ..desired.fields import Port
from . import cli_flags
from .base import Launch, LaunchInputs, Stack
from .cli_flags import MODEL_IN_CONTAINER, TOKENIZER_IN_CONTAINER, CheckpointFlagService, OptionValue

STACK_NAME = "vllm"
DEFAULT_PORT = 8000  # vllm serve's default
HEALTH_PATH = "/health"  # vLLM's API server answers 200 once the engine is up (it listens only after loading)
METRICS_PATH = "/metrics"

# NGC's vLLM containers (`nvcr.io/nvidia/vllm:YY.MM-py3`) → the vLLM they ship (NVIDIA vLLM release notes,
# docs.nvidia.com/deeplearning/frameworks/vllm-release-notes/rel-YY-MM.html).
NGC_VLLM_VERSIONS: dict[str, str] = {
    "25.10": "0.10.2",
    "26.01": "0.11.1",
    "26.03": "0.17.1",
    "26.05": "0.20.1",
    "26.10": "0.31.0",
}
_NGC_TAG = re.compile(r"(?:^|/)nvidia/vllm:(?P<release>\d\d\.\d\d)-py3(?:@sha256:[0-9a-f]{64})?$")
# vLLM's own image (`vllm/vllm-openai:v0.20.1`) is tagged with the version.
_UPSTREAM_TAG = re.compile(
    r"(?:^|/)vllm/vllm-openai:v(?P<version>\d+\.\d+\.\d+(?:\.post\d+)?)(?:@sha256:[0-9a-f]{64})?$"
)

# What spark-state passes itself, from the service's own fields (a second value would be ambiguous, and the plan's
# memory budget reads the service's gpu_memory_utilization).
OWNED_FLAGS: dict[str, str] = {
    "model": "set the service's checkpoint",
    "tokenizer": "set the service's tokenizer",
    "host": "the service listens on every address of its Spark",
    "port": "set the service's port",
    "gpu-memory-utilization": "set the service's gpu_memory_utilization",
    "max-model-len": "set the service's max_model_len",
    "max-num-seqs": "set the service's max_num_seqs",
    "served-model-name": "set the service's served_model_name",
    "config": "give the options here, one by one",
    "headless": "each service runs its own API server",
}


# cudaMemGetInfo on GB10 does not count reclaimable page cache as free (vllm-project/vllm#35313): after a
# checkpoint was read, vLLM's startup check sees too little memory and refuses. NVIDIA's playbooks drop the cache
# first; the unit does the same before each start.
DROP_PAGE_CACHE = ["/bin/sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"]


class VllmService(CheckpointFlagService):
    """`vllm serve` on a checkpoint, in a vLLM image."""

    stack: Literal["vllm"] = Field(description="The serving stack: vllm.")
    port: Port = Field(default=DEFAULT_PORT, description="Where it answers (default: vLLM's 8000).")
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Share of the Spark's total unified memory vLLM claims (weights and KV cache); vLLM refuses to "
        "start when that much is not free.",
    )
    max_model_len: int | None = Field(
        default=None, ge=1, le=1048576, description="--max-model-len: the longest prompt plus completion."
    )
    max_num_seqs: int | None = Field(
        default=None, ge=1, le=65536, description="--max-num-seqs: sequences in one batch."
    )
    options: dict[str, OptionValue] = Field(
        default_factory=dict,
        description="Further `vllm serve` flags by name (`enable-prefix-caching: true`, `kv-cache-dtype: fp8`); "
        "true/false become --flag/--no-flag, a mapping its JSON; checked against the image's vLLM version.",
    )


def version_for_image(ref: str) -> str | None:
    if upstream := _UPSTREAM_TAG.search(ref):
        return upstream.group("version")
    if ngc := _NGC_TAG.search(ref):
        return NGC_VLLM_VERSIONS.get(ngc.group("release"))
    return None


FLAGS = cli_flags.FlagServer(STACK_NAME, "vLLM", "`vllm serve`", OWNED_FLAGS, version_for_image)


def launch(svc: VllmService, inputs: LaunchInputs) -> Launch:
    return Launch(
        docker=svc.docker_options(inputs),
        command=serve_argv(svc, inputs.port),
        description=f"vllm serve checkpoint {svc.checkpoint} on :{inputs.port}",
        serves=f"{inputs.served} (vllm) on {inputs.image_ref}",
        before_start=[DROP_PAGE_CACHE],
    )


STACK = Stack(
    name=STACK_NAME,
    service=VllmService,
    default_port=DEFAULT_PORT,
    health_path=HEALTH_PATH,
    metrics_path=METRICS_PATH,
    health_timeout_s=1800,  # vLLM profiles memory, captures CUDA graphs and may compile before it answers
    launch=launch,
    flags=FLAGS,
    # vllm/envs.py: VLLM_API_KEY (the key `--api-key` otherwise takes); HF_TOKEN through huggingface_hub, for gated
    # tokenizers and configs.
    secrets=frozenset({"VLLM_API_KEY", "HF_TOKEN"}),
)


def serve_argv(svc: VllmService, port: int) -> list[str]:
    """`vllm serve` and its flags, after the image in `docker run`."""
    argv = ["vllm", "serve", MODEL_IN_CONTAINER, "--host", "0.0.0.0", "--port", str(port)]
    argv += ["--gpu-memory-utilization", f"{svc.gpu_memory_utilization:g}"]
    if svc.tokenizer:
        argv += ["--tokenizer", TOKENIZER_IN_CONTAINER]
    if svc.served_model_name:
        argv += ["--served-model-name", svc.served_model_name]
    for flag, value in (("--max-model-len", svc.max_model_len), ("--max-num-seqs", svc.max_num_seqs)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + cli_flags.option_argv(svc.options) + list(svc.extra_args)


def memory_gib(svc: VllmService, total_gib: float | None) -> float | None:
    """What vLLM holds: its share of total memory, whatever else runs (None when the total is not known)."""
    return svc.gpu_memory_utilization * total_gib if total_gib else None
