"""Engines in a host plan: the convert and build command lines and the fingerprint of everything that goes into
a build (image, TensorRT-LLM version, checkpoint repo@revision, converter, every flag)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..desired.model import DesiredState
from ..desired.names import build_container, convert_container
from ..on_host import program
from . import quoting
from .checkpoints import CheckpointPlan
from .images import ImagePlan

PLAN_FORMAT = 1  # part of every engine fingerprint and of `plan --json`
# The checkpoint converter spark-state ships (on_host/convert_checkpoint.py, TensorRT-LLM's library API), mounted
# into the build image; its hash is part of every engine fingerprint that uses it, so a new converter rebuilds.
CONVERTER_NAME = "convert_checkpoint.py"
CONVERTER_IN_IMAGE = f"/opt/spark-state/{CONVERTER_NAME}"
CONVERTER_TEXT = program(CONVERTER_NAME)
CONVERTER_ID = f"spark-state {CONVERTER_NAME} " + hashlib.sha256(CONVERTER_TEXT.encode()).hexdigest()[:16]
# A built rank0.engine is ~95% of the ModelOpt checkpoint it came from (FP8 8.6/9.08 GB, NVFP4 5.7/6.03 GB).
ENGINE_TO_CHECKPOINT_SIZE = 0.95


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


def converter_path(root: str) -> str:
    return f"{root}/lib/{CONVERTER_NAME}"


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


def plan_engine(
    state: DesiredState, name: str, images: Mapping[str, ImagePlan], checkpoints: Mapping[str, CheckpointPlan]
) -> EnginePlan:
    """`images` and `checkpoints`: the host's plans of them (the engine's image and checkpoint among them)."""
    e = state.engines[name]
    ckpt = state.checkpoints[e.checkpoint]
    image = images[e.image]
    image_ref, version = image.local, image.trtllm_version
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
    gpu_run = (docker, "run", "--rm", "--gpus", "all", "--name")  # a one-off container on the GPU, named
    convert_argv = (
        *gpu_run,
        convert_container(name),
        "-v",
        f"{checkpoints[e.checkpoint].dir}:/ckpt:ro",
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
        *gpu_run,
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
