"""What to ask a host, the one command that asks it, and the plan that follows from its answer. Pure: the caller
brings the way to run the command (pyinfra's fact in the deploy, the inventory's connection in drift).

The probe is spark_state/on_host/probe.py, run as `python3 -c` with a JSON spec; it answers one JSON document,
parsed once into a Snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..on_host import program
from ..plan.host_plan import HostPlan, plan_host
from ..plan.quoting import sh_word
from ..state.model import COMMIT_SHA, State
from ..state.names import UNIT_PREFIX
from .compare import manifest_path
from .snapshot import Snapshot

PROBE_PROGRAM = program("probe.py")


@dataclass(frozen=True)
class ProbeSpec:
    """The sections a probe gathers (see on_host/probe.py). Frozen and hashable: pyinfra passes it to the fact."""

    gpu: bool = False
    memory: bool = False
    disk: str | None = None
    docker: bool = False
    host: bool = False
    baseline: str | None = None
    images: tuple[str, ...] | None = None
    probe: tuple[str, ...] = ()  # images whose TensorRT-LLM version is read from inside them
    trtllm_cache: str | None = None
    read_only: bool = False  # starts no container and writes nothing (drift)
    manifests: tuple[str, ...] | None = None
    engine_dirs: tuple[str, ...] | None = None
    checkpoint_dirs: tuple[str, ...] | None = None
    chat_templates: tuple[str, ...] | None = None
    files: tuple[str, ...] | None = None
    owners: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None  # permission bits of these paths (the secrets directory)
    download_sizes: tuple[str, ...] = ()  # images whose download size is read from the registry when absent
    env_files_dir: str | None = None  # names of the env files kept there (stale ones are removed)
    units_dir: str | None = None
    units_prefix: str = UNIT_PREFIX
    rollback_dir: str | None = None
    artifacts: tuple[str, str] | None = None  # (root, secrets dir): everything kept there, with sizes (prune)
    ports: bool = False
    containers: str | None = None
    health: tuple[tuple[int, str], ...] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def probe_command(spec: ProbeSpec) -> str:
    """The shell command that runs the probe on a host (python3 and the standard library only)."""
    return f"python3 -c {sh_word(PROBE_PROGRAM)} {sh_word(spec.to_json())}"


def probe_spec(plan: HostPlan, read_only: bool = False, with_health: bool = True) -> ProbeSpec:
    """Everything the deploy and drift compare for `plan`, from one probe."""
    trtllm_refs = {e.image_ref for e in plan.engines} | {
        s.image_ref for s in plan.services if s.kind == "trtllm-pytorch"
    }
    env_files = [s.env_file for s in plan.services if s.env_file]
    env_files += [env for c in plan.checkpoints if (env := plan.checkpoint_env_file(c))]
    return ProbeSpec(
        gpu=True,
        memory=True,
        disk=plan.root,
        docker=True,
        host=True,
        baseline=plan.baseline_path,
        images=tuple(sorted({i.local for i in plan.images})),
        probe=tuple(sorted(trtllm_refs)),
        trtllm_cache=plan.trtllm_versions_dir,
        read_only=read_only,
        manifests=tuple(manifest_path(c.dir) for c in plan.checkpoints)
        + tuple(manifest_path(e.dir) for e in plan.engines),
        engine_dirs=tuple(sorted({e.dir.rsplit("/", 1)[0] for e in plan.engines})),
        checkpoint_dirs=tuple(sorted({c.dir.rsplit("/", 1)[0] for c in plan.checkpoints})),
        chat_templates=tuple(sorted({c.dir for c in plan.checkpoints})),
        files=tuple(env_files) + (plan.helper_path, plan.fetch_script_path, plan.converter_path),
        owners=tuple(s.cache_dir for s in plan.services if s.cache_dir),
        modes=(plan.secrets_dir,),
        download_sizes=() if read_only else tuple(sorted({i.ref for i in plan.images})),
        env_files_dir=plan.secrets_dir,
        units_dir=plan.units_dir,
        rollback_dir=plan.rollback_dir,
        ports=True,
        containers=UNIT_PREFIX,
        health=tuple((s.port, s.health_path) for s in plan.services) if with_health else (),
    )


def host_facts_spec(plan: HostPlan) -> ProbeSpec:
    """Only what a baseline records: GPU driver, docker, host versions and image digests."""
    return ProbeSpec(gpu=True, docker=True, host=True, images=tuple(sorted({i.local for i in plan.images})))


@dataclass(frozen=True)
class Observation:
    plan: HostPlan
    spec: ProbeSpec
    snapshot: Snapshot


def observe(state: State, host: str, probe: Callable[[ProbeSpec], Snapshot], read_only: bool = False) -> Observation:
    """Plan the host, probe it, and plan it again when the host knows better: an image carries another
    TensorRT-LLM than its tag says (the version inside feeds the engine fingerprints), or a checkpoint pinned to
    a commit is already here, downloaded under the branch or tag it was pinned from (it is used where it is:
    same bits, same engines and units) — probing once more for the new plan."""
    plan = plan_host(state, host)
    spec = probe_spec(plan, read_only)
    snapshot = probe(spec)
    probed = snapshot.trtllm_versions()
    held = held_under(state, plan, snapshot)
    if held or any(probed.get(i.local) not in (None, i.trtllm_version) for i in plan.images):
        state = with_revisions(state, held)
        plan = plan_host(state, host, probed)
        spec = probe_spec(plan, read_only)
        snapshot = probe(spec)
    return Observation(plan, spec, snapshot)


def held_under(state: State, plan: HostPlan, snapshot: Snapshot) -> dict[str, str]:
    """checkpoint → the revision name a pinned commit is held under on this host (when not under its sha)."""
    held = {}
    for ckpt in plan.checkpoints:
        if not COMMIT_SHA.match(ckpt.revision) or snapshot.manifests.get(manifest_path(ckpt.dir)):
            continue
        for copy in snapshot.checkpoint_copies.get(ckpt.name, []):
            if (copy.get("repo"), copy.get("sha")) == (ckpt.repo, ckpt.revision) and copy.get("revision"):
                held[ckpt.name] = str(copy["revision"])
                break
    return held


def with_revisions(state: State, revisions: dict[str, str]) -> State:
    """The state with these checkpoints' revisions replaced (each by a name for the same commit)."""
    if not revisions:
        return state
    checkpoints = {
        name: c.model_copy(update={"revision": revisions[name]}) if name in revisions else c
        for name, c in state.checkpoints.items()
    }
    return state.model_copy(update={"checkpoints": checkpoints})
