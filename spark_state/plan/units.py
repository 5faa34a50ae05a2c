"""Services in a host plan: the systemd unit each runs as (`docker run ...` with what its stack launches), its
ports, readiness path and health timeout, and the identity that tells which unit started a container."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..desired.model import DesiredState, EngineService, NimService
from ..desired.names import service_container, service_env_file, service_unit
from ..stacks import STACKS
from ..stacks.base import LaunchInputs
from ..stacks.trtllm import SERVE_LIMITS
from . import quoting
from .checkpoints import CheckpointPlan
from .engines import EnginePlan
from .images import ImagePlan
from .templates import render

IDENTITY_LABEL = "spark-state.identity"
SERVES_LINE = "# Serves: "  # a unit's second line: what it runs, read back by rollback and drift


@dataclass(frozen=True)
class ServicePlan:
    name: str
    kind: str
    port: int
    image_ref: str
    unit_name: str
    unit_path: str
    unit_text: str
    container_name: str
    run_argv: tuple[str, ...]
    env_file: str | None
    env: dict[str, str]
    secrets: tuple[str, ...]
    engine: str | None
    engine_fingerprint: str | None
    checkpoint: str | None
    tokenizer_checkpoint: str | None
    no_chat_template: str  # what the host fails with when the tokenizer it loads has no chat template
    expect: dict[str, Any]
    memory_gib: float | None
    # NIM documents /v1/health/ready (503 until the model is loaded); trtllm-serve answers /health.
    health_path: str = "/health"
    health_timeout_s: int = 600
    cache_dir: str | None = None  # a NIM's model cache on the host, writable by the container's UID 1000
    identity: str = ""  # the unit this service's container must have been started from (IDENTITY_LABEL)
    serves: str = ""  # what the unit runs, for people: "engine E <fingerprint> on <image>" (its `# Serves:` line)
    # Files the container reads (host path → text), each named by its content: a changed option is a new file and
    # so a new unit (a restart), and a rollback's unit still names the file it ran with.
    config_files: dict[str, str] = field(default_factory=dict)
    # Services that claim a fraction of the free memory start one after another in the plan's order: each unit
    # starts after the one before it (and goes down and up again with it), and a unit another follows counts as
    # started only once it answers, when its memory is claimed.
    after_unit: str | None = None
    followers: tuple[str, ...] = ()  # the units restarted with this one, in order


def unit_serves(unit_text: str | None) -> str | None:
    """What a unit file says it serves (its `# Serves:` line); None for a unit written before that line."""
    for line in (unit_text or "").splitlines()[:5]:
        if line.startswith(SERVES_LINE):
            return line[len(SERVES_LINE) :].strip()
    return None


def no_chat_template(service: str, checkpoint: str, repo: str) -> str:
    return (
        f"service {service}: the tokenizer of checkpoint {checkpoint} ({repo}) has no chat_template; "
        "trtllm-serve would answer HTTP 400 'No chat template found for the given tokenizer and tools.' — "
        "set tokenizer_from on the checkpoint (or tokenizer on the service) to a checkpoint that has one"
    )


def plan_service(
    state: DesiredState,
    name: str,
    images: Mapping[str, ImagePlan],
    checkpoints: Mapping[str, CheckpointPlan],
    engines: Mapping[str, EnginePlan],
    tokenizer: str | None,
    after: str | None = None,
    followers: tuple[str, ...] = (),
) -> ServicePlan:
    """One service's unit and container, from the host's plans of its image, checkpoints and engine.
    `tokenizer`: the checkpoint whose tokenizer it loads; `after`: the service it starts after; `followers`:
    those that start after it, in order (both among the host's services that claim a fraction of the free
    memory)."""
    svc = state.services[name]
    stack = STACKS[svc.stack]
    docker = state.paths.docker
    container = service_container(name)
    env_file = service_env_file(state.paths.secrets, name) if (svc.env or svc.secrets) else None
    engine_plan = engines.get(svc.engine) if isinstance(svc, EngineService) else None
    checkpoint: str | None = getattr(svc, "checkpoint", None)
    tokenizer_dir = checkpoints[tokenizer].dir if tokenizer else None
    no_template = no_chat_template(name, tokenizer, checkpoints[tokenizer].repo) if tokenizer else ""
    if isinstance(svc, NimService):
        image_ref = images[svc.container].local
        inputs = LaunchInputs(name, svc.port, image_ref, "", state.paths.root)
    elif isinstance(svc, EngineService):
        assert engine_plan is not None
        engine = state.engines[svc.engine]
        image_ref = images[svc.image or engine.image].local
        served = f"engine {svc.engine} {engine_plan.fingerprint[:16]}"
        limits = {flag: getattr(engine, flag) for flag in SERVE_LIMITS}
        inputs = LaunchInputs(
            name, svc.port, image_ref, served, state.paths.root, engine_plan.dir, tokenizer_dir, limits
        )
    else:
        image_ref = images[svc.image].local
        ckpt = checkpoints[svc.checkpoint]
        served = f"checkpoint {ckpt.repo}@{ckpt.revision}"
        inputs = LaunchInputs(name, svc.port, image_ref, served, state.paths.root, ckpt.dir, tokenizer_dir)
    launch = stack.launch(svc, dataclasses.replace(inputs, scraped=state.monitoring is not None))
    run: list[str] = [docker, "run", "--rm", "--name", container, "--gpus", "all", *launch.docker]
    if env_file:
        run += ["--env-file", env_file]
    run += [image_ref, *launch.command]

    unit_name = service_unit(name)
    after_unit = service_unit(after) if after else None
    timeout = svc.health_timeout_s or stack.health_timeout_s
    # curl on the host until the service answers, for at most its health timeout: a container that died while
    # loading fails the start then, not at systemd's start timeout (the loop does not end with the container)
    wait = f"until curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:{svc.port}{stack.health_path}; do sleep 2; done"

    def unit(argv: list[str]) -> str:
        return render(
            "service.unit.j2",
            service={"name": name, "description": launch.description, "serves": launch.serves},
            after_unit=after_unit,
            exec_ready=quoting.systemd_join(["/usr/bin/timeout", str(timeout), "/bin/sh", "-c", wait])
            if followers
            else None,
            start_timeout=timeout + 60 if followers else 900,
            exec_rm=quoting.systemd_join([docker, "rm", "-f", container]),
            exec_before=[quoting.systemd_join(argv) for argv in launch.before_start],
            exec_start=quoting.systemd_join(argv),
            exec_stop=quoting.systemd_join([docker, "stop", "-t", "30", container]),
        )

    # The container carries the identity of the unit that started it, so a unit installed but never restarted
    # (a run that failed between the two) shows as a container running an older version than installed.
    identity = hashlib.sha256(unit(run).encode()).hexdigest()[:16]
    run[run.index("--name") + 2 : run.index("--name") + 2] = ["--label", f"{IDENTITY_LABEL}={identity}"]
    unit_text = unit(run)
    return ServicePlan(
        name=name,
        kind=svc.stack,
        port=svc.port,
        image_ref=image_ref,
        unit_name=unit_name,
        unit_path=f"{state.paths.units}/{unit_name}",
        unit_text=unit_text,
        container_name=container,
        run_argv=tuple(run),
        env_file=env_file,
        env=dict(svc.env),
        secrets=tuple(svc.secrets),
        engine=svc.engine if isinstance(svc, EngineService) else None,
        engine_fingerprint=engine_plan.fingerprint if engine_plan else None,
        checkpoint=checkpoint or (engine_plan.checkpoint if engine_plan else None),
        tokenizer_checkpoint=tokenizer,
        no_chat_template=no_template,
        expect=svc.expect.model_dump(),
        memory_gib=svc.memory_gib,
        health_path=stack.health_path,
        health_timeout_s=timeout,
        cache_dir=launch.cache_dir,
        identity=identity,
        serves=launch.serves,
        config_files=launch.config_files,
        after_unit=after_unit,
        followers=tuple(service_unit(f) for f in followers),
    )
