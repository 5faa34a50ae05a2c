"""Services in a host plan: the systemd unit each runs as (`docker run ... trtllm-serve serve ...` or a NIM), its
ports, readiness path and health timeout, and the identity that tells which unit started a container."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..desired.model import DesiredState, EngineService, NimService, PytorchService, VllmService, service_kind
from ..desired.names import service_container, service_env_file, service_options_file, service_unit
from ..stacks import vllm
from ..stacks.trtllm import OPTIONS_IN_CONTAINER
from . import quoting
from .checkpoints import checkpoint_dir, tokenizer_checkpoint
from .engines import EnginePlan
from .images import local_ref
from .templates import render

IDENTITY_LABEL = "spark-state.identity"
SERVES_LINE = "# Serves: "  # a unit's second line: what it runs, read back by rollback and drift
NIM_CACHE = "/opt/nim/.cache"  # where a NIM keeps downloaded model profiles (NIM docs: mount a host dir here)
NIM_UID = 1000  # NIM containers run as this user: the cache must be writable by it
# A NIM's first start downloads its model profile into the cache; vLLM profiles memory, captures CUDA graphs and
# may compile before it answers.
HEALTH_TIMEOUT_S = {"nim": 1800, "vllm": 1800}
DEFAULT_HEALTH_TIMEOUT_S = 600


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


def options_text(options: dict[str, Any]) -> str:
    """LLM API options as the YAML trtllm-serve reads (JSON is YAML: one spelling, keys sorted)."""
    return json.dumps(options, indent=2, sort_keys=True) + "\n"


def unit_serves(unit_text: str | None) -> str | None:
    """What a unit file says it serves (its `# Serves:` line); None for a unit written before that line."""
    for line in (unit_text or "").splitlines()[:5]:
        if line.startswith(SERVES_LINE):
            return line[len(SERVES_LINE) :].strip()
    return None


def _serve_flags(svc: EngineService | PytorchService, defaults: Any) -> list[str]:
    flags = []
    for flag in ("max_batch_size", "max_num_tokens", "max_seq_len"):
        value = getattr(svc, flag) if getattr(svc, flag) is not None else getattr(defaults, flag, None)
        if value is not None:
            flags += [f"--{flag}", str(value)]
    return flags + ["--kv_cache_free_gpu_memory_fraction", f"{svc.kv_cache_free_gpu_memory_fraction:g}"]


def plan_service(state: DesiredState, name: str, engines: dict[str, EnginePlan]) -> ServicePlan:
    svc = state.services[name]
    docker = state.paths.docker
    container = service_container(name)
    env_file = service_env_file(state.paths.secrets, name) if (svc.env or svc.secrets) else None
    run: list[str] = [docker, "run", "--rm", "--name", container, "--gpus", "all"]
    engine_plan = engines.get(svc.engine) if isinstance(svc, EngineService) else None
    tokenizer = tokenizer_checkpoint(state, name)
    checkpoint: str | None = None
    config_files: dict[str, str] = {}
    options_flag: list[str] = []

    cache_dir = None
    if isinstance(svc, NimService):
        image_ref = local_ref(state.images[svc.container].ref)
        cache_dir = f"{state.paths.root}/nim-cache/{name}"
        run += [f"--shm-size={svc.shm_size}", "-p", f"{svc.port}:{svc.container_port}"]
        run += ["-v", f"{cache_dir}:{NIM_CACHE}"]
        if env_file:
            run += ["--env-file", env_file]
        run += [image_ref, *svc.extra_args]
        description = f"NIM {image_ref} on :{svc.port}"
        serves = f"NIM {image_ref}"
    elif isinstance(svc, VllmService):
        checkpoint = svc.checkpoint
        image_ref = local_ref(state.images[svc.image].ref)
        run += [f"--shm-size={svc.shm_size_gb}g", "-p", f"{svc.port}:{svc.port}"]
        run += ["-v", f"{checkpoint_dir(state, svc.checkpoint)}:{vllm.MODEL_IN_CONTAINER}:ro"]
        if svc.tokenizer:
            run += ["-v", f"{checkpoint_dir(state, svc.tokenizer)}:{vllm.TOKENIZER_IN_CONTAINER}:ro"]
        run += ["-e", "HF_HUB_OFFLINE=1"]  # the checkpoint is on disk: no hub look-ups at start
        if env_file:
            run += ["--env-file", env_file]
        run += [image_ref, *vllm.serve_argv(svc, svc.port)]
        description = f"vllm serve checkpoint {svc.checkpoint} on :{svc.port}"
        ckpt = state.checkpoints[svc.checkpoint]
        serves = f"checkpoint {ckpt.repo}@{ckpt.revision} (vllm) on {image_ref}"
    else:
        tokenizer_dir = checkpoint_dir(state, tokenizer)  # type: ignore[arg-type]
        run += ["-p", f"{svc.port}:{svc.port}"]
        if isinstance(svc, EngineService):
            assert engine_plan is not None
            image_ref = local_ref(state.images[svc.image or state.engines[svc.engine].image].ref)
            run += ["-v", f"{engine_plan.dir}/engine:/engine:ro", "-v", f"{tokenizer_dir}:/tokenizer:ro"]
            model_arg, backend, defaults = "/engine", "tensorrt", state.engines[svc.engine]
            description = f"trtllm-serve engine {svc.engine} on :{svc.port}"
            serves = f"engine {svc.engine} {engine_plan.fingerprint[:16]} on {image_ref}"
        else:
            checkpoint = svc.checkpoint
            image_ref = local_ref(state.images[svc.image].ref)
            run += ["-v", f"{checkpoint_dir(state, svc.checkpoint)}:/model:ro", "-v", f"{tokenizer_dir}:/tokenizer:ro"]
            model_arg, backend, defaults = "/model", "pytorch", None
            description = f"trtllm-serve checkpoint {svc.checkpoint} (pytorch) on :{svc.port}"
            ckpt = state.checkpoints[svc.checkpoint]
            serves = f"checkpoint {ckpt.repo}@{ckpt.revision} (pytorch) on {image_ref}"
            if svc.llm_api_options:
                text = options_text(svc.llm_api_options)
                path = service_options_file(state.paths.root, name, text)
                config_files[path] = text
                run += ["-v", f"{path}:{OPTIONS_IN_CONTAINER}:ro"]
                options_flag = ["--extra_llm_api_options", OPTIONS_IN_CONTAINER]
        if env_file:
            run += ["--env-file", env_file]
        run += [image_ref, "trtllm-serve", "serve", model_arg, "--tokenizer", "/tokenizer", "--backend", backend]
        run += ["--host", "0.0.0.0", "--port", str(svc.port), *_serve_flags(svc, defaults), *options_flag]
        run += svc.extra_args

    unit_name = service_unit(name)

    def unit(argv: list[str]) -> str:
        return render(
            "service.unit.j2",
            service={"name": name, "description": description, "serves": serves},
            exec_rm=quoting.systemd_join([docker, "rm", "-f", container]),
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
        kind=service_kind(svc),
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
        expect=svc.expect.model_dump(),
        memory_gib=svc.memory_gib,
        health_path="/v1/health/ready" if isinstance(svc, NimService) else vllm.HEALTH_PATH,
        health_timeout_s=svc.health_timeout_s or HEALTH_TIMEOUT_S.get(service_kind(svc), DEFAULT_HEALTH_TIMEOUT_S),
        cache_dir=cache_dir,
        identity=identity,
        serves=serves,
        config_files=config_files,
    )
