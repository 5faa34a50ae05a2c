"""Who downloads a checkpoint on a host, and whose tokenizer a service loads: rules on the state alone, read by
validate (a checkpoint nothing on its host can download is refused) and by the plan (the image a download runs
in), so the two never disagree."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import (
    CHECKPOINT_SERVICES,
    DOWNLOADING_SERVICES,
    DesiredState,
    EngineService,
    LlamaCppService,
    NimService,
)


def tokenizer_checkpoint(state: DesiredState, service_name: str) -> str | None:
    """The checkpoint whose tokenizer a service loads: explicit, else the model's tokenizer_from, else the model's
    own; None for a NIM (it brings its own), a llama.cpp service (a GGUF file carries its tokenizer) and a service
    whose references validate refuses."""
    svc = state.services[service_name]
    if isinstance(svc, NimService | LlamaCppService):
        return None
    if svc.tokenizer:
        return svc.tokenizer
    if isinstance(svc, EngineService):
        engine = state.engines.get(svc.engine)
        model = engine.checkpoint if engine is not None else None
    else:
        model = svc.checkpoint
    checkpoint = state.checkpoints.get(model) if model is not None else None
    if checkpoint is None:
        return None
    return checkpoint.tokenizer_from or model


def download_image(state: DesiredState, checkpoint: str, services: list[str], engines: list[str]) -> str | None:
    """The image (a name in state.images) that downloads `checkpoint` on a host running `services` and building
    `engines`: that of an engine built from it, else of a service whose image ships huggingface_hub and which
    serves it or takes its tokenizer, else the checkpoint's own fetch_image (llama.cpp's server images carry no
    Python); None when nothing there can."""
    for name in engines:
        engine = state.engines.get(name)
        if engine is not None and engine.checkpoint == checkpoint:
            return engine.image
    for s in services:
        svc = state.services[s]
        if not isinstance(svc, (EngineService, *DOWNLOADING_SERVICES)):
            continue
        serves = isinstance(svc, CHECKPOINT_SERVICES) and svc.checkpoint == checkpoint
        if serves or tokenizer_checkpoint(state, s) == checkpoint:
            if isinstance(svc, EngineService):
                engine = state.engines.get(svc.engine)
                return engine.image if engine is not None else None
            return svc.image
    ckpt = state.checkpoints.get(checkpoint)
    return ckpt.fetch_image if ckpt is not None else None


@dataclass(frozen=True)
class HostNeeds:
    """What a host running `services` needs, each name once, in the order the plan lists it."""

    engines: list[str] = field(default_factory=list)
    checkpoints: dict[str, str] = field(default_factory=dict)  # checkpoint → the image that downloads it
    models: set[str] = field(default_factory=set)  # checkpoints whose weights are needed (others: tokenizer only)
    tokenizers: dict[str, str | None] = field(default_factory=dict)  # service → the checkpoint of its tokenizer
    images: list[str] = field(default_factory=list)


def host_needs(state: DesiredState, services: list[str]) -> HostNeeds:
    """The engines, checkpoints and images a host running `services` needs: an engine built from a checkpoint
    and a service that serves one need its weights, a service's tokenizer only its tokenizer files."""
    engines = _once(svc.engine for s in services if isinstance(svc := state.services[s], EngineService))
    tokenizers = {s: tokenizer_checkpoint(state, s) for s in services}
    models = [state.engines[e].checkpoint for e in engines]
    listed: list[str | None] = list(models)
    for s in services:  # each service's model, then its tokenizer
        if isinstance(svc := state.services[s], CHECKPOINT_SERVICES):
            models.append(svc.checkpoint)
            listed.append(svc.checkpoint)
        listed.append(tokenizers[s])
    checkpoints = {n: download_image(state, n, services, engines) for n in _once(listed)}
    for n, image in checkpoints.items():
        if image is None:
            raise AssertionError(f"checkpoint {n} is planned but nothing here can download it (validate refuses)")
    used = [state.engines[e].image for e in engines] + [
        svc.container if isinstance(svc, NimService) else svc.image for svc in (state.services[s] for s in services)
    ]
    return HostNeeds(
        engines=engines,
        checkpoints={n: str(image) for n, image in checkpoints.items()},
        models=set(models),
        tokenizers=tokenizers,
        images=_once([*used, *checkpoints.values()]),
    )


def _once(names: Iterable[str | None]) -> list[str]:
    """Each name once, in the order first seen (None left out)."""
    out: list[str] = []
    for n in names:
        if n is not None and n not in out:
            out.append(n)
    return out
