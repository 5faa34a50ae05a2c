"""Checks of what a state would do to a host, beyond its own consistency: names that collide once derived,
paths that would overwrite the system or leak secrets, environment that hijacks the runtime, the same machine
declared twice, ports that are taken, answers that cannot fit an engine. Pure; findings as in checks.py."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterator

from ..stacks import STACKS
from .model import (
    COMMIT_SHA,
    FETCH_SECRETS,
    DesiredState,
    EngineService,
    LlamaCppService,
    NimService,
    PytorchService,
    SglangService,
    VllmService,
    host_services,
)
from .names import claims

Path = tuple[str | int, ...]
Report = Callable[[Path, str], None]

# Directories a state must never take as its own (they would be filled, pruned or shadowed).
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/lib64",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/lib",
        "/var/log",
        "/var/tmp",
        "/etc/systemd",
        "/etc/systemd/system",
        "/var/lib/docker",
    }
)
# Kernel and volatile file systems: gone at reboot or not files at all.
VOLATILE_TREES = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp")
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# systemd.unit(5), system unit search path: where an administrator's units persist and are loaded at boot.
UNIT_DIRS = ("/etc/systemd/system", "/usr/local/lib/systemd/system")
# Environment that changes which program or library runs, or what a shell or Python does before our code runs.
HIJACKING_ENV = frozenset(
    {
        "PATH",
        "IFS",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "HOME",
        "SHELL",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCPATH",
        "NLSPATH",
        "NODE_OPTIONS",
        "PERL5OPT",
        "PERL5LIB",
        "RUBYOPT",
        "TMPDIR",
        "_",  # the shell's last command: whatever reads it is misled
    }
)
HIJACKING_PREFIXES = ("LD_", "PYTHON", "MALLOC_", "DYLD_")
# CUDA's profiler injection loads a library into every CUDA process (CUDA_INJECTION64_PATH: like LD_PRELOAD, CUPTI
# docs); the NVIDIA container runtime reads NVIDIA_* from a container's environment to choose its devices,
# capabilities and requirement checks (nvidia-container-toolkit: NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES,
# NVIDIA_REQUIRE_*, NVIDIA_DISABLE_REQUIRE).
RUNTIME_ENV = frozenset({"CUDA_INJECTION64_PATH", "CUDA_INJECTION32_PATH"})
RUNTIME_PREFIXES = ("NVIDIA_",)
# Where a service's traffic goes and which certificates it trusts: set, they can route NIM's NGC key or a hub
# token through another party (curl, requests, Python's ssl and urllib read these).
INTERCEPTING_ENV = frozenset(
    {
        *(f"{scheme}_proxy" for scheme in ("http", "https", "all", "no", "ftp")),
        *(f"{scheme}_PROXY" for scheme in ("HTTP", "HTTPS", "ALL", "NO", "FTP")),
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
    }
)
# A value shaped like a credential: NGC API keys (nvapi-), Hugging Face tokens (hf_), OpenAI-style keys (sk-),
# GitHub tokens, AWS access keys, JWTs.
_TOKEN_VALUE = re.compile(
    r"^(?:nvapi-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|AKIA[A-Z0-9]{16}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\..*)$"
)
_SECRET_NAME = re.compile(r"(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
# Ports a DGX OS host's own daemons hold: sshd, DNS, rpcbind, CUPS, the docker API, mDNS.
SYSTEM_PORTS = {
    22: "sshd",
    53: "DNS",
    111: "rpcbind",
    631: "CUPS",
    2375: "the docker API",
    2376: "the docker API",
    5353: "mDNS (avahi)",
}
# Chat-template overhead of a Llama 3 prompt (system/user/assistant headers) and a typical English rate: a token
# is about 4 bytes. An estimate: it only has to say an answer cannot fit, and the margin is stated.
PROMPT_TEMPLATE_TOKENS = 30
BYTES_PER_TOKEN = 4


def check(state: DesiredState, report: Report, warn: Report) -> None:
    _collisions(state, report)
    _paths(state, report)
    _environment(state, report, warn)
    _hosts(state, report, warn)
    _sequence_lengths(state, report)
    _revisions(state, warn)


def _collisions(state: DesiredState, report: Report) -> None:
    taken: dict[tuple[str, str], str] = {}
    for section in ("checkpoints", "engines", "services"):
        for name in getattr(state, section):
            for what, derived in claims(section, name, state.paths.secrets):
                owner = f"{section[:-1]} {name!r}"
                other = taken.setdefault((what, derived), owner)
                if other != owner:
                    report(
                        (section, name), f"{owner} and {other} would both be the {what} {derived} on a host; rename one"
                    )


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _paths(state: DesiredState, report: Report) -> None:
    paths = state.paths
    system = {
        field
        for field in ("root", "units", "secrets")
        if getattr(paths, field) in SYSTEM_DIRS and not (field == "units" and paths.units in UNIT_DIRS)
    }
    for field in sorted(system):
        report(
            ("paths", field),
            f"{getattr(paths, field)} is a system directory: spark-state would fill and prune "
            "it; use a directory of its own (e.g. /var/lib/spark-state)",
        )
    if paths.docker in SYSTEM_DIRS:
        report(
            ("paths", "docker"),
            f"{paths.docker} is a directory; paths.docker is the docker CLI itself (e.g. /usr/bin/docker)",
        )
    for field in ("root", "secrets"):
        value = getattr(paths, field)
        if field not in system and any(_under(value, tree) for tree in VOLATILE_TREES):
            report(("paths", field), f"{value} is on a volatile or kernel file system: it is gone after a reboot")
    if paths.units not in UNIT_DIRS and "units" not in system:
        where = (
            "is volatile (a tmpfs): units there are gone after a reboot"
            if _under(paths.units, "/run")
            else "is not where systemd loads units from at boot"
        )
        report(("paths", "units"), f"{paths.units} {where}; use one of {', '.join(UNIT_DIRS)} (systemd.unit(5))")
    if any(_under(paths.secrets, tree) for tree in WORLD_WRITABLE):
        report(
            ("paths", "secrets"),
            f"{paths.secrets} is in a world-writable directory: anyone on the host could "
            "plant or swap a secrets file there",
        )
    if system:
        return  # the overlaps below follow from the system directory already reported
    for other in ("units", "root"):
        value = getattr(paths, other)
        if _under(paths.secrets, value) or _under(value, paths.secrets):
            why = "units are world-readable" if other == "units" else "its directories are mounted into containers"
            report(("paths", "secrets"), f"{paths.secrets} shares a directory with paths.{other} ({value}): {why}")
    if _under(paths.units, paths.root) or _under(paths.root, paths.units):
        report(("paths", "root"), f"{paths.root} and paths.units ({paths.units}) overlap")


def hijacks(name: str) -> bool:
    return name in HIJACKING_ENV or name.startswith(HIJACKING_PREFIXES)


def _env_names(state: DesiredState) -> Iterator[tuple[Path, str]]:
    for cname, ckpt in state.checkpoints.items():
        yield from ((("checkpoints", cname, "secrets", i), n) for i, n in enumerate(ckpt.secrets))
    for sname, svc in state.services.items():
        yield from ((("services", sname, "secrets", i), n) for i, n in enumerate(svc.secrets))
        yield from ((("services", sname, "env", n), n) for n in svc.env)


def _env_refusal(name: str) -> str | None:
    """Why `name` can never be set through a state file (as env or as a secret); None when it can."""
    if hijacks(name):
        return (
            f"{name} changes which programs and libraries run (or what the shell or Python does "
            "before them); it cannot be set through a state file"
        )
    if name in RUNTIME_ENV or name.startswith(RUNTIME_PREFIXES):
        return (
            f"{name} controls the GPU runtime itself (a library injected into every CUDA process, or the "
            "devices and checks of the NVIDIA container runtime); it cannot be set through a state file"
        )
    if name in INTERCEPTING_ENV:
        return (
            f"{name} decides where the service's traffic goes or which certificates it trusts (it could "
            "hand its keys to another party); it cannot be set through a state file"
        )
    return None


def _environment(state: DesiredState, report: Report, warn: Report) -> None:
    for cname, ckpt in state.checkpoints.items():
        where = ("checkpoints", cname)
        _secrets_read(
            where, ckpt.secrets, ckpt.allow_secrets, FETCH_SECRETS, "the download (huggingface_hub)", report, warn
        )
    for sname, svc in state.services.items():
        stack = STACKS[svc.stack]
        _secrets_read(("services", sname), svc.secrets, svc.allow_secrets, stack.secrets, stack.name, report, warn)
    for path, name in _env_names(state):
        if (why := _env_refusal(name)) is not None:
            report(path, why)
    for sname, svc in state.services.items():
        for name in sorted(set(svc.env) & set(svc.secrets)):
            report(
                ("services", sname, "env", name),
                f"{name} is both in env and in secrets: the env file would hold it twice; keep one",
            )
    for sname, svc in state.services.items():
        for name, value in svc.env.items():
            if _TOKEN_VALUE.match(value) or (_SECRET_NAME.search(name) and len(value) >= 8):
                warn(
                    ("services", sname, "env", name),
                    f"{name} looks like a credential in plain env (it is shown "
                    f"by plan and kept in the state file): list it under "
                    f"secrets: [{name}] and set it where the deploy runs",
                )
        if isinstance(svc, NimService) and "NGC_API_KEY" not in svc.secrets:
            warn(
                ("services", sname, "secrets"),
                "a NIM needs NGC_API_KEY to download its model profile: add "
                "secrets: [NGC_API_KEY] (the deploy refuses it without)",
            )


def _secrets_read(
    where: Path,
    secrets: list[str],
    allowed: list[str],
    documented: frozenset[str],
    reader: str,
    report: Report,
    warn: Report,
) -> None:
    """A secret is the deploying operator's environment shipped into a container: only the credentials its reader
    documents, or a name the state allows on purpose (a warning)."""
    known = ", ".join(sorted(documented)) or "none"
    for i, name in enumerate(secrets):
        if name in documented or _env_refusal(name) is not None:  # a refused name has its own reason
            continue
        if name not in allowed:
            report(
                (*where, "secrets", i),
                f"{name} is not a credential {reader} documents reading (it reads: {known}); a secret is your "
                f"environment shipped into the container, so only what it reads belongs there. If it "
                f"does read {name}, add allow_secrets: [{name}]",
            )
    for i, name in enumerate(allowed):
        if name not in secrets:
            report(
                (*where, "allow_secrets", i),
                f"{name} is not in secrets: allow_secrets only lets a listed secret through",
            )
        elif name in documented:
            warn((*where, "allow_secrets", i), f"{name} needs no allow_secrets: {reader} documents reading it")
        elif _env_refusal(name) is None:
            warn(
                (*where, "allow_secrets", i),
                f"{name} is not a credential {reader} documents reading; it is delivered because allow_secrets "
                "names it",
            )


def machine_key(address: str) -> str:
    """One spelling per machine: names lower-case without the final dot (IPv4 addresses are already canonical:
    Python refuses leading zeros, and IPv6 hosts are refused by the model)."""
    return address.lower().rstrip(".")


def is_this_machine(address: str) -> bool:
    """localhost, or a loopback address: the control machine itself."""
    name = address.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hosts(state: DesiredState, report: Report, warn: Report) -> None:
    seen: dict[tuple[str, int], str] = {}
    for hname, host in state.hosts.items():
        if len(state.hosts) > 1 and is_this_machine(host.address):
            # One Spark may run spark-state itself (its only host is 127.0.0.1); in a fleet, this machine is
            # not one of the Sparks by accident.
            report(
                ("hosts", hname, "address"),
                f"{host.address} is this machine, in a fleet of several Sparks: give the Spark's address",
            )
        key = (machine_key(host.address), host.ssh_port)
        other = seen.setdefault(key, hname)
        if other != hname:
            report(
                ("hosts", hname, "address"),
                f"{host.address} port {host.ssh_port} is the same machine as host "
                f"{other!r} ({state.hosts[other].address})",
            )
        for sname in host_services(state, hname):
            svc = state.services.get(sname)
            if svc is None:
                continue
            if svc.port == host.ssh_port:
                report(("services", sname, "port"), f"port {svc.port} is the SSH port of host {hname!r}: sshd holds it")
            elif svc.port in SYSTEM_PORTS:
                warn(
                    ("services", sname, "port"),
                    f"port {svc.port} is usually held by {SYSTEM_PORTS[svc.port]} on "
                    f"a DGX OS host ({hname!r}); the service would not start",
                )


def prompt_tokens(prompt: str) -> int:
    """An estimate of the bench prompt's tokens once the chat template wraps it."""
    return math.ceil(len(prompt.encode()) / BYTES_PER_TOKEN) + PROMPT_TEMPLATE_TOKENS


def _sequence_lengths(state: DesiredState, report: Report) -> None:
    """The bench asks every service for max_tokens after its prompt; an engine built for shorter sequences
    refuses the request (trtllm-serve: 400), so every figure would be missing."""
    need = state.bench.max_tokens + prompt_tokens(state.bench.prompt)
    for sname, svc in state.services.items():
        limit, source = None, f"service {sname!r}"
        if isinstance(svc, (EngineService, PytorchService)) and svc.max_seq_len:
            limit = svc.max_seq_len
        elif isinstance(svc, VllmService) and svc.max_model_len:
            limit = svc.max_model_len
        elif isinstance(svc, SglangService) and svc.context_length:
            limit = svc.context_length
        elif isinstance(svc, LlamaCppService) and svc.ctx_size:
            limit = svc.ctx_size
        elif isinstance(svc, EngineService) and svc.engine in state.engines:
            limit, source = state.engines[svc.engine].max_seq_len, f"engine {svc.engine!r}"
        if limit is not None and need > limit:
            report(
                ("bench", "max_tokens"),
                f"{state.bench.max_tokens} tokens after a prompt of about "
                f"{need - state.bench.max_tokens} tokens do not fit the max_seq_len "
                f"{limit} of {source} (service {sname!r})",
            )


def _revisions(state: DesiredState, warn: Report) -> None:
    for cname, ckpt in state.checkpoints.items():
        source = state.checkpoints.get(ckpt.tokenizer_from or "")
        if source and COMMIT_SHA.fullmatch(ckpt.revision) and not COMMIT_SHA.fullmatch(source.revision):
            warn(
                ("checkpoints", cname, "tokenizer_from"),
                f"{cname!r} is pinned to a commit but takes its tokenizer "
                f"from {ckpt.tokenizer_from!r} at {source.revision!r}, "
                "which moves; pin that one too (spark-state pin)",
            )
