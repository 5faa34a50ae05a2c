"""Checkpoints in a host plan: where each is downloaded, at which revision, and by which image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..desired.model import (
    CHECKPOINT_SERVICES,
    DOWNLOADING_SERVICES,
    DesiredState,
    EngineService,
    LlamaCppService,
    NimService,
)
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
    files: tuple[str, ...] = ()  # only these files of the repo (glob patterns); () for all


def checkpoint_dir(state: DesiredState, name: str) -> str:
    """Where a checkpoint's download lives: one directory per revision and choice of files (a download of other
    files of the same revision is another directory, never a half-matching one)."""
    c = state.checkpoints[name]
    revision = c.revision.replace("/", "--")
    if c.files:
        revision += "-" + hashlib.sha256("\n".join(c.files).encode()).hexdigest()[:8]
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
        () if tokenizer_only else tuple(c.files),
    )


def fetch_image(state: DesiredState, checkpoint: str, services: list[str], engines: list[str]) -> str:
    """An image on this host that can download `checkpoint` (it ships huggingface_hub): the image of whatever uses
    it, else the checkpoint's own fetch_image (llama.cpp's server images carry no Python)."""
    for name in engines:
        if state.engines[name].checkpoint == checkpoint:
            return state.engines[name].image
    for s in services:
        svc = state.services[s]
        if not isinstance(svc, (EngineService, *DOWNLOADING_SERVICES)):
            continue
        if (isinstance(svc, CHECKPOINT_SERVICES) and svc.checkpoint == checkpoint) or tokenizer_checkpoint(
            state, s
        ) == checkpoint:
            return svc.image or state.engines[svc.engine].image  # type: ignore[union-attr]
    if (image := state.checkpoints[checkpoint].fetch_image) is not None:
        return image
    raise AssertionError(f"checkpoint {checkpoint} is planned but nothing here can download it (validate refuses)")


def tokenizer_checkpoint(state: DesiredState, service_name: str) -> str | None:
    """The checkpoint whose tokenizer a trtllm-serve service loads: explicit, else the model's tokenizer_from,
    else the model's own."""
    svc = state.services[service_name]
    if isinstance(svc, NimService | LlamaCppService):  # a NIM brings its own; a GGUF file carries its tokenizer
        return None
    if svc.tokenizer:
        return svc.tokenizer
    model = state.engines[svc.engine].checkpoint if isinstance(svc, EngineService) else svc.checkpoint
    return state.checkpoints[model].tokenizer_from or model
