"""The pure per-host plan: DesiredState → HostPlan (plain data). No SSH, no pyinfra.

Everything a host should end up with is computed here: directories, the exact convert/build/serve command
lines, engine fingerprints, systemd unit texts, ports, and disk and unified-memory budgets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..desired.checks import image_trtllm_version
from ..desired.compat import KNOWN_GPUS, trtllm_support
from ..desired.model import (
    DesiredState,
    EngineService,
    NimService,
    PytorchService,
    host_gpu,
    host_services,
    service_kind,
)
from ..desired.names import (
    build_container,
    checkpoint_env_file,
    convert_container,
    service_container,
    service_env_file,
    service_unit,
)
from ..errors import UnknownHostError
from ..on_host import program
from . import quoting
from .templates import render

PLAN_FORMAT = 1
# A built rank0.engine is ~95% of the ModelOpt checkpoint it came from (FP8 8.6/9.08 GB, NVFP4 5.7/6.03 GB).
ENGINE_TO_CHECKPOINT_SIZE = 0.95
GIB_PER_GB = 1e9 / 2**30
TOKENIZER_GB = 0.02  # tokenizer.json, its config and the chat template of a Llama 3 checkpoint: ≈17 MB
# The checkpoint converter spark-state ships (on_host/convert_checkpoint.py, TensorRT-LLM's library API), mounted
# into the build image; its hash is part of every engine fingerprint that uses it, so a new converter rebuilds.
CONVERTER_NAME = "convert_checkpoint.py"
CONVERTER_IN_IMAGE = f"/opt/spark-state/{CONVERTER_NAME}"
CONVERTER_TEXT = program(CONVERTER_NAME)
CONVERTER_ID = f"spark-state {CONVERTER_NAME} " + hashlib.sha256(CONVERTER_TEXT.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ImagePlan:
    name: str
    ref: str  # as the state writes it: what is pulled (a pinned `name:tag@sha256:...` pulls exactly that digest)
    trtllm_version: str | None
    support: str
    reason: str
    local: str = ""  # what units, builds and the probe use on the host: `name:tag` (local_ref)
    digest: str | None = None  # the digest the state pins, checked against what `local` holds


def local_ref(ref: str) -> str:
    """The name an image is used by on a host. A pinned `name:tag@sha256:...` is pulled by its digest and tagged
    `name:tag`, so a pinned and an unpinned state serving the same bits write the same units and engines (what
    `name:tag` holds is checked against the digest). An untagged `name@sha256:...` is used as it is."""
    name, _, digest = ref.partition("@")
    return name if digest and ":" in name.rsplit("/", 1)[-1] else ref


def ref_digest(ref: str) -> str | None:
    """The digest a reference pins (`...@sha256:HEX`), or None."""
    return ref.partition("@")[2] or None


@dataclass(frozen=True)
class CheckpointPlan:
    name: str
    repo: str
    revision: str
    dir: str
    secrets: tuple[str, ...]
    size_gb: float | None
    fetch_image_ref: str  # downloads run inside this image (it ships huggingface_hub)
    tokenizer_only: bool = False  # this host only takes its tokenizer (tokenizer_from): those files, not weights


@dataclass(frozen=True)
class EnginePlan:
    name: str
    checkpoint: str
    image: str
    image_ref: str
    trtllm_version: str | None
    quantization: str
    fingerprint: str
    inputs: dict[str, Any]
    dir: str  # final, fingerprinted directory; holds engine/ once the build succeeded
    build_dir: str  # where convert and build write; renamed to `dir` only after success
    convert_argv: tuple[str, ...]
    build_argv: tuple[str, ...]
    convert_command: str
    build_command: str
    size_gb: float | None


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


@dataclass(frozen=True)
class Budget:
    disk_gb: float
    disk_items: dict[str, float]
    disk_unknown: tuple[str, ...]
    memory_total_gib: float | None
    memory_reserved_gib: float
    memory_gib: float
    memory_items: dict[str, float]
    memory_unknown: tuple[str, ...]


@dataclass(frozen=True)
class HostPlan:
    host: str
    address: str
    ssh_user: str
    ssh_port: int
    root: str
    units_dir: str
    secrets_dir: str
    docker: str
    gpu: str | None
    compute_capability: str | None
    images: tuple[ImagePlan, ...]
    checkpoints: tuple[CheckpointPlan, ...]
    engines: tuple[EnginePlan, ...]
    services: tuple[ServicePlan, ...]
    budget: Budget
    warnings: tuple[str, ...] = field(default=())

    @property
    def baseline_path(self) -> str:
        """The host's baseline (spark_state.observe.baseline), written after a deploy whose bench passed."""
        return f"{self.root}/baseline.json"

    @property
    def rollback_dir(self) -> str:
        """0700: the unit (and env file) each service ran before its last change, and markers of rollbacks."""
        return f"{self.root}/rollback"

    def rollback_unit(self, svc: ServicePlan) -> str:
        return f"{self.rollback_dir}/{svc.unit_name}"

    def rollback_env_file(self, svc: ServicePlan) -> str:
        return f"{self.rollback_dir}/{svc.name}.env"

    def rollback_marker(self, svc: ServicePlan) -> str:
        """Written when a deploy rolled the service back; removed when a deploy of it passes."""
        return f"{self.rollback_dir}/{svc.unit_name}.json"

    @property
    def lib_dir(self) -> str:
        """The programs spark-state puts on the host (spark_state/on_host/), each uploaded with its first use."""
        return f"{self.root}/lib"

    @property
    def helper_path(self) -> str:
        return f"{self.lib_dir}/spark_host.py"

    @property
    def fetch_script_path(self) -> str:
        return f"{self.lib_dir}/fetch_checkpoint.py"

    @property
    def converter_path(self) -> str:
        return converter_path(self.root)

    @property
    def trtllm_versions_dir(self) -> str:
        """The TensorRT-LLM version found inside each image, one file per image id (read by the probe)."""
        return f"{self.root}/cache/trtllm-versions"

    def checkpoint_env_file(self, ckpt: CheckpointPlan) -> str | None:
        return checkpoint_env_file(self.secrets_dir, ckpt.name) if ckpt.secrets else None

    def service_env_file(self, service: str) -> str:
        """The 0600 env file of a service (also of one the state no longer declares, to remove it)."""
        return service_env_file(self.secrets_dir, service)

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, **asdict(self)}


def converter_path(root: str) -> str:
    return f"{root}/lib/{CONVERTER_NAME}"


def plan_fleet(state: DesiredState, only_host: str | None = None) -> list[HostPlan]:
    if only_host is not None and only_host not in state.hosts:
        raise UnknownHostError(only_host, list(state.hosts))
    return [plan_host(state, h) for h in state.hosts if only_host in (None, h)]


def plan_host(state: DesiredState, host_name: str, probed: Mapping[str, str] | None = None) -> HostPlan:
    """The plan for one host. `probed` maps image refs to the TensorRT-LLM version found inside the image on
    the host, which wins over what the tag suggests (and so feeds the engine fingerprints)."""
    if host_name not in state.hosts:
        raise UnknownHostError(host_name, list(state.hosts))
    host = state.hosts[host_name]
    gpu_name = host_gpu(state, host_name)
    gpu = KNOWN_GPUS.get(gpu_name) if gpu_name else None
    services = [s for s in host_services(state, host_name) if s in state.services]

    engine_names = _ordered(svc.engine for s in services if isinstance(svc := state.services[s], EngineService))
    checkpoint_names = _ordered(_checkpoints_needed(state, services, engine_names))
    image_names = _ordered(_images_needed(state, services, engine_names))

    probed = probed or {}
    images = tuple(_plan_image(state, n, gpu, probed) for n in image_names)
    models = set(_models_needed(state, services, engine_names))
    checkpoints = tuple(
        _plan_checkpoint(state, n, _fetch_image(state, n, services, engine_names), n not in models)
        for n in checkpoint_names
    )
    engines = tuple(plan_engine(state, n, probed) for n in engine_names)
    engines_by_name = {e.name: e for e in engines}
    service_plans = tuple(_plan_service(state, s, engines_by_name) for s in services)

    budget = _budget(state, gpu.unified_memory_gib if gpu else None, images, checkpoints, engines, service_plans)
    warnings = list(_budget_warnings(host_name, budget))
    warnings += [f"image {i.ref}: {i.reason}" for i in images if i.support not in ("verified",) and i.trtllm_version]
    return HostPlan(
        host=host_name,
        address=host.address,
        ssh_user=host.ssh_user,
        ssh_port=host.ssh_port,
        root=state.paths.root,
        units_dir=state.paths.units,
        secrets_dir=state.paths.secrets,
        docker=state.paths.docker,
        gpu=gpu.name if gpu else None,
        compute_capability=gpu.compute_capability if gpu else None,
        images=images,
        checkpoints=checkpoints,
        engines=engines,
        services=service_plans,
        budget=budget,
        warnings=tuple(warnings),
    )


def _ordered(names: Any) -> list[str]:
    out: list[str] = []
    for n in names:
        if n is not None and n not in out:
            out.append(n)
    return out


def _tokenizer_checkpoint(state: DesiredState, service_name: str) -> str | None:
    """The checkpoint whose tokenizer a trtllm-serve service loads: explicit, else the model's tokenizer_from,
    else the model's own."""
    svc = state.services[service_name]
    if isinstance(svc, NimService):
        return None
    if svc.tokenizer:
        return svc.tokenizer
    model = state.engines[svc.engine].checkpoint if isinstance(svc, EngineService) else svc.checkpoint
    return state.checkpoints[model].tokenizer_from or model


def _checkpoints_needed(state: DesiredState, services: list[str], engines: list[str]) -> list[str]:
    needed = [state.engines[e].checkpoint for e in engines]
    for s in services:
        svc = state.services[s]
        if isinstance(svc, PytorchService):
            needed.append(svc.checkpoint)
        needed.append(_tokenizer_checkpoint(state, s))  # type: ignore[arg-type]
    return [n for n in needed if n is not None]


def _models_needed(state: DesiredState, services: list[str], engines: list[str]) -> list[str]:
    """Checkpoints whose weights this host needs (an engine builds from it, or a PyTorch service serves it)."""
    return [state.engines[e].checkpoint for e in engines] + [
        svc.checkpoint for s in services if isinstance(svc := state.services[s], PytorchService)
    ]


def _images_needed(state: DesiredState, services: list[str], engines: list[str]) -> list[str]:
    needed: list[str | None] = [state.engines[e].image for e in engines]
    for s in services:
        svc = state.services[s]
        needed.append(svc.container if isinstance(svc, NimService) else svc.image)
    return [n for n in needed if n is not None]


def _plan_image(state: DesiredState, name: str, gpu: Any, probed: Mapping[str, str]) -> ImagePlan:
    ref = state.images[name].ref
    local, digest = local_ref(ref), ref_digest(ref)
    version = probed.get(local) or image_trtllm_version(state, name)
    if gpu is None or (version is None and not _is_trtllm_image(state, name)):
        return ImagePlan(name, ref, version, "n/a", "", local, digest)
    verdict = trtllm_support(version, gpu)
    return ImagePlan(name, ref, version, verdict.support.value, verdict.reason, local, digest)


def _is_trtllm_image(state: DesiredState, name: str) -> bool:
    return any(e.image == name for e in state.engines.values()) or any(
        isinstance(s, PytorchService) and s.image == name for s in state.services.values()
    )


def checkpoint_dir(state: DesiredState, name: str) -> str:
    revision = state.checkpoints[name].revision.replace("/", "--")
    return f"{state.paths.root}/checkpoints/{name}/{revision}"


def _plan_checkpoint(state: DesiredState, name: str, fetch_image: str, tokenizer_only: bool = False) -> CheckpointPlan:
    c = state.checkpoints[name]
    return CheckpointPlan(
        name,
        c.repo,
        c.revision,
        checkpoint_dir(state, name),
        tuple(c.secrets),
        None if tokenizer_only else c.size_gb,
        local_ref(state.images[fetch_image].ref),
        tokenizer_only,
    )


def _fetch_image(state: DesiredState, checkpoint: str, services: list[str], engines: list[str]) -> str:
    """A TensorRT-LLM image on this host that can download `checkpoint`: the image of whatever uses it."""
    for name in engines:
        if state.engines[name].checkpoint == checkpoint:
            return state.engines[name].image
    for s in services:
        svc = state.services[s]
        if isinstance(svc, NimService):
            continue
        if (isinstance(svc, PytorchService) and svc.checkpoint == checkpoint) or _tokenizer_checkpoint(
            state, s
        ) == checkpoint:
            return svc.image or state.engines[svc.engine].image  # type: ignore[union-attr]
    raise AssertionError(f"checkpoint {checkpoint} is planned but nothing uses it")


def engine_build_flags(state: DesiredState, name: str) -> list[str]:
    """trtllm-build flags (without paths), exactly as the field report passes them."""
    e = state.engines[name]
    fp8_fmha = e.use_fp8_context_fmha if e.use_fp8_context_fmha is not None else e.quantization == "fp8"
    flags = [
        "--gemm_plugin",
        e.gemm_plugin or e.quantization,
        "--max_batch_size",
        str(e.max_batch_size),
        "--max_input_len",
        str(e.max_input_len),
        "--max_seq_len",
        str(e.max_seq_len),
        "--max_num_tokens",
        str(e.max_num_tokens),
    ]
    if e.use_paged_context_fmha:
        flags += ["--use_paged_context_fmha", "enable"]
    if fp8_fmha:
        flags += ["--use_fp8_context_fmha", "enable"]
    return flags + list(e.build_args)


def plan_engine(state: DesiredState, name: str, probed: Mapping[str, str] | None = None) -> EnginePlan:
    e = state.engines[name]
    ckpt = state.checkpoints[e.checkpoint]
    image_ref = local_ref(state.images[e.image].ref)
    version = (probed or {}).get(image_ref) or image_trtllm_version(state, e.image)
    build_flags = engine_build_flags(state, name)
    convert_flags = ["--dtype", e.dtype, *e.convert_args]
    inputs = {
        "format": PLAN_FORMAT,
        "image": image_ref,
        "trtllm_version": version,
        "checkpoint": {"repo": ckpt.repo, "revision": ckpt.revision},
        "quantization": e.quantization,
        "convert": {"script": e.convert_script or CONVERTER_ID, "flags": convert_flags},
        "build": build_flags,
    }
    fingerprint = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    final_dir = f"{state.paths.root}/engines/{name}/{fingerprint[:16]}"
    build_dir = f"{final_dir}.partial"
    docker = state.paths.docker
    shipped = ("-v", f"{converter_path(state.paths.root)}:{CONVERTER_IN_IMAGE}:ro") if not e.convert_script else ()
    convert_argv = (
        docker,
        "run",
        "--rm",
        "--gpus",
        "all",
        "--name",
        convert_container(name),
        "-v",
        f"{checkpoint_dir(state, e.checkpoint)}:/ckpt:ro",
        "-v",
        f"{build_dir}:/work",
        *shipped,
        image_ref,
        "python3",
        e.convert_script or CONVERTER_IN_IMAGE,
        "--model_dir",
        "/ckpt",
        "--output_dir",
        "/work/trtllm-ckpt",
        *convert_flags,
    )
    build_argv = (
        docker,
        "run",
        "--rm",
        "--gpus",
        "all",
        "--name",
        build_container(name),
        "-v",
        f"{build_dir}:/work",
        image_ref,
        "trtllm-build",
        "--checkpoint_dir",
        "/work/trtllm-ckpt",
        "--output_dir",
        "/work/engine",
        *build_flags,
    )
    size = ckpt.size_gb * ENGINE_TO_CHECKPOINT_SIZE if ckpt.size_gb else None
    return EnginePlan(
        name=name,
        checkpoint=e.checkpoint,
        image=e.image,
        image_ref=image_ref,
        trtllm_version=version,
        quantization=e.quantization,
        fingerprint=fingerprint,
        inputs=inputs,
        dir=final_dir,
        build_dir=build_dir,
        convert_argv=convert_argv,
        build_argv=build_argv,
        convert_command=quoting.sh_join(convert_argv),
        build_command=quoting.sh_join(build_argv),
        size_gb=size,
    )


def _serve_flags(svc: EngineService | PytorchService, defaults: Any) -> list[str]:
    flags = []
    for flag in ("max_batch_size", "max_num_tokens", "max_seq_len"):
        value = getattr(svc, flag) if getattr(svc, flag) is not None else getattr(defaults, flag, None)
        if value is not None:
            flags += [f"--{flag}", str(value)]
    return flags + ["--kv_cache_free_gpu_memory_fraction", f"{svc.kv_cache_free_gpu_memory_fraction:g}"]


IDENTITY_LABEL = "spark-state.identity"
SERVES_LINE = "# Serves: "  # a unit's second line: what it runs, read back by rollback and drift


def unit_serves(unit_text: str | None) -> str | None:
    """What a unit file says it serves (its `# Serves:` line); None for a unit written before that line."""
    for line in (unit_text or "").splitlines()[:5]:
        if line.startswith(SERVES_LINE):
            return line[len(SERVES_LINE) :].strip()
    return None


NIM_CACHE = "/opt/nim/.cache"  # where a NIM keeps downloaded model profiles (NIM docs: mount a host dir here)
NIM_UID = 1000  # NIM containers run as this user: the cache must be writable by it
HEALTH_TIMEOUT_S = {"nim": 1800}  # a NIM's first start downloads its model profile into the cache
DEFAULT_HEALTH_TIMEOUT_S = 600


def _plan_service(state: DesiredState, name: str, engines: dict[str, EnginePlan]) -> ServicePlan:
    svc = state.services[name]
    docker = state.paths.docker
    container = service_container(name)
    env_file = service_env_file(state.paths.secrets, name) if (svc.env or svc.secrets) else None
    run: list[str] = [docker, "run", "--rm", "--name", container, "--gpus", "all"]
    engine_plan = engines.get(svc.engine) if isinstance(svc, EngineService) else None
    tokenizer = _tokenizer_checkpoint(state, name)
    checkpoint: str | None = None

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
        if env_file:
            run += ["--env-file", env_file]
        run += [image_ref, "trtllm-serve", "serve", model_arg, "--tokenizer", "/tokenizer", "--backend", backend]
        run += ["--host", "0.0.0.0", "--port", str(svc.port), *_serve_flags(svc, defaults), *svc.extra_args]

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
        health_path="/v1/health/ready" if isinstance(svc, NimService) else "/health",
        health_timeout_s=svc.health_timeout_s or HEALTH_TIMEOUT_S.get(service_kind(svc), DEFAULT_HEALTH_TIMEOUT_S),
        cache_dir=cache_dir,
        identity=identity,
        serves=serves,
    )


def _budget(
    state: DesiredState,
    total_gib: float | None,
    images: tuple[ImagePlan, ...],
    checkpoints: tuple[CheckpointPlan, ...],
    engines: tuple[EnginePlan, ...],
    services: tuple[ServicePlan, ...],
) -> Budget:
    disk: dict[str, float] = {}
    disk_unknown: list[str] = []
    for i in images:
        size = state.images[i.name].size_gb
        (disk.__setitem__(f"image {i.name}", size) if size else disk_unknown.append(f"image {i.name}"))
    for c in checkpoints:
        if c.tokenizer_only:
            disk[f"tokenizer of {c.name}"] = TOKENIZER_GB
        elif c.size_gb:
            disk[f"checkpoint {c.name}"] = c.size_gb
        else:
            disk_unknown.append(f"checkpoint {c.name}")
    for e in engines:
        if e.size_gb:
            # The converted TensorRT-LLM checkpoint stays beside the engine, about as large.
            disk[f"engine {e.name}"] = round(2 * e.size_gb, 2)
        else:
            disk_unknown.append(f"engine {e.name}")

    memory: dict[str, float] = {}
    memory_unknown: list[str] = []
    free = (total_gib - state.fleet.reserved_memory_gib) if total_gib else None
    engine_gib = {e.name: e.size_gb * GIB_PER_GB for e in engines if e.size_gb}
    # Services start in order; each KV cache takes its fraction of what is free when it starts.
    for s in services:
        svc = state.services[s.name]
        if s.memory_gib is not None:
            need = s.memory_gib
        elif isinstance(svc, NimService):
            if svc.expect.resident_gib is None:
                memory_unknown.append(s.name)
                continue
            need = svc.expect.resident_gib
        else:
            weights = engine_gib.get(s.engine) if s.engine else _checkpoint_gib(state, svc.checkpoint)  # type: ignore[union-attr]
            if weights is None or free is None:
                memory_unknown.append(s.name)
                continue
            need = weights + svc.kv_cache_free_gpu_memory_fraction * max(free - weights, 0.0)
        memory[s.name] = round(need, 2)
        if free is not None:
            free -= need
    return Budget(
        disk_gb=round(sum(disk.values()), 2),
        disk_items=disk,
        disk_unknown=tuple(disk_unknown),
        memory_total_gib=total_gib,
        memory_reserved_gib=state.fleet.reserved_memory_gib,
        memory_gib=round(sum(memory.values()), 2),
        memory_items=memory,
        memory_unknown=tuple(memory_unknown),
    )


def _checkpoint_gib(state: DesiredState, name: str) -> float | None:
    size = state.checkpoints[name].size_gb
    return size * GIB_PER_GB if size else None


def _budget_warnings(host: str, budget: Budget) -> list[str]:
    if budget.memory_total_gib is None:
        return []
    usable = budget.memory_total_gib - budget.memory_reserved_gib
    if budget.memory_gib > usable:
        return [
            f"{host}: services would claim {budget.memory_gib:.1f} GiB of unified memory, more than the "
            f"{usable:.1f} GiB left after reserving {budget.memory_reserved_gib:g} GiB"
        ]
    return []
