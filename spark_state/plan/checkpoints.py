"""Checkpoints in a host plan: where each is downloaded, at which revision, and by which image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..desired.model import DesiredState
from .images import ImagePlan


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


def plan_checkpoint(
    state: DesiredState, name: str, fetch_image: ImagePlan, tokenizer_only: bool = False
) -> CheckpointPlan:
    """`fetch_image`: the image the download runs in (desired.downloads decides which)."""
    c = state.checkpoints[name]
    return CheckpointPlan(
        name,
        c.repo,
        c.revision,
        checkpoint_dir(state, name),
        tuple(c.secrets),
        None if tokenizer_only else c.size_gb,
        fetch_image.local,
        tokenizer_only,
        () if tokenizer_only else tuple(c.files),
    )
