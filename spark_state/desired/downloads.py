"""Who downloads a checkpoint on a host, and whose tokenizer a service loads: rules on the state alone, read by
validate (a checkpoint nothing on its host can download is refused) and by the plan (the image a download runs
in), so the two never disagree."""

from __future__ import annotations

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
