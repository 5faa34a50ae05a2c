"""Preflight: can this host take its plan? Decided from one probe snapshot, before anything changes. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from ..desired.compat import NGC_KEY_ENV, NGC_REGISTRY, Gpu, Support, known_bad_fix, trtllm_support
from ..desired.names import UNIT_PREFIX
from ..on_host.probe import DiskFact, DockerFact, Snapshot
from ..plan.host_plan import HostPlan
from ..plan.quoting import env_file_problem
from ..stacks import trtllm
from .found import Found
from .observation import Observation

GIB_PER_GB = 1e9 / 2**30


def preflight(observation: Observation, environ: Mapping[str, str], reserved_gib: float) -> list[str]:
    """Every reason this host must not be changed; empty when it may."""
    plan, snapshot, found = observation.plan, observation.snapshot, observation.found
    secrets_needed = plan.secrets
    failures: list[str] = []
    gpu_fact = snapshot.gpu
    gpu: Gpu | None = None
    if gpu_fact is None:
        failures.append("no GPU answers nvidia-smi on this host (NVIDIA driver missing or not loaded)")
    else:
        gpu = Gpu(gpu_fact.name, gpu_fact.compute_capability)
        if plan.gpu and gpu.name != plan.gpu:
            failures.append(f"the state declares {plan.gpu} but this host has {gpu.name} ({gpu.compute_capability})")

    probed = found.trtllm_versions
    if gpu is not None:
        for image in plan.images:
            version = probed.get(image.local) or image.trtllm_version
            if version is None:
                continue
            if trtllm_support(version, gpu).support is Support.KNOWN_BAD:
                failures.append(known_bad_fix(image.ref, version, gpu))
    for engine in plan.engines:  # what the image holds, when the host has read it, wins over its tag
        version = probed.get(engine.image_ref) or engine.trtllm_version
        if trtllm.has_trtllm_build(version) is False:
            failures.append(trtllm.no_trtllm_build_fix(engine.image_ref, version, engine.checkpoint))

    docker = snapshot.docker or DockerFact(present=False)
    if not docker.present:
        failures.append("docker is not installed")
    elif not docker.running:
        failures.append(f"docker is not running: {docker.error}")
    elif not docker.nvidia_runtime:
        failures.append("the NVIDIA container runtime is missing (nvidia-container-toolkit): `--gpus all` would fail")

    failures += _disk(plan, snapshot, found)
    failures += _memory(plan, snapshot, reserved_gib)
    failures += _ports(plan, snapshot)
    failures += _chat_templates(plan, snapshot)
    for image in plan.images:
        if image.ngc_login and snapshot.images.get(image.local) is None and NGC_KEY_ENV not in environ:
            failures.append(
                f"image {image.ref} must be pulled from {NGC_REGISTRY}, which needs an NGC API key: "
                f"set {NGC_KEY_ENV} on the machine running the deploy"
            )
    for svc in plan.services:
        if svc.kind == "nim" and NGC_KEY_ENV not in svc.secrets:
            failures.append(
                f"NIM service {svc.name} has no {NGC_KEY_ENV} among its secrets: the container cannot "
                f"download its model profile without it; add secrets: [{NGC_KEY_ENV}]"
            )
    unusable = sorted({name for name in secrets_needed if name in environ and env_file_problem(environ[name])})
    if unusable:  # named, never shown
        failures.append(
            f"secrets that cannot go into an env file (a newline or NUL in the value): {', '.join(unusable)}"
        )
    if plan.env_files and found.secrets_dir_refusal:
        failures.append(found.secrets_dir_refusal)
    missing = sorted({name for name in secrets_needed if name not in environ})
    if missing:
        failures.append(f"secrets not set in the environment of the machine running the deploy: {', '.join(missing)}")
    return failures


# A pull needs its download and the layers it unpacks side by side until each layer is in: twice the download
# is the honest lower bound when the unpacked size is not known before pulling (the registry says only the first).
PULL_SPACE = 2.0


def _disk(plan: HostPlan, snapshot: Snapshot, found: Found) -> list[str]:
    """Room for what this run downloads and builds: checkpoints and engines on paths.root's file system, images
    still to pull (their size from the registry manifest) on docker's — one budget when they are the same file
    system, as on a Spark's single disk. Old builds are named: prune frees them."""
    root_fs, docker_fs = snapshot.disk, snapshot.docker_disk
    images_fs = root_fs if docker_fs is None or (root_fs and docker_fs.same_file_system(root_fs)) else docker_fs
    needs: dict[DiskFact, dict[str, float]] = {}
    for c in plan.checkpoints:
        if root_fs and c.size_gb and not found.checkpoints[c.name].ready:
            needs.setdefault(root_fs, {})[f"checkpoint {c.name}"] = c.size_gb
    for e in plan.engines:
        if root_fs and e.size_gb and not found.engines[e.name].ready:
            needs.setdefault(root_fs, {})[f"engine {e.name}"] = 2 * e.size_gb
    for image in plan.images:
        download = snapshot.download_sizes.get(image.ref)
        size = download.bytes if download else None
        if images_fs and size and snapshot.images.get(image.local) is None:
            needs.setdefault(images_fs, {})[f"image {image.name} ({_size(size / 1e9)} download)"] = (
                PULL_SPACE * size / 1e9
            )
    failures = []
    for fs, items in needs.items():
        need = sum(items.values())
        if need > fs.free_gb:
            what = ", ".join(f"{name} {_size(gb)}" for name, gb in items.items())
            failures.append(
                f"{fs.path} has {_size(fs.free_gb)} free; this run needs about {_size(need)} there "
                f"({what})" + _old_builds(plan, snapshot)
            )
    return failures


def _old_builds(plan: HostPlan, snapshot: Snapshot) -> str:
    """'; old engine builds hold N GB (spark-state prune frees them)' when there are any."""
    wanted = {e.fingerprint for e in plan.engines}
    held = 0
    for builds in snapshot.engine_builds.values():
        for build in builds:
            if build.fingerprint not in wanted:
                held += sum(build.files.values())
    return f"; old engine builds hold {_size(held / 1e9)} (`spark-state prune` frees them)" if held else ""


def _size(gb: float) -> str:
    """34.6 GB, or 83 MB below a gigabyte (a small disk or image would read '0.1 GB')."""
    return f"{gb:.1f} GB" if gb >= 1 else f"{gb * 1000:.0f} MB"


def _memory(plan: HostPlan, snapshot: Snapshot, reserved_gib: float) -> list[str]:
    """The services fit the host's unified memory, and those to start fit what is free now: something other
    than our services may already hold memory (another process, a service started by hand)."""
    memory = snapshot.memory
    if not memory:
        return []
    usable = memory.total_gib - reserved_gib
    if plan.budget.memory_gib > usable:
        return [
            f"services would claim about {plan.budget.memory_gib:.1f} GiB of unified memory; this host has "
            f"{memory.total_gib:.1f} GiB ({reserved_gib:g} reserved)"
        ]
    running = {name for name, c in snapshot.containers.items() if c.state == "running"}
    to_start = {
        s.name: plan.budget.memory_items[s.name]
        for s in plan.services
        if s.container_name not in running and s.name in plan.budget.memory_items
    }
    need = sum(to_start.values())
    if to_start and need > memory.available_gib:
        return [
            f"services to start ({', '.join(to_start)}) need about {need:.1f} GiB of unified memory; "
            f"{memory.available_gib:.1f} GiB is available now: something else holds "
            f"{memory.total_gib - memory.available_gib:.1f} GiB"
        ]
    return []


def _ports(plan: HostPlan, snapshot: Snapshot) -> list[str]:
    listening = snapshot.listening
    ours: set[int] = set()
    for name, container in snapshot.containers.items():
        if name.startswith(UNIT_PREFIX) and container.state == "running":
            ours.update(container.published)
    return [
        f"port {s.port} (service {s.name}) is already used by something spark-state does not manage"
        for s in plan.services
        if s.port in listening and s.port not in ours
    ]


def _chat_templates(plan: HostPlan, snapshot: Snapshot) -> list[str]:
    templates = snapshot.chat_templates
    by_name = {c.name: c for c in plan.checkpoints}
    failures = []
    for s in plan.services:
        if s.tokenizer_checkpoint is None:
            continue
        ckpt = by_name[s.tokenizer_checkpoint]
        if templates.get(ckpt.dir) is False:
            failures.append(s.no_chat_template)
    return failures
