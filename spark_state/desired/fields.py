"""The state file's field types and what every service shares (pydantic v2): the pieces the schema (model.py) and
each serving stack's own service model (stacks/) are made of."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
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


def docker_shm_size(value: str) -> str:
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


def shell_arg_problem(value: str) -> str | None:
    """Why `value` cannot be one command-line argument, or None when it can."""
    if "\x00" in value:
        return "a NUL byte cannot be passed as a command-line argument"
    if len(value.encode()) > MAX_ARG_BYTES:
        return f"{len(value.encode())} bytes: Linux refuses a command-line argument over {MAX_ARG_BYTES} bytes (MAX_ARG_STRLEN)"
    return None


def _shell_arg(value: str) -> str:
    if problem := shell_arg_problem(value):
        raise ValueError(problem)
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


# Every upper bound on a latency an expectation can declare, named METRIC_PERCENTILE_ms: the bench judges it
# against that percentile of its METRIC_ms figure, and goodput takes each metric's largest bound as the objective
# one request must meet.
LATENCY_BOUNDS = (
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "itl_p95_ms",
    "itl_p99_ms",
    "tpot_p50_ms",
    "e2el_p99_ms",
)


def _latency_bound(what: str) -> Any:
    return Field(default=None, ge=0.1, le=600_000, description=f"Upper bound on {what}, in ms (0.1 ms .. 10 min).")


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
    # Tail latency over the serial run's requests, as vLLM's benchmark_serving.py defines each figure. Each bound
    # is also the per-request objective goodput counts against (the largest bound where one metric has two).
    ttft_p95_ms: float | None = _latency_bound("TTFT's 95th percentile")
    ttft_p99_ms: float | None = _latency_bound("TTFT's 99th percentile")
    itl_p95_ms: float | None = _latency_bound("the 95th percentile of inter-token latency (every gap between chunks)")
    itl_p99_ms: float | None = _latency_bound("the 99th percentile of inter-token latency (every gap between chunks)")
    tpot_p50_ms: float | None = _latency_bound("median time per output token after the first")
    e2el_p99_ms: float | None = _latency_bound("the 99th percentile of end-to-end latency (sent → last token)")
    goodput_pct: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="Lower bound on the share of requests (%) meeting every latency bound above as a per-request "
        "objective: its TTFT, each of its inter-token gaps, its TPOT and its end-to-end latency.",
    )


def secrets_field(reader: str) -> Any:
    return Field(
        default_factory=list,
        description=f"Env-var names delivered in a 0600 file: credentials {reader} documents reading, or names "
        "listed in allow_secrets.",
    )


def allow_secrets_field(reader: str) -> Any:
    return Field(
        default_factory=list,
        description=f"Secrets that are read although {reader} does not document them (each one a warning at "
        "validate): the operator's environment goes into a container only by name.",
    )


class ServiceBase(Strict):
    port: Port
    health_timeout_s: int | None = Field(
        default=None,
        ge=10,
        le=86400,
        description="How long a start may take before the service counts as failed (default 600 s for "
        "trtllm-serve, 1800 s for a NIM, whose first start downloads its model profile).",
    )
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, description="Plain environment for the container.")
    secrets: list[EnvName] = secrets_field("its stack (HF_TOKEN; NGC_API_KEY for a NIM, VLLM_API_KEY, LLAMA_API_KEY)")
    allow_secrets: list[EnvName] = allow_secrets_field("its stack")
    extra_args: list[ExtraArg] = Field(default_factory=list, description="Extra server flags, verbatim.")
    expect: Expect = Field(
        default_factory=Expect,
        description="What the bench must measure for the service to pass: upper bounds on latencies and memory, lower bounds on rates.",
    )
    memory_gib: float | None = Field(default=None, gt=0, le=4096, description="Memory budget; overrides the estimate.")
