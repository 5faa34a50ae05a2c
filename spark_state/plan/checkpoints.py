"""Checkpoints in a host plan: where each is downloaded, at which revision, and by which image."""

from __future__ import annotations

from dataclasses import dataclass

from ..desired.model import DesiredState, EngineService, NimService, PytorchService, VllmService
from .images import local_ref


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


def checkpoint_dir(state: DesiredState, name: str) -> str:
    revision = state.checkpoints[name].revision.replace("/", "--")
    return f"{state.paths.root}/checkpoints/{name}/{revision}"


def plan_checkpoint(state: DesiredState, name: str, fetch_image: str, tokenizer_only: bool = False) -> CheckpointPlan:
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


def fetch_image(state: DesiredState, checkpoint: str, services: list[str], engines: list[str]) -> str:
    """A TensorRT-LLM image on this host that can download `checkpoint`: the image of whatever uses it."""
    for name in engines:
        if state.engines[name].checkpoint == checkpoint:
            return state.engines[name].image
    for s in services:
        svc = state.services[s]
        if isinstance(svc, NimService):
            continue
        if (isinstance(svc, (PytorchService, VllmService)) and svc.checkpoint == checkpoint) or tokenizer_checkpoint(
            state, s
        ) == checkpoint:
            return svc.image or state.engines[svc.engine].image  # type: ignore[union-attr]
    raise AssertionError(f"checkpoint {checkpoint} is planned but nothing uses it")


def tokenizer_checkpoint(state: DesiredState, service_name: str) -> str | None:
    """The checkpoint whose tokenizer a trtllm-serve service loads: explicit, else the model's tokenizer_from,
    else the model's own."""
    svc = state.services[service_name]
    if isinstance(svc, NimService):
        return None
    if svc.tokenizer:
        return svc.tokenizer
    model = state.engines[svc.engine].checkpoint if isinstance(svc, EngineService) else svc.checkpoint
    return state.checkpoints[model].tokenizer_from or model
