"""The pure per-host plan: DesiredState → HostPlan (plain data). No SSH, no pyinfra.

What a host should end up with, gathered here from one module per concern: images (images.py), checkpoint
downloads (checkpoints.py), engine builds and their fingerprints (engines.py), services and their systemd units
(units.py), daemons from packages (system_services.py), disk and unified-memory budgets (budgets.py); the
host's own paths are HostPlan's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..desired.compat import KNOWN_GPUS
from ..desired.downloads import host_needs
from ..desired.model import DesiredState, host_gpu, host_services
from ..desired.names import checkpoint_env_file, service_env_file
from ..errors import MemoryBudgetError, UnknownHostError
from ..stacks import STACKS
from .budgets import Budget, memory_overflow, plan_budget
from .checkpoints import CheckpointPlan, plan_checkpoint
from .engines import EnginePlan, converter_path, plan_engine
from .images import ImagePlan, plan_image
from .system_services import BenchMetricsPlan, SystemServicePlan, plan_bench_metrics, plan_system_services
from .units import ServicePlan, plan_service


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
    system_services: tuple[SystemServicePlan, ...] = ()  # daemons from packages (earlyoom, monitoring)
    bench_metrics: BenchMetricsPlan | None = None  # where its bench results go for Prometheus (`monitoring:`)
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

    @property
    def host_facts_dir(self) -> str:
        """The host's GPU and versions as the probe last read them, kept until a reboot or a package change."""
        return f"{self.root}/cache/host-facts"

    def checkpoint_env_file(self, ckpt: CheckpointPlan) -> str | None:
        return checkpoint_env_file(self.secrets_dir, ckpt.name) if ckpt.secrets else None

    @property
    def env_files(self) -> tuple[str, ...]:
        """Every env file this host gets: its services' and its checkpoint downloads' (those with secrets)."""
        services = tuple(s.env_file for s in self.services if s.env_file)
        return services + tuple(env for c in self.checkpoints if (env := self.checkpoint_env_file(c)))

    @property
    def config_files(self) -> dict[str, str]:
        """Files the services' containers read (their LLM API options), path → text."""
        return {path: text for s in self.services for path, text in s.config_files.items()}

    @property
    def secrets(self) -> list[str]:
        """The names of every secret this host's services and checkpoint downloads read (may repeat)."""
        return [name for s in self.services for name in s.secrets] + [n for c in self.checkpoints for n in c.secrets]

    def service_env_file(self, service: str) -> str:
        """The 0600 env file of a service (also of one the state no longer declares, to remove it)."""
        return service_env_file(self.secrets_dir, service)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_fleet(state: DesiredState, only_host: str | None = None) -> list[HostPlan]:
    if only_host is not None and only_host not in state.hosts:
        raise UnknownHostError(only_host, list(state.hosts))
    return [plan_host(state, h) for h in state.hosts if only_host in (None, h)]


def plan_host(
    state: DesiredState,
    host_name: str,
    probed: Mapping[str, str] | None = None,
    addresses: Mapping[str, str] | None = None,
) -> HostPlan:
    """The plan for one host. `probed` maps image refs to the TensorRT-LLM version found inside the image on
    the host, which wins over what the tag suggests (and so feeds the engine fingerprints). `addresses`: where
    each host is reached (the inventory's), for what this host's Prometheus scrapes; the state's when not given. Each image, then each
    checkpoint, engine and service is planned once; what comes later reads what came before (an image's local
    name, a checkpoint's directory, an engine's fingerprint) instead of working it out again."""
    if host_name not in state.hosts:
        raise UnknownHostError(host_name, list(state.hosts))
    host = state.hosts[host_name]
    gpu_name = host_gpu(state, host_name)
    gpu = KNOWN_GPUS.get(gpu_name) if gpu_name else None
    # Services that claim a fraction of the free memory start last, in the state's order (units ordered so):
    # what each gets is then what the budget below reckons, whatever order a deploy or a boot starts them in.
    placed = [s for s in host_services(state, host_name) if s in state.services]
    services = sorted(placed, key=lambda s: STACKS[state.services[s].stack].takes_free_memory)
    needs = host_needs(state, services)

    probed = probed or {}
    images = {n: plan_image(state, n, gpu, probed) for n in needs.images}
    checkpoints = {
        n: plan_checkpoint(state, n, images[fetcher], n not in needs.models) for n, fetcher in needs.checkpoints.items()
    }
    engines = {n: plan_engine(state, n, images, checkpoints) for n in needs.engines}
    chain = [s for s in services if STACKS[state.services[s].stack].takes_free_memory]
    service_plans = tuple(
        plan_service(
            state,
            s,
            images,
            checkpoints,
            engines,
            needs.tokenizers[s],
            after=chain[chain.index(s) - 1] if s in chain[1:] else None,
            followers=tuple(chain[chain.index(s) + 1 :]) if s in chain else (),
        )
        for s in services
    )

    budget = plan_budget(
        state,
        gpu.unified_memory_gib if gpu else None,
        tuple(images.values()),
        tuple(checkpoints.values()),
        tuple(engines.values()),
        service_plans,
    )
    if overflow := memory_overflow(host_name, budget):
        raise MemoryBudgetError(overflow)
    warnings: list[str] = []
    warnings += [
        f"image {i.ref}: {i.reason}" for i in images.values() if i.support not in ("verified",) and i.trtllm_version
    ]
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
        images=tuple(images.values()),
        checkpoints=tuple(checkpoints.values()),
        engines=tuple(engines.values()),
        services=service_plans,
        budget=budget,
        system_services=plan_system_services(state, host_name, addresses),
        bench_metrics=plan_bench_metrics(state, host_name),
        warnings=tuple(warnings),
    )
