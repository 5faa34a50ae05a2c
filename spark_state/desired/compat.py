"""What we know about NVIDIA containers and GPUs: tag → TensorRT-LLM version, and verdicts for a GPU.

Source: Triton's container compatibility matrix and the field report (TensorRT-LLM 0.17 dies on GB10 with
`Assertion failed: FP8 FMHA cannot be enabled except on Ada or Hopper or Blackwell Arch.`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

# Triton `tritonserver:YY.MM-trtllm-python-py3` → TensorRT-LLM it ships.
TRITON_TRTLLM_VERSIONS: dict[str, str] = {
    "25.01": "0.17.0.post1",
    "25.02": "0.17.0.post1",
    "25.03": "0.18.0",
    "25.04": "0.18.2",
    "25.05": "0.19.0",
    "25.06": "0.20.0",
    "25.07": "0.20.0",
    "25.08": "0.21.0",
    "25.09": "1.0.0",
    "25.10": "1.0.0",
    "25.11": "1.0.3",
    "25.12": "1.1.0",
    "26.01": "1.1.0",
    "26.02": "1.1.0",
    "26.03": "1.2.0",
    "26.04": "1.2.1",
    "26.05": "1.2.1",
    "26.06": "1.2.1",
    "26.07": "1.2.1",
}

# Below this, trtllm-build dies on SM 12.x (GB10) with the FP8 FMHA assertion. The build script refuses such an
# image whatever its tag said (a retag or a digest of 25.01 included).
MIN_TRTLLM_FOR_SM12 = "0.18"

# The image to recommend when a build image is known-bad.
RECOMMENDED_BUILD_IMAGE = "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"

_TRITON_TAG = re.compile(r"(?:^|/)tritonserver:(?P<release>\d\d\.\d\d)-trtllm-python-py3(?:@sha256:[0-9a-f]{64})?$")
# NGC's TensorRT-LLM release images (`nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3`, the dgx-spark-playbooks'
# image) are tagged with the TensorRT-LLM version they ship.
_RELEASE_TAG = re.compile(
    r"(?:^|/)tensorrt-llm/release:(?P<version>\d+\.\d+\.\d+(?:rc\d+|\.post\d+)?)(?:@sha256:[0-9a-f]{64})?$"
)


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str
    unified_memory_gib: float | None = None

    @property
    def sm_major(self) -> int:
        return int(self.compute_capability.split(".")[0])


KNOWN_GPUS: dict[str, Gpu] = {
    "GB10": Gpu(name="NVIDIA GB10", compute_capability="12.1", unified_memory_gib=121.7),
}


class Support(str, Enum):
    KNOWN_BAD = "known-bad"
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    UNKNOWN_VERSION = "unknown-version"


@dataclass(frozen=True)
class Verdict:
    support: Support
    reason: str


def trtllm_version_for_image(ref: str) -> str | None:
    """TensorRT-LLM version an image ships, from its tag (a Triton TRT-LLM or a TensorRT-LLM release image); None
    when the tag is not one we know."""
    if release := _RELEASE_TAG.search(ref):
        return release.group("version")
    match = _TRITON_TAG.search(ref)
    if not match:
        return None
    return TRITON_TRTLLM_VERSIONS.get(match.group("release"))


def version_tuple(version: str) -> tuple[int, ...]:
    """'0.17.0.post1' → (0, 17, 0); non-numeric parts (post, rc) are ignored for ordering."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def trtllm_support(trtllm_version: str | None, gpu: Gpu) -> Verdict:
    """Can this TensorRT-LLM build engines for this GPU? Only SM 12.x (GB10) verdicts are known facts."""
    if trtllm_version is None:
        return Verdict(Support.UNKNOWN_VERSION, "TensorRT-LLM version unknown; it is probed from the image on the host")
    if gpu.sm_major != 12:
        return Verdict(Support.UNVERIFIED, f"no field data for compute capability {gpu.compute_capability}")
    v = version_tuple(trtllm_version)
    if v < version_tuple(MIN_TRTLLM_FOR_SM12):
        return Verdict(
            Support.KNOWN_BAD,
            f"TensorRT-LLM {trtllm_version} predates SM {gpu.compute_capability}: trtllm-build dies with "
            "'Assertion failed: FP8 FMHA cannot be enabled except on Ada or Hopper or Blackwell Arch.'",
        )
    if v[:2] == (1, 1):
        return Verdict(Support.VERIFIED, f"TensorRT-LLM {trtllm_version} is verified on {gpu.name}")
    return Verdict(
        Support.UNVERIFIED,
        f"TensorRT-LLM {trtllm_version} is unverified on {gpu.name} (verified: 1.1.x, e.g. {RECOMMENDED_BUILD_IMAGE})",
    )


def known_bad_fix(image_ref: str, trtllm_version: str, gpu: Gpu) -> str:
    """The message for a known-bad image: names image, TensorRT-LLM version, GPU and the fix."""
    return (
        f"image {image_ref} ships TensorRT-LLM {trtllm_version}, known to fail on {gpu.name} "
        f"(compute capability {gpu.compute_capability}): trtllm-build dies with 'Assertion failed: FP8 FMHA "
        f"cannot be enabled except on Ada or Hopper or Blackwell Arch.'; use {RECOMMENDED_BUILD_IMAGE} "
        "(TensorRT-LLM 1.1.0) instead"
    )


# NGC (docs.nvidia.com/ngc): `docker login nvcr.io` with user `$oauthtoken` and the NGC API key as password;
# NVIDIA's public images (nvcr.io/nvidia/...) pull anonymously, NIM images (nvcr.io/nim/...) need the key.
NGC_REGISTRY = "nvcr.io"
NGC_USER = "$oauthtoken"
NGC_KEY_ENV = "NGC_API_KEY"
NGC_PUBLIC_PREFIXES = ("nvcr.io/nvidia/",)


def needs_ngc_login(image_ref: str) -> bool:
    """Pulling this image needs `docker login nvcr.io` with an NGC API key (a registry's host name is a DNS name:
    `NVCR.IO/nim/...` is pulled from nvcr.io too)."""
    registry, _, path = image_ref.partition("/")
    normalized = f"{registry.lower()}/{path}"
    return normalized.startswith(f"{NGC_REGISTRY}/") and not normalized.startswith(NGC_PUBLIC_PREFIXES)
