"""Images in a host plan: the reference as the state declares it, the name the host uses, the digest it pins,
and whether its TensorRT-LLM can serve the host's GPU."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..desired.checks import image_trtllm_version
from ..desired.compat import needs_ngc_login, trtllm_support
from ..desired.model import DesiredState, PytorchService


@dataclass(frozen=True)
class ImagePlan:
    name: str
    ref: str  # as the state writes it: what is pulled (a pinned `name:tag@sha256:...` pulls exactly that digest)
    trtllm_version: str | None
    support: str
    reason: str
    local: str = ""  # what units, builds and the probe use on the host: `name:tag` (local_ref)
    digest: str | None = None  # the digest the state pins, checked against what `local` holds
    ngc_login: bool = False  # pulling it needs `docker login nvcr.io` with an NGC API key


def local_ref(ref: str) -> str:
    """The name an image is used by on a host. A pinned `name:tag@sha256:...` is pulled by its digest and tagged
    `name:tag`, so a pinned and an unpinned state serving the same bits write the same units and engines (what
    `name:tag` holds is checked against the digest). An untagged `name@sha256:...` is used as it is."""
    name, _, digest = ref.partition("@")
    return name if digest and ":" in name.rsplit("/", 1)[-1] else ref


def ref_digest(ref: str) -> str | None:
    """The digest a reference pins (`...@sha256:HEX`), or None."""
    return ref.partition("@")[2] or None


def plan_image(state: DesiredState, name: str, gpu: Any, probed: Mapping[str, str]) -> ImagePlan:
    ref = state.images[name].ref
    local, digest = local_ref(ref), ref_digest(ref)
    trtllm_image = _is_trtllm_image(state, name)
    version = probed.get(local) or image_trtllm_version(state, name)
    login = needs_ngc_login(ref)
    if gpu is None or (version is None and not trtllm_image):
        return ImagePlan(name, ref, version, "n/a", "", local, digest, login)
    verdict = trtllm_support(version, gpu)
    return ImagePlan(name, ref, version, verdict.support.value, verdict.reason, local, digest, login)


def _is_trtllm_image(state: DesiredState, name: str) -> bool:
    return any(e.image == name for e in state.engines.values()) or any(
        isinstance(s, PytorchService) and s.image == name for s in state.services.values()
    )
