"""Disk and unified-memory budgets of a host plan: what its checkpoints, engines and services need."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..desired.model import DesiredState, LlamaCppService, NimService, SglangService, VllmService
from ..stacks import sglang, vllm
from .checkpoints import CheckpointPlan
from .engines import EnginePlan
from .images import ImagePlan
from .units import ServicePlan

GIB_PER_GB = 1e9 / 2**30
TOKENIZER_GB = 0.02  # tokenizer.json, its config and the chat template of a Llama 3 checkpoint: ≈17 MB


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
    memory_basis: dict[str, str] = field(default_factory=dict)  # service → how its share was reckoned
    memory_short: tuple[str, ...] = ()  # services whose share cannot hold their weights: they would not start


def plan_budget(
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
    basis: dict[str, str] = {}
    memory_unknown: list[str] = []
    short: list[str] = []
    free = (total_gib - state.fleet.reserved_memory_gib) if total_gib else None
    engine_gib = {e.name: e.size_gb * GIB_PER_GB for e in engines if e.size_gb}
    # Services start in order; each KV cache takes its fraction of what is free when it starts.
    for s in services:
        svc = state.services[s.name]
        if s.memory_gib is not None:
            need, basis[s.name] = s.memory_gib, "its memory_gib"
        elif isinstance(svc, VllmService):
            share = vllm.memory_gib(svc, total_gib)
            if share is None:
                memory_unknown.append(s.name)
                continue
            need, basis[s.name] = share, f"vllm: {svc.gpu_memory_utilization:g} of the {total_gib:g} GiB total"
        elif isinstance(svc, NimService):
            if svc.expect.resident_gib is None:
                memory_unknown.append(s.name)
                continue
            need, basis[s.name] = svc.expect.resident_gib, "its expected resident_gib"
        elif isinstance(svc, LlamaCppService):  # its KV cache follows its context: memory_gib, or unknown
            memory_unknown.append(s.name)
            continue
        elif isinstance(svc, SglangService):
            if free is None:
                memory_unknown.append(s.name)
                continue
            need = sglang.memory_gib(svc, max(free, 0.0))
            basis[s.name] = f"sglang: {svc.mem_fraction_static:g} of the {free:.1f} GiB free when it starts"
            weights = _checkpoint_gib(state, svc.checkpoint)
            if weights is not None and weights >= need:
                short.append(
                    f"{s.name}: its mem_fraction_static {svc.mem_fraction_static:g} of {free:.1f} GiB is "
                    f"{need:.1f} GiB, which the {weights:.1f} GiB of weights fill: SGLang refuses to start with no "
                    "room for its KV cache"
                )
        else:
            weights = engine_gib.get(s.engine) if s.engine else _checkpoint_gib(state, svc.checkpoint)  # type: ignore[union-attr]
            if weights is None or free is None:
                memory_unknown.append(s.name)
                continue
            fraction, room = svc.kv_cache_free_gpu_memory_fraction, max(free - weights, 0.0)
            need = weights + fraction * room
            basis[s.name] = f"weights {weights:.1f} + KV {fraction:g} of the {room:.1f} GiB free"
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
        memory_basis=basis,
        memory_short=tuple(short),
    )


def _checkpoint_gib(state: DesiredState, name: str) -> float | None:
    size = state.checkpoints[name].size_gb
    return size * GIB_PER_GB if size else None


def memory_overflow(host: str, budget: Budget) -> str | None:
    """Why the services placed on a host cannot all run in its unified memory, each share named; None when they
    fit (or the memory is not known before preflight)."""
    if budget.memory_total_gib is None:
        return None
    usable = budget.memory_total_gib - budget.memory_reserved_gib
    if budget.memory_gib <= usable:
        if budget.memory_short:
            return f"{host}: " + "; ".join(budget.memory_short) + ". Raise the share, or start it before the others"
        return None
    shares = "; ".join(
        f"{name} {gib:.1f} GiB ({budget.memory_basis.get(name, 'estimated')})"
        for name, gib in budget.memory_items.items()
    )
    return (
        f"{host}: its services need {budget.memory_gib:.1f} GiB of unified memory, {usable:.1f} GiB is usable "
        f"({budget.memory_total_gib:g} less {budget.memory_reserved_gib:g} reserved): {shares}. Lower a share, "
        "or place a service on another Spark"
    )
