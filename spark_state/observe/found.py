"""What a host holds of its plan: the probe's answer read against the plan once, as plain data that the
operations, preflight, drift and status look up by name (as pyinfra's operations read their facts). Each
reading of the answer is declared here and nowhere else. Pure: no SSH, no pyinfra."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..desired.model import COMMIT_SHA
from ..on_host.probe import FileFact, Manifest, Snapshot, UnitFact, manifest_path
from ..plan.host_plan import HostPlan
from ..plan.units import unit_serves


@dataclass(frozen=True)
class ArtifactFound:
    """A checkpoint download or an engine build: ready as the plan needs it, and what is there, in words."""

    ready: bool
    seen: str


@dataclass(frozen=True)
class ServiceFound:
    unit: UnitFact | None  # None: no unit file of that name
    unit_current: bool  # the unit file holds exactly the planned text
    lost_restart: bool  # the unit is current, but its container runs from another one (a restart a run lost)
    answers: bool  # readiness path and /v1/models answered 200
    previous: str | None  # what a rollback would serve again (None: nothing to go back to)
    marked: bool  # an earlier deploy rolled it back (its marker is on the host)

    @property
    def active(self) -> bool:
        return self.unit is not None and self.unit.active == "active"

    @property
    def enabled(self) -> bool:
        return self.unit is not None and self.unit.enabled == "enabled"


@dataclass(frozen=True)
class Found:
    images: dict[str, bool] = field(default_factory=dict)  # local name → held, with the digest the state pins
    checkpoints: dict[str, ArtifactFound] = field(default_factory=dict)
    engines: dict[str, ArtifactFound] = field(default_factory=dict)
    files: dict[str, FileFact | None] = field(default_factory=dict)  # managed files and unit files, by path
    services: dict[str, ServiceFound] = field(default_factory=dict)
    trtllm_versions: dict[str, str] = field(default_factory=dict)  # local image name → the version inside it
    secrets_dir_refusal: str | None = None  # why spark-state must not write env files there (None: it may)
    # checkpoint → the revision its pinned commit is held under
    held_under: dict[str, str] = field(default_factory=dict)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def holds_text(found: FileFact | None, text: str, mode: str | None = None) -> bool:
    """The file is there with exactly `text` (and `mode`, "0o600", when given)."""
    return found is not None and found.sha256 == sha256(text) and mode in (None, found.mode)


def found_for(plan: HostPlan, snapshot: Snapshot) -> Found:
    """The snapshot read against the plan: one entry per image, checkpoint, engine, file and service it names."""
    files = dict(snapshot.files)
    images = {}
    for image in plan.images:
        held = snapshot.images.get(image.local)
        images[image.local] = held is not None and (
            image.digest is None or any(d.endswith(f"@{image.digest}") for d in held.digests)
        )
    checkpoints = {c.name: _checkpoint(snapshot, c.repo, c.revision, c.dir, c.tokenizer_only) for c in plan.checkpoints}
    engines = {e.name: _engine(snapshot, e.fingerprint, e.dir, e.name) for e in plan.engines}
    held_under, versions = _held_under(plan, snapshot), trtllm_versions(snapshot)
    services = {}
    for svc in plan.services:
        unit = snapshot.units.get(svc.unit_name)
        installed = files[svc.unit_path] = unit.file if unit else files.get(svc.unit_path)
        current = holds_text(installed, svc.unit_text)
        running = snapshot.containers.get(svc.container_name)
        lost = (
            current
            and bool(svc.identity)
            and running is not None
            and running.state == "running"
            and running.identity != svc.identity
        )
        answer = snapshot.health.get(svc.port) or {}
        kept = snapshot.rollback.units.get(svc.unit_name)
        previous = None
        if installed is not None and not current:  # the unit_file operation keeps it for a rollback
            previous = _serves(installed)
        elif kept is not None and lost:  # the new unit has not run yet: what an earlier run kept
            previous = _serves(kept)
        services[svc.name] = ServiceFound(
            unit=unit,
            unit_current=current,
            lost_restart=lost,
            answers=answer.get(svc.health_path) == 200 and answer.get("/v1/models") == 200,
            previous=previous,
            marked=svc.unit_name in snapshot.rollback.markers,
        )
    return Found(
        images=images,
        checkpoints=checkpoints,
        engines=engines,
        files=files,
        services=services,
        trtllm_versions=versions,
        held_under=held_under,
        secrets_dir_refusal=snapshot.secrets_dir.refusal() if snapshot.secrets_dir else None,
    )


def _serves(unit: FileFact) -> str:
    """What a unit file serves, in words (its `# Serves:` line, else its hash)."""
    return unit_serves(unit.text) or f"the unit before (sha256 {unit.sha256[:12]})"


def trtllm_versions(snapshot: Snapshot) -> dict[str, str]:
    """local image name → the TensorRT-LLM version found inside it on this host (probed images only)."""
    return {ref: image.trtllm_version for ref, image in snapshot.images.items() if image and image.trtllm_version}


def _artifact(snapshot: Snapshot, directory: str) -> tuple[Manifest | None, tuple[str, ...]]:
    """(manifest, files it lists that are missing or changed size) of an artifact directory."""
    entry = snapshot.manifests.get(manifest_path(directory))
    return (entry.manifest, entry.missing) if entry else (None, ())


def _checkpoint(snapshot: Snapshot, repo: str, revision: str, directory: str, tokenizer_only: bool) -> ArtifactFound:
    """A download as the plan needs it is complete and verified, and the whole checkpoint unless only its
    tokenizer is wanted (a tokenizer-only copy does not do to build from)."""
    manifest, missing = _artifact(snapshot, directory)
    if manifest is None:
        return ArtifactFound(False, "not downloaded")
    if (manifest.repo, manifest.revision) != (repo, revision):
        return ArtifactFound(False, f"{manifest.repo}@{manifest.revision}")
    if manifest.scope == "tokenizer" and not tokenizer_only:
        return ArtifactFound(False, f"{repo}@{revision}: tokenizer files only, the weights are needed")
    if missing:
        return ArtifactFound(False, f"files missing or changed: {', '.join(missing[:3])}")
    scope = " tokenizer only" if manifest.scope == "tokenizer" else ""
    return ArtifactFound(True, f"{repo}@{revision} ({str(manifest.sha or '')[:12]}){scope}")


def _engine(snapshot: Snapshot, fingerprint: str, directory: str, name: str) -> ArtifactFound:
    """The engine build for `fingerprint`, complete."""
    manifest, missing = _artifact(snapshot, directory)
    if manifest is not None and manifest.fingerprint == fingerprint and not missing:
        return ArtifactFound(True, f"{fingerprint[:16]} (TensorRT-LLM {manifest.trtllm_version})")
    if manifest is not None and missing:
        return ArtifactFound(False, f"{fingerprint[:16]} built, but {', '.join(missing[:3])} missing or changed")
    others = [m for m in snapshot.engine_builds.get(name, ()) if m.fingerprint != fingerprint]
    if others:
        latest = others[-1]
        return ArtifactFound(False, f"only {str(latest.fingerprint)[:16]} (TensorRT-LLM {latest.trtllm_version})")
    return ArtifactFound(False, "not built")


def _held_under(plan: HostPlan, snapshot: Snapshot) -> dict[str, str]:
    """checkpoint → the revision name a commit it pins is downloaded under on this host (when not under its sha):
    the download is used where it is (same bits, same engines and units)."""
    held = {}
    for ckpt in plan.checkpoints:
        if not COMMIT_SHA.match(ckpt.revision) or snapshot.manifests.get(manifest_path(ckpt.dir)):
            continue
        for copy in snapshot.checkpoint_copies.get(ckpt.name, []):
            if (copy.repo, copy.sha) == (ckpt.repo, ckpt.revision) and copy.revision:
                held[ckpt.name] = copy.revision
                break
    return held
