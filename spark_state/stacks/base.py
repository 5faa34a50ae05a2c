"""What every serving stack module declares (`STACK`), and what the plan hands a stack to launch a service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cli_flags import FlagServer


@dataclass(frozen=True)
class LaunchInputs:
    """Where a service's pieces are on its host, resolved by the plan."""

    service: str
    port: int
    image_ref: str  # the image as the host knows it locally
    served: str  # what is served, for people: "checkpoint REPO@REVISION" or "engine NAME FINGERPRINT"
    root: str  # spark-state's directory on the host (caches, options files)
    model_dir: str | None = None  # the checkpoint or engine directory the service serves
    tokenizer_dir: str | None = None
    limits: Mapping[str, int] = field(default_factory=dict)  # an engine's build limits (max_batch_size, ...)
    scraped: bool = False  # Prometheus scrapes it (`monitoring:`): the stack turns on what serves its metrics


@dataclass(frozen=True)
class Launch:
    """How a stack runs one service: `docker run` options before the image, the command after it."""

    docker: list[str]
    command: list[str]
    description: str  # the unit's Description
    serves: str  # what runs, for people (the unit's `# Serves:` line)
    config_files: dict[str, str] = field(default_factory=dict)  # host path → text, read by the container
    cache_dir: str | None = None  # a host directory the container's user must own
    before_start: list[list[str]] = field(default_factory=list)  # commands the unit runs first (failures ignored)


@dataclass(frozen=True)
class Stack:
    name: str
    service: type  # the state's service model for this stack
    default_port: int
    health_path: str  # 200 once the model is loaded
    metrics_path: str | None  # where its server answers Prometheus text (None: nowhere)
    health_timeout_s: int  # how long a start may take, unless the service says
    launch: Callable[[Any, LaunchInputs], Launch]
    # It claims a fraction of the memory free when it starts (TensorRT-LLM's KV cache, SGLang's static pool): what
    # it gets depends on what started before it, so such services start after every other, in one fixed order.
    takes_free_memory: bool = False
    flags: FlagServer | None = None  # a server configured by flags: how a service's `options` are checked
    # The credentials the server documents reading from its environment: a service's `secrets` may name these; any
    # other name needs the service's `allow_secrets` (a secret is the operator's environment shipped into a
    # container, so only what the server reads belongs there).
    secrets: frozenset[str] = frozenset()
