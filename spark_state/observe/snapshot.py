"""What a host is, as typed data: the probe's JSON (spark_state/on_host/probe.py) parsed once, at the boundary.

Everything that decides from a host — preflight, compare, the baseline, the deploy's operations — reads a
`Snapshot`; none of them walks the probe's raw JSON. A section the probe was not asked for is empty (or None),
never missing. Malformed probe output is a `ProbeError`, raised here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProbeError


@dataclass(frozen=True)
class GpuFact:
    name: str
    compute_capability: str
    driver_version: str


@dataclass(frozen=True)
class MemoryFact:
    total_gib: float
    available_gib: float


@dataclass(frozen=True)
class DiskFact:
    path: str
    free_gb: float
    total_gb: float
    device: int | None = None  # st_dev of the path: paths on one file system share its free space

    def same_file_system(self, other: DiskFact) -> bool:
        return self.path == other.path or (self.device is not None and self.device == other.device)


@dataclass(frozen=True)
class DockerFact:
    present: bool
    running: bool = False
    version: str | None = None
    error: str | None = None
    nvidia_runtime: bool = False


@dataclass(frozen=True)
class HostVersions:
    """What a DGX OS upgrade changes under the services (the driver is in GpuFact, docker in DockerFact)."""

    cuda: str | None = None
    kernel: str | None = None
    os: str | None = None
    container_toolkit: str | None = None


@dataclass(frozen=True)
class ImageFact:
    id: str
    digests: tuple[str, ...] = ()
    trtllm_version: str | None = None


@dataclass(frozen=True)
class Artifact:
    """A completion manifest spark-state wrote, and the files it lists that are gone or changed size."""

    manifest: dict[str, Any]
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileFact:
    sha256: str
    mode: str  # "0o600"
    text: str | None = None  # units only; never secrets


@dataclass(frozen=True)
class UnitFact:
    file: FileFact | None
    active: str | None = None
    enabled: str | None = None

    @property
    def status(self) -> str:
        return f"{self.enabled or 'absent'}/{self.active or 'absent'}"


@dataclass(frozen=True)
class RollbackFact:
    """What a rollback restores (units by name, env files by service name, hashes only) and the rollbacks that
    happened (unit name → marker: desired, serving, reason, identity the deploy wanted)."""

    units: dict[str, FileFact | None] = field(default_factory=dict)
    env_files: dict[str, FileFact | None] = field(default_factory=dict)
    markers: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerFact:
    state: str | None
    image: str | None = None
    published: tuple[int, ...] = ()
    identity: str | None = None
    status: str | None = None  # docker's own words: "Up 2 hours", "Exited (1) 3 minutes ago"
    created: int | None = None  # unix time the container was created (started from its unit)
    mounts: tuple[str, ...] = ()  # host paths mounted into it


@dataclass(frozen=True)
class Snapshot:
    gpu: GpuFact | None = None
    memory: MemoryFact | None = None
    disk: DiskFact | None = None
    docker: DockerFact | None = None
    host: HostVersions = field(default_factory=HostVersions)
    baseline: Any = None  # the document as the host keeps it; observe.baseline.valid() decides whether it is one
    images: dict[str, ImageFact | None] = field(default_factory=dict)
    manifests: dict[str, Artifact | None] = field(default_factory=dict)
    engine_builds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checkpoint_copies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name → dir, repo, revision, sha
    chat_templates: dict[str, bool | None] = field(default_factory=dict)
    owners: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    modes: dict[str, str | None] = field(default_factory=dict)
    download_sizes: dict[str, int | None] = field(default_factory=dict)  # absent image ref → bytes (None: unknown)
    docker_disk: DiskFact | None = None  # the file system docker keeps images on
    env_files: tuple[str, ...] = ()
    files: dict[str, FileFact | None] = field(default_factory=dict)
    units: dict[str, UnitFact] = field(default_factory=dict)
    rollback: RollbackFact = field(default_factory=RollbackFact)
    listening: frozenset[int] = frozenset()
    containers: dict[str, ContainerFact] = field(default_factory=dict)
    health: dict[int, dict[str, int | str]] = field(default_factory=dict)
    artifacts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # engines, checkpoints, files, images

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> Snapshot:
        """The probe's JSON document as a Snapshot; ProbeError when it is not what the probe writes, or when the
        probe could not read part of the host (it names the section and why)."""
        errors = document.get("errors") if isinstance(document, Mapping) else None
        if errors:
            said = "; ".join(f"{section}: {why}" for section, why in sorted(dict(errors).items()))
            raise ProbeError(f"the probe could not read this host: {said}")
        try:
            return _parse(document)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ProbeError(f"the host's probe answered something unexpected: {type(exc).__name__}: {exc}") from exc

    def trtllm_versions(self) -> dict[str, str]:
        """image ref → the TensorRT-LLM version found inside it on this host (probed images only)."""
        return {ref: image.trtllm_version for ref, image in self.images.items() if image and image.trtllm_version}

    def file(self, path: str) -> FileFact | None:
        """A managed file or a unit file, by its path on the host."""
        if path in self.files:
            return self.files[path]
        unit = self.units.get(path.rsplit("/", 1)[-1])
        return unit.file if unit else None

    def answers(self, port: int, ready_path: str) -> bool:
        """The service on `port` answered 200 on its readiness path and on /v1/models."""
        answer = self.health.get(port) or {}
        return answer.get(ready_path) == 200 and answer.get("/v1/models") == 200


def _file(entry: Mapping[str, Any] | None) -> FileFact | None:
    return None if entry is None else FileFact(entry["sha256"], entry["mode"], entry.get("text"))


def _rollback(section: Mapping[str, Any]) -> RollbackFact:
    return RollbackFact(
        units={name: _file(entry) for name, entry in (section.get("units") or {}).items()},
        env_files={name.removesuffix(".env"): _file(entry) for name, entry in (section.get("env_files") or {}).items()},
        markers={
            name: dict(marker) for name, marker in (section.get("markers") or {}).items() if isinstance(marker, dict)
        },
    )


def _disk(entry: Any) -> DiskFact | None:
    if not entry:
        return None
    device = entry.get("device")
    return DiskFact(
        entry["path"], float(entry["free_gb"]), float(entry["total_gb"]), int(device) if device is not None else None
    )


def _parse(doc: Mapping[str, Any]) -> Snapshot:
    gpu, memory, disk, docker, host = (doc.get(k) for k in ("gpu", "memory", "disk", "docker", "host"))
    return Snapshot(
        gpu=GpuFact(gpu["name"], gpu["compute_capability"], gpu["driver_version"]) if gpu else None,
        memory=MemoryFact(float(memory["total_gib"]), float(memory["available_gib"])) if memory else None,
        disk=_disk(disk),
        docker=DockerFact(
            bool(docker.get("present")),
            bool(docker.get("running")),
            docker.get("version"),
            docker.get("error"),
            bool(docker.get("nvidia_runtime")),
        )
        if docker
        else None,
        host=HostVersions(**{k: host.get(k) for k in ("cuda", "kernel", "os", "container_toolkit")})
        if host
        else HostVersions(),
        baseline=doc.get("baseline"),
        images={
            ref: ImageFact(i["id"], tuple(i.get("digests") or ()), i.get("trtllm_version")) if i else None
            for ref, i in (doc.get("images") or {}).items()
        },
        manifests={
            path: Artifact(a["manifest"], tuple(a.get("missing") or ())) if a else None
            for path, a in (doc.get("manifests") or {}).items()
        },
        engine_builds={name: list(builds) for name, builds in (doc.get("engine_builds") or {}).items()},
        checkpoint_copies={
            name: [dict(c) for c in copies] for name, copies in (doc.get("checkpoint_copies") or {}).items()
        },
        chat_templates=dict(doc.get("chat_templates") or {}),
        owners={path: (int(o[0]), int(o[1])) if o else None for path, o in (doc.get("owners") or {}).items()},
        files={path: _file(entry) for path, entry in (doc.get("files") or {}).items()},
        modes={path: str(m) if m else None for path, m in (doc.get("modes") or {}).items()},
        download_sizes={
            ref: int(d["bytes"]) if "bytes" in d else None for ref, d in (doc.get("download_sizes") or {}).items()
        },
        docker_disk=_disk(doc.get("docker_disk")),
        env_files=tuple(str(n) for n in doc.get("env_files") or ()),
        units={
            name: UnitFact(_file(u.get("file")), u.get("active"), u.get("enabled"))
            for name, u in (doc.get("units") or {}).items()
        },
        rollback=_rollback(doc.get("rollback") or {}),
        listening=frozenset(int(p) for p in doc.get("listening") or ()),
        containers={
            name: ContainerFact(
                c.get("state"),
                c.get("image"),
                tuple(c.get("published") or ()),
                c.get("identity"),
                c.get("status"),
                c.get("created"),
                tuple(c.get("mounts") or ()),
            )
            for name, c in (doc.get("containers") or {}).items()
        },
        health={int(port): dict(answer) for port, answer in (doc.get("health") or {}).items()},
        artifacts={kind: [dict(entry) for entry in entries] for kind, entries in (doc.get("artifacts") or {}).items()},
    )
