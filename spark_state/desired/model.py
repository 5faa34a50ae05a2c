"""The desired-state schema (pydantic v2). Structure and per-field rules only; cross-references live in checks.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from ..stacks import STACKS
from ..stacks.llamacpp import LlamaCppService
from ..stacks.nim import NimService
from ..stacks.sglang import SglangService
from ..stacks.trtllm import PytorchService
from ..stacks.trtllm_engine import EngineService
from ..stacks.vllm import VllmService
from .fields import (
    COMMIT_SHA,
    AbsPath,
    Address,
    EnvName,
    Expect,
    GpuName,
    HfRepo,
    ImageRef,
    Name,
    Port,
    Quantization,
    Revision,
    ShellArg,
    Strict,
    UnixUser,
    allow_secrets_field,
    secrets_field,
)

__all__ = [
    "CHECKPOINT_SERVICES",
    "COMMIT_SHA",
    "DOWNLOADING_SERVICES",
    "EngineService",
    "Expect",
    "LlamaCppService",
    "NimService",
    "PytorchService",
    "SglangService",
    "VllmService",
]

# ---------------------------------------------------------------- sections


class MemoryGuard(Strict):
    """earlyoom on every Spark: on the unified pool a runaway server can freeze the whole host before the kernel's
    OOM killer acts (open-gpu-kernel-modules#1358); earlyoom ends it first."""

    enabled: bool = Field(default=True, description="Install, configure and run earlyoom on every host.")
    available_below_gib: float = Field(
        default=4.0,
        gt=0,
        le=12,
        description="SIGTERM the process with the highest oom_score once available memory (and free swap, if any) "
        "falls below this; SIGKILL below half of it. Must stay under fleet.reserved_memory_gib, or a server "
        "inside its budget could be chosen; at most 12 (earlyoom's own -m default, 10 % of 121.7 GiB, "
        "would otherwise be the lower bound and win).",
    )


class Monitoring(Strict):
    """Prometheus for the fleet: Debian's `prometheus` on one host, scraping every service's own metrics, each
    host's node exporter (`prometheus-node-exporter`, with spark-state's bench results as textfile metrics) and
    itself."""

    host: Name = Field(description="The host of this state that runs Prometheus.")
    port: Port = Field(default=9090, description="Where Prometheus listens on that host.")
    scrape_interval_s: int = Field(default=15, ge=1, le=300, description="How often every target is scraped.")
    retention_days: int = Field(default=15, ge=1, le=3650, description="How long Prometheus keeps its samples.")


class Fleet(Strict):
    gpu: GpuName | None = Field(
        default="GB10", description="GPU every host is expected to have; null: learn it at preflight only."
    )
    reserved_memory_gib: float = Field(
        default=8.0, ge=0, le=64, description="Unified memory kept for the OS and everything that is not a service."
    )
    memory_guard: MemoryGuard = Field(
        default_factory=MemoryGuard, description="earlyoom on every host, before memory pressure freezes it."
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
    ref: ImageRef = Field(description="The image reference: `name:tag`, or pinned `name:tag@sha256:...`.")
    trtllm_version: str | None = Field(
        default=None,
        pattern=r"^[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.+-]*$",
        description="TensorRT-LLM inside the image when its tag does not tell (it is probed on the host anyway).",
    )
    size_gb: float | None = Field(default=None, gt=0, le=4096, description="Pulled size, for the disk budget.")


ImageEntry = Annotated[Image, BeforeValidator(_image_shorthand, json_schema_input_type=ImageRef | Image)]


# Downloads run on_host/fetch_checkpoint.py, that is huggingface_hub, which reads its token from HF_TOKEN
# (huggingface_hub's environment-variable reference; HUGGING_FACE_HUB_TOKEN is its deprecated alias).
FETCH_SECRETS = frozenset({"HF_TOKEN"})


class Checkpoint(Strict):
    repo: HfRepo = Field(description="The Hugging Face repo id, owner/name.")
    revision: Revision = Field(default="main", description="Pin a commit sha for reproducible engines.")
    tokenizer_from: Name | None = Field(
        default=None, description="Take tokenizer and chat template from this checkpoint (NVFP4 repos lack one)."
    )
    secrets: list[EnvName] = secrets_field("its download, huggingface_hub (HF_TOKEN, for gated repos)")
    allow_secrets: list[EnvName] = allow_secrets_field("huggingface_hub")
    size_gb: float | None = Field(default=None, gt=0, le=4096, description="Download size, for the disk budget.")
    files: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9*?\[\]][A-Za-z0-9._/*?\[\]-]{0,250}$")]] = Field(
        default_factory=list,
        description="Only these files of the repo (glob patterns, as huggingface_hub's allow_patterns): a GGUF "
        "repo holds every quantization of a model; name the one served. Default: the whole repo.",
    )
    fetch_image: Name | None = Field(
        default=None,
        description="An image with Python and huggingface_hub that downloads it on hosts where no service that "
        "uses it can (llama.cpp's server images carry no Python).",
    )


class Engine(Strict):
    checkpoint: Name = Field(description="The checkpoint it is built from.")
    image: Name = Field(
        description="The image it is converted and built in (its TensorRT-LLM must build for the host's GPU)."
    )
    quantization: Quantization = Field(description="The checkpoint's quantization (a ModelOpt export): fp8 or nvfp4.")
    gemm_plugin: Literal["fp8", "nvfp4", "auto", "bfloat16", "float16", "disable"] | None = Field(
        default=None, description="Defaults to the quantization (fp8 → fp8, nvfp4 → nvfp4)."
    )
    max_batch_size: int = Field(default=8, ge=1, le=2048, description="trtllm-build --max_batch_size.")
    max_input_len: int = Field(
        default=2048, ge=1, le=1048576, description="trtllm-build --max_input_len: the longest prompt."
    )
    max_seq_len: int = Field(
        default=4096, ge=1, le=1048576, description="trtllm-build --max_seq_len: prompt plus completion."
    )
    max_num_tokens: int = Field(
        default=4096, ge=1, le=1048576, description="trtllm-build --max_num_tokens: tokens in one scheduler step."
    )
    use_paged_context_fmha: bool = Field(default=True, description="trtllm-build --use_paged_context_fmha enable.")
    use_fp8_context_fmha: bool | None = Field(default=None, description="Defaults to true for fp8, false for nvfp4.")
    dtype: Literal["bfloat16", "float16"] = Field(
        default="bfloat16", description="The converter's --dtype for weights that are not quantized."
    )
    convert_script: AbsPath | None = Field(
        default=None,
        description="A checkpoint converter inside the image, run as `python3 SCRIPT --model_dir --output_dir "
        "--dtype`; default: the one spark-state ships (TensorRT-LLM's library API, no example scripts needed).",
    )
    convert_args: list[ShellArg] = Field(default_factory=list, description="Extra converter flags, verbatim.")
    build_args: list[ShellArg] = Field(default_factory=list, description="Extra trtllm-build flags, verbatim.")


# A service names its stack (`stack: vllm`); one that does not is told by the key it carries, as state files
# written before stacks had names are.
SERVICE_KINDS = {"engine": "trtllm-engine", "checkpoint": "trtllm", "container": "nim"}


def _service_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.__dict__
    if not isinstance(value, dict):
        return None
    if "stack" in value:
        return value["stack"] if value["stack"] in STACKS else None
    present = [key for key in SERVICE_KINDS if key in value]
    return SERVICE_KINDS[present[0]] if len(present) == 1 else None


Service = Annotated[
    Annotated[EngineService, Tag("trtllm-engine")]
    | Annotated[PytorchService, Tag("trtllm")]
    | Annotated[NimService, Tag("nim")]
    | Annotated[VllmService, Tag("vllm")]
    | Annotated[SglangService, Tag("sglang")]
    | Annotated[LlamaCppService, Tag("llama.cpp")],
    Discriminator(
        _service_kind,
        custom_error_type="service_kind",
        custom_error_message="a service needs exactly one of: engine (trtllm-serve), checkpoint with "
        f"backend: pytorch, container (NIM); or name its stack: one of {', '.join(STACKS)}",
    ),
]


MAX_PROMPT_TOKENS = 1_048_576  # the longest prompt or context depth a bench asks for (state file and CLI)


class Bench(Strict):
    prompt: str = Field(
        default="In one paragraph: what is retrieval-augmented generation and when is it the wrong tool?",
        min_length=1,
        max_length=100_000,
        description="What every request asks (the field report's prompt by default).",
    )
    max_tokens: int = Field(default=200, ge=1, le=131072, description="Completion length asked of each request.")
    temperature: float = Field(
        default=0.0, ge=0, le=2, description="Sampling temperature (0: greedy, as the field report measured)."
    )
    concurrency: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [1, 2, 4, 8],
        min_length=1,
        description="Closed-loop levels: each keeps this many requests in flight.",
    )
    serial_requests: int = Field(  # 1000 × 200 tokens at 40 tok/s: 1.4 h already
        default=5, ge=1, le=1000, description="Requests one after another (streaming): TTFT, decode rate, tail latency."
    )
    warmup_requests: int = Field(default=1, ge=0, le=100, description="Requests sent first and not measured.")
    requests_per_level: int | None = Field(
        default=None, ge=1, le=100000, description="Requests per concurrency level; default 2 × concurrency."
    )
    rates: list[Annotated[float, Field(gt=0, le=10_000)]] = Field(
        default_factory=list,
        description="Open-loop runs after the concurrency levels: requests per second, leaving at Poisson "
        "arrival times whatever the server is doing (the load users make).",
    )
    requests_per_rate: int | None = Field(
        default=None, ge=2, le=100000, description="Requests per open-loop run; default 30 s of arrivals, at least 20."
    )
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="Per-request timeout, in seconds.")
    input_tokens: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PROMPT_TOKENS,
        description="Instead of prompt, every request a synthetic prompt of this many tokens as the server counts "
        "them (its usage.prompt_tokens), each opening with its own line so no cached prefix is reused.",
    )
    depths: list[Annotated[int, Field(ge=0, le=MAX_PROMPT_TOKENS)]] = Field(
        default_factory=list,
        description="Context depths (tokens) for the community's pp/tg table: at each, serial requests of depth + "
        "prompt_tokens tokens as the server counts them; prefill and generation t/s as mean ± sd.",
    )
    prompt_tokens: int = Field(
        default=2048,
        ge=1,
        le=MAX_PROMPT_TOKENS,
        description="At each depth, the prompt's own tokens after the context.",
    )
    ignore_eos: bool = Field(
        default=False,
        description="Ask for exactly max_tokens tokens (trtllm-serve and vLLM/NIM accept ignore_eos) for figures "
        "comparable across stacks; off, answers end at EOS as users get them.",
    )
    baseline: Name | None = Field(default=None, description="Service the delta table compares against.")


class Group(Strict):
    services: list[Name] = Field(default_factory=list, description="Services every host of the group serves.")


class Host(Strict):
    address: Address = Field(description="Where it is reached: an IPv4 address or a host name.")
    ssh_user: UnixUser = Field(
        default="nvidia", description="The operator account (DGX OS's first user); it uses sudo. Root has no SSH login."
    )
    ssh_port: Port = Field(default=22, description="Its SSH port.")
    ssh_key: AbsPath | None = Field(
        default=None, description="The private key to log in with (default: your agent and default keys)."
    )
    gpu: GpuName | Literal["detect"] | None = Field(
        default=None, description="Overrides fleet.gpu for this host; 'detect': learn it at preflight only."
    )
    groups: list[Name] = Field(default_factory=list, description="The groups it is in: it serves their services too.")
    services: list[Name] = Field(default_factory=list, description="Services it serves besides its groups'.")


class DesiredState(Strict):
    """The whole desired state of a fleet."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "spark-state"},
    )

    fleet: Fleet = Field(
        default_factory=Fleet,
        description="What every host is expected to have: its GPU and the memory kept for the OS.",
    )
    paths: Paths = Field(
        default_factory=Paths,
        description="Where spark-state writes on each host (artifacts, units, secrets) and the docker CLI it runs.",
    )
    images: dict[Name, ImageEntry] = Field(
        default_factory=dict,
        description="Container images by a short name: a reference (`name:tag`, or pinned `name:tag@sha256:...`) or {ref, trtllm_version, size_gb}.",
    )
    checkpoints: dict[Name, Checkpoint] = Field(
        default_factory=dict,
        description="Hugging Face checkpoints by a short name, downloaded and verified on the hosts that use them.",
    )
    engines: dict[Name, Engine] = Field(
        default_factory=dict,
        description="TensorRT-LLM engines built from a checkpoint inside an image, each build in a fingerprinted directory.",
    )
    services: dict[Name, Service] = Field(
        default_factory=dict,
        description="OpenAI-compatible endpoints by name, each a systemd unit running its stack's server in a container.",
    )
    bench: Bench = Field(
        default_factory=Bench,
        description="The bench a deploy verifies with (and `spark-state bench` runs): prompt, lengths, concurrency, rates.",
    )
    rollout: Rollout = Field(
        default_factory=Rollout,
        description="How upgrades go: canary hosts first, and a changed service that fails goes back to what it ran.",
    )
    monitoring: Monitoring | None = Field(
        default=None,
        description="Prometheus on one host scraping every service, every host's node exporter and the bench "
        "results (none: no monitoring is installed).",
    )
    groups: dict[Name, Group] = Field(
        default_factory=dict,
        description="Named sets of services that every host of the group serves (pyinfra groups too: --limit GROUP).",
    )
    hosts: dict[Name, Host] = Field(
        default_factory=dict, description="The Sparks by name: where each is reached and what it serves."
    )


AnyService = EngineService | PytorchService | NimService | VllmService | SglangService | LlamaCppService
# Services that serve a checkpoint directly (its weights on the host, no engine), in an image of their stack.
CHECKPOINT_SERVICES = (PytorchService, VllmService, SglangService, LlamaCppService)
# ... and of those, the ones whose image can download it (it ships Python and huggingface_hub).
DOWNLOADING_SERVICES = (PytorchService, VllmService, SglangService)


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
