"""SGLang (`python3 -m sglang.launch_server`): its images and how their SGLang version is read, the service a state
declares, the flags it takes at that version (read from SGLang's own wheels: scripts/sglang_flags_from_wheel.py),
and how it sizes memory.

SGLang claims `--mem-fraction-static` × the memory *available when it starts* for weights and KV cache together
(sglang/srt/mem_cache/kv_cache_configurator.py `_profile_available_bytes`: the KV pool is what is free after the
weights loaded, less the pre-load free memory × (1 - fraction)); on an integrated GPU such as GB10 "available"
is the system's available memory, page cache included (sglang/srt/utils/common.py `get_available_gpu_memory`:
`psutil.virtual_memory().available` when `props.is_integrated`), so no cache drop is needed before it starts. When
the weights leave nothing for the KV cache it refuses to start ("Loaded weights leave no GPU memory for the KV
cache under --mem-fraction-static=..."). The dgx-spark-playbooks pass 0.75."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from ..desired.fields import Port
from . import cli_flags
from .base import Launch, LaunchInputs, Stack
from .cli_flags import MODEL_IN_CONTAINER, TOKENIZER_IN_CONTAINER, CheckpointFlagService, OptionValue

STACK_NAME = "sglang"
DEFAULT_PORT = 30000  # sglang/srt/arg_groups/fields/serving.py: port = 30000; the playbooks serve there
HEALTH_PATH = "/health"  # 503 while the server is starting, 200 once up (sglang/srt/entrypoints/http_server.py)
METRICS_PATH = "/metrics"  # only with --enable-metrics, which spark-state always passes
PLAYBOOK_MEM_FRACTION = 0.75  # dgx-spark-playbooks, sglang: `--mem-fraction-static 0.75`

# SGLang's own images are tagged with the version: `lmsysorg/sglang:v0.5.23-cu130` (also -cu129, -runtime, ...);
# `latest-cu130` and `spark` say nothing about the version.
_UPSTREAM_TAG = re.compile(
    r"(?:^|/)lmsysorg/sglang:v(?P<version>\d+\.\d+\.\d+(?:\.post\d+)?)(?:-[a-z0-9.]+)*(?:@sha256:[0-9a-f]{64})?$"
)

# What spark-state passes itself, from the service's own fields.
OWNED_FLAGS: dict[str, str] = {
    "model-path": "set the service's checkpoint",
    "model": "set the service's checkpoint",
    "tokenizer-path": "set the service's tokenizer",
    "host": "the service listens on every address of its Spark",
    "port": "set the service's port",
    "mem-fraction-static": "set the service's mem_fraction_static",
    "context-length": "set the service's context_length",
    "max-running-requests": "set the service's max_running_requests",
    "served-model-name": "set the service's served_model_name",
    "enable-metrics": "spark-state always serves SGLang's /metrics",
    "config": "give the options here, one by one",
}


class SglangService(CheckpointFlagService):
    """`python3 -m sglang.launch_server` on a checkpoint, in an SGLang image."""

    stack: Literal["sglang"] = Field(description="The serving stack: sglang.")
    port: Port = Field(default=DEFAULT_PORT, description="Where it answers (default: SGLang's 30000).")
    mem_fraction_static: float = Field(
        default=PLAYBOOK_MEM_FRACTION,
        gt=0,
        lt=1,
        description="Share of the unified memory available when it starts that SGLang claims for weights and KV "
        "cache (default: the playbooks' 0.75); it refuses to start when the weights leave no KV cache.",
    )
    context_length: int | None = Field(
        default=None, ge=1, le=1048576, description="--context-length: the longest prompt plus completion."
    )
    max_running_requests: int | None = Field(default=None, ge=1, le=65536, description="--max-running-requests.")
    options: dict[str, OptionValue] = Field(
        default_factory=dict,
        description="Further `sglang.launch_server` flags by name (`attention-backend: flashinfer`, "
        "`trust-remote-code: true`); true turns a switch on, a mapping passes its JSON; checked against the "
        "image's SGLang version.",
    )


def version_for_image(ref: str) -> str | None:
    upstream = _UPSTREAM_TAG.search(ref)
    return upstream.group("version") if upstream else None


# prepare_server_args builds `argparse.ArgumentParser(prog="sglang serve")`: abbreviations allowed
FLAGS = cli_flags.FlagServer(
    STACK_NAME, "SGLang", "`sglang.launch_server`", OWNED_FLAGS, version_for_image, abbreviations=True
)


def serve_argv(svc: SglangService, port: int) -> list[str]:
    """`python3 -m sglang.launch_server` and its flags, after the image in `docker run`."""
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", MODEL_IN_CONTAINER]
    argv += ["--host", "0.0.0.0", "--port", str(port), "--mem-fraction-static", f"{svc.mem_fraction_static:g}"]
    argv += ["--enable-metrics"]
    if svc.tokenizer:
        argv += ["--tokenizer-path", TOKENIZER_IN_CONTAINER]
    if svc.served_model_name:
        argv += ["--served-model-name", svc.served_model_name]
    for flag, value in (("--context-length", svc.context_length), ("--max-running-requests", svc.max_running_requests)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + cli_flags.option_argv(svc.options) + list(svc.extra_args)


def launch(svc: SglangService, inputs: LaunchInputs) -> Launch:
    return Launch(
        docker=svc.docker_options(inputs),
        command=serve_argv(svc, inputs.port),
        description=f"sglang checkpoint {svc.checkpoint} on :{inputs.port}",
        serves=f"{inputs.served} (sglang) on {inputs.image_ref}",
    )


def memory_gib(svc: SglangService, free_gib: float) -> float:
    """What SGLang holds: its fraction of what is available when it starts (weights and KV cache together)."""
    return svc.mem_fraction_static * free_gib


STACK = Stack(
    name=STACK_NAME,
    service=SglangService,
    default_port=DEFAULT_PORT,
    health_path=HEALTH_PATH,
    metrics_path=METRICS_PATH,
    health_timeout_s=1800,  # SGLang loads, profiles memory and captures CUDA graphs before it answers
    launch=launch,
    takes_free_memory=True,
    flags=FLAGS,
    # SGLang 0.5.23 reads its API keys only from flags (srt/arg_groups/fields/serving.py); HF_TOKEN through
    # huggingface_hub.
    secrets=frozenset({"HF_TOKEN"}),
)
