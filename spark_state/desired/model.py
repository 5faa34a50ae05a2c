"""The desired-state schema (pydantic v2). Structure and per-field rules only; cross-references live in checks.py."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from ..plan import quoting
from .compat import KNOWN_GPUS

# ---------------------------------------------------------------- field types

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_ABS_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
# Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]
_IMAGE_REF = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Linux refuses one argv string longer than MAX_ARG_STRLEN (32 pages: 131072 bytes with its NUL), with E2BIG.
MAX_ARG_BYTES = 131071
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SIZE = re.compile(r"^[0-9]+(?:[bkmg]|kb|mb|gb)?$", re.IGNORECASE)


def _name(value: str) -> str:
    if ".." in value or not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a safe name: use 1-63 of a-z 0-9 . _ -, starting with a letter or digit, "
            "no '..' (names become paths and systemd unit names)"
        )
    return value


def _hf_repo(value: str) -> str:
    """huggingface_hub's validate_repo_id (utils/_validators.py): REPO_ID_REGEX `^(\\b[\\w\\-.]+\\b/)?\\b[\\w\\-.]+\\b$`,
    at most 96 characters, no '--' or '..', no '.git' ending; spark-state also wants the namespace."""
    part = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
    if not re.fullmatch(f"{part}/{part}", value):
        raise ValueError(f"{value!r} is not a Hugging Face repo id like 'nvidia/Llama-3.1-8B-Instruct-FP8'")
    if len(value) > 96 or "--" in value or ".." in value or value.endswith(".git"):
        raise ValueError(
            f"{value!r} breaks the hub's repo id rules: at most 96 characters, no '--' or '..', no '.git' ending"
        )
    return value


def _revision(value: str) -> str:
    """A branch, tag or commit as git check-ref-format allows it (the hub's revisions are git refs)."""
    if not _REVISION.fullmatch(value):
        raise ValueError(f"{value!r} is not a git revision (branch, tag or commit sha)")
    parts = value.split("/")
    if (
        ".." in value
        or "@{" in value
        or value.endswith((".", "/"))
        or value == "@"
        or any(not p or p.startswith(".") or p.endswith(".lock") for p in parts)
    ):
        raise ValueError(
            f"{value!r} is not a valid git ref name (git check-ref-format: no '..', '@{{', empty "
            "parts, parts starting with '.' or ending with '.lock', no trailing '.' or '/')"
        )
    return value


def _address(value: str) -> str:
    """An IPv4 or IPv6 address, or a DNS host name (RFC 1123 labels, 253 characters, an optional final dot);
    read as the resolver reads it: inet_aton's forms (0xc0a80115, 3232235797, 192.168.277) are IPv4 addresses,
    to be written as one; 0.0.0.0 names no machine."""
    if re.fullmatch(r"[0-9A-Fa-fxX.]+", value):
        try:
            canonical = socket.inet_ntoa(socket.inet_aton(value))
        except OSError:
            canonical = None
        if canonical is not None and canonical != value:
            raise ValueError(f"{value!r} is the IPv4 address {canonical} to the resolver: write {canonical}")
    if ":" in value or re.fullmatch(r"[0-9.]+", value):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither an IPv4 nor an IPv6 address") from None
        if address.is_unspecified:
            raise ValueError(
                f"{value!r} names no machine (connecting to it reaches this one): give the Spark's address"
            )
        if address.version == 6:  # refused clearly rather than half-working
            raise ValueError(
                f"{value!r}: IPv6 hosts are not supported yet (the services listen on IPv4 and the "
                "bench, health waits and rehearsal fleet are verified over IPv4 only); use the "
                "host's IPv4 address"
            )
        return value
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    if len(value) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(
            f"{value!r} is not a host name (labels of 1-63 letters, digits and '-', not starting or "
            "ending with '-') nor an IP address"
        )
    return value


_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}
MAX_SHM_BYTES = 2**40  # docker's --shm-size is host memory: a Spark has 128 GB, 1 TiB is beyond any


def _shm_size(value: str) -> str:
    """docker's --shm-size: digits and an optional unit (b, k, m, g), at most MAX_SHM_BYTES."""
    if not _SIZE.fullmatch(value):
        raise ValueError(f"{value!r} is not a size like 16GB")
    digits = value.rstrip("bkmgBKMG")
    if int(digits) * _SIZE_UNITS[value[len(digits) :].lower()] > MAX_SHM_BYTES:
        raise ValueError(f"{value!r} is more shared memory than any host has (at most 1 TiB)")
    return value


def _matching(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _abs_path(value: str) -> str:
    if not _ABS_PATH.fullmatch(value) or "/../" in value + "/" or "/./" in value + "/" or "//" in value:
        raise ValueError(f"{value!r} is not a clean absolute path (letters, digits, . _ + - and /; no '..')")
    return value.rstrip("/") or "/"


def _unit_word(value: str) -> str:
    _shell_arg(value)
    problem = quoting.systemd_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _shell_arg(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a NUL byte cannot be passed as a command-line argument")
    if len(value.encode()) > MAX_ARG_BYTES:
        raise ValueError(
            f"{len(value.encode())} bytes: Linux refuses a command-line argument over {MAX_ARG_BYTES} "
            "bytes (MAX_ARG_STRLEN)"
        )
    return value


def _env_value(value: str) -> str:
    problem = quoting.env_file_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Name = Annotated[str, AfterValidator(_name)]
EnvName = Annotated[str, _matching(_ENV_NAME, "an environment variable name (A-Z, 0-9, _)")]
HfRepo = Annotated[str, AfterValidator(_hf_repo)]
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")  # a revision that is a commit: pinned (spark-state pin writes these)
Revision = Annotated[str, AfterValidator(_revision)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
ImageRef = Annotated[
    str, _matching(_IMAGE_REF, "a docker image reference like 'nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3'")
]
Address = Annotated[str, AfterValidator(_address)]
UnixUser = Annotated[str, _matching(_USER, "a unix user name")]
ExtraArg = Annotated[str, AfterValidator(_unit_word)]
ShellArg = Annotated[str, AfterValidator(_shell_arg)]
EnvValue = Annotated[str, AfterValidator(_env_value)]
Port = Annotated[int, Field(ge=1, le=65535)]
if TYPE_CHECKING:
    GpuName = str
else:  # the schema and validation know each GPU by name (compat.KNOWN_GPUS)
    GpuName = Literal[tuple(KNOWN_GPUS)]
Quantization = Literal["fp8", "nvfp4"]


class Strict(BaseModel):
    # strict: YAML gives real types, and a boolean is not a port nor "8000" a number; no .inf or .nan anywhere
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# ---------------------------------------------------------------- sections


class Fleet(Strict):
    gpu: GpuName | None = Field(
        default="GB10", description="GPU every host is expected to have; null: learn it at preflight only."
    )
    reserved_memory_gib: float = Field(
        default=8.0, ge=0, le=64, description="Unified memory kept for the OS and everything that is not a service."
    )


class Paths(Strict):
    root: AbsPath = Field(default="/var/lib/spark-state", description="Checkpoints, engines and caches live here.")
    units: AbsPath = Field(default="/etc/systemd/system", description="Where the systemd units are written.")
    secrets: AbsPath = Field(default="/etc/spark-state/secrets", description="0600 env files with secrets.")
    docker: AbsPath = Field(default="/usr/bin/docker", description="The docker CLI on the hosts.")


class Rollout(Strict):
    canary: list[Name] = Field(
        default_factory=list,
        description="Hosts upgraded, health-checked and benched first; the others only when every canary passed.",
    )
    rollback: bool = Field(
        default=True,
        description="A changed service that fails its health wait or its bench goes back to the unit it ran before.",
    )


def _image_shorthand(value: Any) -> Any:
    return {"ref": value} if isinstance(value, str) else value


class Image(Strict):
    ref: ImageRef
    trtllm_version: str | None = Field(
        default=None,
        pattern=r"^[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.+-]*$",
        description="TensorRT-LLM inside the image when its tag does not tell (it is probed on the host anyway).",
    )
    size_gb: float | None = Field(default=None, gt=0, le=4096, description="Pulled size, for the disk budget.")


ImageEntry = Annotated[Image, BeforeValidator(_image_shorthand, json_schema_input_type=ImageRef | Image)]


class Checkpoint(Strict):
    repo: HfRepo
    revision: Revision = Field(default="main", description="Pin a commit sha for reproducible engines.")
    tokenizer_from: Name | None = Field(
        default=None, description="Take tokenizer and chat template from this checkpoint (NVFP4 repos lack one)."
    )
    secrets: list[EnvName] = Field(default_factory=list, description="Env-var names, e.g. HF_TOKEN for gated repos.")
    size_gb: float | None = Field(default=None, gt=0, le=4096, description="Download size, for the disk budget.")


class Engine(Strict):
    checkpoint: Name
    image: Name
    quantization: Quantization
    gemm_plugin: Literal["fp8", "nvfp4", "auto", "bfloat16", "float16", "disable"] | None = Field(
        default=None, description="Defaults to the quantization (fp8 → fp8, nvfp4 → nvfp4)."
    )
    max_batch_size: int = Field(default=8, ge=1, le=2048)
    max_input_len: int = Field(default=2048, ge=1, le=1048576)
    max_seq_len: int = Field(default=4096, ge=1, le=1048576)
    max_num_tokens: int = Field(default=4096, ge=1, le=1048576)
    use_paged_context_fmha: bool = True
    use_fp8_context_fmha: bool | None = Field(default=None, description="Defaults to true for fp8, false for nvfp4.")
    dtype: Literal["bfloat16", "float16"] = "bfloat16"
    convert_script: AbsPath | None = Field(
        default=None,
        description="A checkpoint converter inside the image, run as `python3 SCRIPT --model_dir --output_dir "
        "--dtype`; default: the one spark-state ships (TensorRT-LLM's library API, no example scripts needed).",
    )
    convert_args: list[ShellArg] = Field(default_factory=list)
    build_args: list[ShellArg] = Field(default_factory=list, description="Extra trtllm-build flags, verbatim.")


# Bounds an expectation can meet at all: no answer's first token comes in under a millisecond (the bench's own
# resolution is ~0.1 ms, a loopback round trip more), no GB10 stream decodes 10,000 tok/s, no Spark serves
# 1,000,000 tok/s in aggregate or holds more than its 128 GB of memory (1024 GiB leaves room for larger kin).
class Expect(Strict):
    ttft_p50_ms: float | None = Field(
        default=None, ge=1, le=600_000, description="Upper bound on median time to first token (1 ms .. 10 min)."
    )
    decode_tok_s: float | None = Field(
        default=None, gt=0, le=10_000, description="Lower bound on per-stream decode rate (at most 10,000)."
    )
    aggregate_tok_s: dict[Annotated[int, Field(ge=1, le=4096)], Annotated[float, Field(gt=0, le=1_000_000)]] = Field(
        default_factory=dict, description="Lower bound on aggregate tok/s, by concurrency."
    )
    resident_gib: float | None = Field(
        default=None, gt=0, le=1024, description="Upper bound on resident memory (at most 1024 GiB)."
    )


class _ServiceBase(Strict):
    port: Port
    health_timeout_s: int | None = Field(
        default=None,
        ge=10,
        le=86400,
        description="How long a start may take before the service counts as failed (default 600 s for "
        "trtllm-serve, 1800 s for a NIM, whose first start downloads its model profile).",
    )
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, description="Plain environment for the container.")
    secrets: list[EnvName] = Field(default_factory=list, description="Env-var names delivered in a 0600 file.")
    extra_args: list[ExtraArg] = Field(default_factory=list, description="Extra server flags, verbatim.")
    expect: Expect = Field(default_factory=Expect)
    memory_gib: float | None = Field(default=None, gt=0, le=4096, description="Memory budget; overrides the estimate.")


class _TrtllmServeFlags(Strict):
    kv_cache_free_gpu_memory_fraction: float = Field(
        default=0.4,
        ge=0.01,
        le=1,
        description="Share of free unified memory the KV cache may take (at least 0.01: less holds no sequence).",
    )
    max_batch_size: int | None = Field(default=None, ge=1, le=2048)
    max_num_tokens: int | None = Field(default=None, ge=1, le=1048576)
    max_seq_len: int | None = Field(default=None, ge=1, le=1048576)
    tokenizer: Name | None = Field(default=None, description="Checkpoint whose tokenizer to serve with.")


class EngineService(_ServiceBase, _TrtllmServeFlags):
    """trtllm-serve with the TensorRT backend, serving a built engine."""

    engine: Name
    image: Name | None = Field(default=None, description="Serving image; defaults to the engine's build image.")


class PytorchService(_ServiceBase, _TrtllmServeFlags):
    """trtllm-serve with the PyTorch backend, serving a checkpoint directly (no engine build)."""

    checkpoint: Name
    backend: Literal["pytorch"]
    image: Name
    llm_api_options: dict[str, Any] = Field(
        default_factory=dict,
        description="TensorRT-LLM LLM API options (kv_cache_config, cuda_graph_config, enable_chunked_prefill, "
        "speculative_config, ...), written to the YAML file trtllm-serve reads with --extra_llm_api_options; keys "
        "are checked against the image's TensorRT-LLM where its fields are known.",
    )


class NimService(_ServiceBase):
    """An NVIDIA NIM container."""

    container: Name
    container_port: Port = Field(default=8000, description="Port the NIM listens on inside the container.")
    shm_size: Annotated[str, AfterValidator(_shm_size)] = "16GB"


SERVICE_KINDS = {"engine": "trtllm-engine", "checkpoint": "trtllm-pytorch", "container": "nim"}


def _service_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.__dict__
    if not isinstance(value, dict):
        return None
    present = [key for key in SERVICE_KINDS if key in value]
    return SERVICE_KINDS[present[0]] if len(present) == 1 else None


Service = Annotated[
    Annotated[EngineService, Tag("trtllm-engine")]
    | Annotated[PytorchService, Tag("trtllm-pytorch")]
    | Annotated[NimService, Tag("nim")],
    Discriminator(
        _service_kind,
        custom_error_type="service_kind",
        custom_error_message="a service needs exactly one of: engine (trtllm-serve), checkpoint with "
        "backend: pytorch, or container (NIM)",
    ),
]


class Bench(Strict):
    prompt: str = Field(
        default="In one paragraph: what is retrieval-augmented generation and when is it the wrong tool?",
        min_length=1,
        max_length=100_000,
    )
    max_tokens: int = Field(default=200, ge=1, le=131072)
    temperature: float = Field(default=0.0, ge=0, le=2)
    concurrency: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1)
    serial_requests: int = Field(default=5, ge=1, le=1000)  # 1000 × 200 tokens at 40 tok/s: 1.4 h already
    warmup_requests: int = Field(default=1, ge=0, le=100)
    requests_per_level: int | None = Field(
        default=None, ge=1, le=100000, description="Requests per concurrency level; default 2 × concurrency."
    )
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    ignore_eos: bool = Field(
        default=False,
        description="Ask for exactly max_tokens tokens (trtllm-serve and vLLM/NIM accept ignore_eos) for figures "
        "comparable across stacks; off, answers end at EOS as users get them.",
    )
    baseline: Name | None = Field(default=None, description="Service the delta table compares against.")


class Group(Strict):
    services: list[Name] = Field(default_factory=list)


class Host(Strict):
    address: Address
    ssh_user: UnixUser = Field(
        default="nvidia", description="The operator account (DGX OS's first user); it uses sudo. Root has no SSH login."
    )
    ssh_port: Port = 22
    ssh_key: AbsPath | None = None
    gpu: GpuName | Literal["detect"] | None = Field(
        default=None, description="Overrides fleet.gpu for this host; 'detect': learn it at preflight only."
    )
    groups: list[Name] = Field(default_factory=list)
    services: list[Name] = Field(default_factory=list)


class DesiredState(Strict):
    """The whole desired state of a fleet."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "spark-state"},
    )

    fleet: Fleet = Field(default_factory=Fleet)
    paths: Paths = Field(default_factory=Paths)
    images: dict[Name, ImageEntry] = Field(default_factory=dict)
    checkpoints: dict[Name, Checkpoint] = Field(default_factory=dict)
    engines: dict[Name, Engine] = Field(default_factory=dict)
    services: dict[Name, Service] = Field(default_factory=dict)
    bench: Bench = Field(default_factory=Bench)
    rollout: Rollout = Field(default_factory=Rollout)
    groups: dict[Name, Group] = Field(default_factory=dict)
    hosts: dict[Name, Host] = Field(default_factory=dict)


AnyService = EngineService | PytorchService | NimService


def service_kind(service: AnyService) -> str:
    if isinstance(service, EngineService):
        return "trtllm-engine"
    if isinstance(service, PytorchService):
        return "trtllm-pytorch"
    return "nim"


def host_services(state: DesiredState, host_name: str) -> list[str]:
    """Services placed on a host: its groups' services, then its own, each once, in order."""
    host = state.hosts[host_name]
    names: list[str] = []
    for group in host.groups:
        if group in state.groups:
            names.extend(state.groups[group].services)
    names.extend(host.services)
    return [n for i, n in enumerate(names) if n not in names[:i]]


def host_gpu(state: DesiredState, host_name: str) -> str | None:
    """The GPU a host is declared to have (its own setting, else the fleet's); None: learned at preflight."""
    declared = state.hosts[host_name].gpu
    if declared == "detect":
        return None
    return declared or state.fleet.gpu
