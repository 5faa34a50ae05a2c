"""`spark-state prune INVENTORY [--keep N] [--yes]`: per host, what spark-state keeps there that nothing needs any
more — engine builds, checkpoint downloads, images, env files and kept units — with the space each frees.
Removes them only with --yes.

Kept, always: what the state wants on the host; whatever a unit refers to (installed, or kept for a rollback:
the rollback target); what a running container uses (its image, its mounts). With --keep N, also the N-1 newest
other builds of each engine and the images they were built with. Candidates are only spark-state's own: paths
under its root and secrets directories, and images of a repository the state or a unit names.

The decision is pure (`removable`), from the host's Snapshot and its plan; the removal is one command per host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .desired.model import DesiredState
from .observe.observation import artifacts_request, observe
from .on_host.probe import KeptDir, Snapshot
from .plan.host_plan import HostPlan
from .plan.images import local_ref
from .plan.quoting import sh_join


@dataclass(frozen=True)
class Removable:
    kind: str  # engine, checkpoint, image, file, interrupted build
    what: str  # for people
    target: str  # a path, or an image reference
    bytes: int
    why: str


@dataclass
class HostPrune:
    host: str
    address: str
    items: list[Removable]
    error: str | None = None
    removed: bool = False

    @property
    def bytes(self) -> int:
        return sum(i.bytes for i in self.items)


def _repository(ref: str) -> str:
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def _unit_texts(snapshot: Snapshot) -> list[str]:
    texts = [u.file.text for u in snapshot.units.values() if u.file and u.file.text]
    return texts + [f.text for f in snapshot.rollback.units.values() if f and f.text]


def _referenced(path: str, texts: Iterable[str], mounts: set[str]) -> bool:
    """A unit names the path (or something inside it), or a running container mounts it."""
    return any(path + "/" in t or f"{path}:" in t for t in texts) or any(
        m == path or m.startswith(path + "/") for m in mounts
    )


def removable(state: DesiredState, plan: HostPlan, snapshot: Snapshot, keep: int = 1) -> list[Removable]:
    """What nothing needs any more on this host (see the module's docstring for what is kept)."""
    texts = _unit_texts(snapshot)
    running = [c for c in snapshot.containers.values() if c.state == "running"]
    mounts = {m for c in running for m in c.mounts}
    found = snapshot.artifacts
    items: list[Removable] = []

    wanted_engines = {e.dir for e in plan.engines}
    kept_images = {i.local for i in plan.images} | {c.image for c in running if c.image}
    builds: dict[str, list[KeptDir]] = {}
    for build in found.engines:
        path, manifest = build.path, build.manifest
        if path in wanted_engines or _referenced(path, texts, mounts):
            if manifest and manifest.image:
                kept_images.add(manifest.image)
            continue
        if path.endswith(".partial") or not manifest:
            items.append(
                Removable(
                    "interrupted build",
                    f"{build.name} {path.rsplit('/', 1)[-1]}",
                    path,
                    build.bytes,
                    "a build that never finished",
                )
            )
            continue
        builds.setdefault(build.name, []).append(build)
    for name, older in builds.items():
        older.sort(key=lambda b: b.mtime, reverse=True)
        for i, build in enumerate(older):
            manifest = build.manifest
            assert manifest is not None  # builds without one were set aside above
            what = f"{name} {str(manifest.fingerprint)[:16]} (TensorRT-LLM {manifest.trtllm_version}, {manifest.image})"
            if i < keep - 1:
                kept_images.add(str(manifest.image))
                continue
            why = (
                "not in the state" if name not in {e.name for e in plan.engines} else "replaced, not a rollback target"
            )
            items.append(Removable("engine", what, build.path, build.bytes, why))

    wanted_checkpoints = {c.dir for c in plan.checkpoints}
    for copy in found.checkpoints:
        path = copy.path
        if path in wanted_checkpoints or _referenced(path, texts, mounts):
            continue
        manifest = copy.manifest
        what = f"{copy.name} {manifest.repo}@{manifest.revision}" if manifest else copy.name
        items.append(
            Removable(
                "checkpoint",
                what,
                path,
                copy.bytes,
                "not in the state" if manifest else "a download that never finished",
            )
        )

    wanted_files = set(plan.env_files)
    wanted_files |= {plan.rollback_unit(s) for s in plan.services} | {plan.rollback_env_file(s) for s in plan.services}
    for entry in found.files:
        path = entry.path
        if path in wanted_files or any(path in t for t in texts):
            continue
        kind = "kept unit" if path.endswith(".service") else "env file"
        items.append(
            Removable(
                "file",
                f"{kind} {path.rsplit('/', 1)[-1]}",
                path,
                entry.bytes,
                "of a service or checkpoint the state no longer has",
            )
        )

    ours = {_repository(i.ref) for i in state.images.values()}
    named = {t for image in found.images for t in image.tags if any(t in u for u in texts)}
    ours |= {_repository(t) for t in named}
    kept_images |= named
    kept_images = {local_ref(r) for r in kept_images}
    running_ids = {c.image for c in running}
    for image in found.images:
        tags = [t for t in image.tags if t != "<none>:<none>"]
        if not tags or not any(_repository(t) in ours for t in tags):
            continue  # not spark-state's: the user's own images are not ours to prune
        if any(t in kept_images for t in tags) or image.id in running_ids:
            continue
        items.append(
            Removable(
                "image",
                ", ".join(tags),
                " ".join(tags),
                image.bytes,
                "no unit, build or running container uses it",
            )
        )

    _assert_ours(plan, items)
    return items


def _assert_ours(plan: HostPlan, items: list[Removable]) -> None:
    """Paths outside spark-state's own directories are never candidates (a guard against a bad probe answer)."""
    roots = (f"{plan.root}/engines/", f"{plan.root}/checkpoints/", f"{plan.secrets_dir}/", f"{plan.rollback_dir}/")
    for item in items:
        if item.kind != "image" and (not item.target.startswith(roots) or "/../" in item.target):
            raise AssertionError(f"refusing to consider {item.target}: not under {', '.join(roots)}")


def removal_command(plan: HostPlan, items: list[Removable]) -> str:
    """One command that removes the items: directories and files, then image tags (docker refuses to remove an
    image a container uses — a last guard)."""
    paths = [i.target for i in items if i.kind != "image"]
    tags = [t for i in items if i.kind == "image" for t in i.target.split()]
    steps = []
    if paths:
        steps.append(sh_join(["rm", "-rf", "--", *paths]))
    if tags:
        steps.append(sh_join([plan.docker, "image", "rm", *tags]))
    return " && ".join(steps) or "true"


def inspect_host(state: DesiredState, address: str, data: dict[str, Any], keep: int) -> tuple[HostPlan, HostPrune]:
    from .remote import probe_host

    name = data["spark_host"]
    plan = observe(state, name, lambda request: probe_host(address, data, request), read_only=True).plan
    snapshot = probe_host(address, data, artifacts_request(plan))
    return plan, HostPrune(name, address, removable(state, plan, snapshot, keep))


def prune_host(state: DesiredState, address: str, data: dict[str, Any], keep: int, remove: bool) -> HostPrune:
    from . import writer_lock
    from .errors import HostError
    from .remote import connected, run

    try:
        if remove:  # a writer: one at a time per Spark, like a deploy
            writer_lock.hold(connected(address, data), data["spark_host"], wait=False)
        plan, result = inspect_host(state, address, data, keep)
        if remove and result.items:
            ok, stdout, stderr = run(address, data, removal_command(plan, result.items), timeout=600)
            if not ok:
                result.error = f"removal failed: {(stderr or stdout)[-500:]}"
            else:
                result.removed = True
        return result
    except HostError as exc:
        return HostPrune(data["spark_host"], address, [], error=str(exc))
