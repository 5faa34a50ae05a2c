"""What to ask a host about its plan, and the plan that follows from its answer. Pure: the caller brings the way
to run the probe (pyinfra's fact in the deploy, the inventory's connection in drift, status and prune).

The probe itself — its sections, how a host reads them, the typed answer — is declared in on_host/probe.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..desired.model import DesiredState
from ..desired.names import UNIT_PREFIX
from ..on_host.probe import (
    ArtifactsAsked,
    HealthAsked,
    ImagesAsked,
    KeptAsked,
    ProbeRequest,
    Snapshot,
    UnitsAsked,
    manifest_path,
)
from ..plan.host_plan import HostPlan, plan_host
from .found import Found, found_for


def probe_request(plan: HostPlan, read_only: bool = False, with_health: bool = True) -> ProbeRequest:
    """Everything the deploy and drift compare for `plan`, from one probe (read_only: starts no container and
    writes nothing, as drift and status must)."""
    trtllm_refs = {e.image_ref for e in plan.engines} | {s.image_ref for s in plan.services if s.kind == "trtllm"}
    kept = KeptAsked(directory=plan.host_facts_dir, write=not read_only)
    pulls = None if read_only else tuple(sorted({i.ref for i in plan.images}))  # what a pull would fetch, and where
    return ProbeRequest(
        gpu=kept,
        memory=True,
        disk=plan.root,
        docker=True,
        host=kept,
        baseline=plan.baseline_path,
        images=ImagesAsked(
            refs=tuple(sorted({i.local for i in plan.images})),
            trtllm=tuple(sorted(trtllm_refs)),
            cache_dir=plan.trtllm_versions_dir,
            cached_only=read_only,
        ),
        manifests=tuple(manifest_path(c.dir) for c in plan.checkpoints)
        + tuple(manifest_path(e.dir) for e in plan.engines),
        engine_builds=tuple(sorted({e.dir.rsplit("/", 1)[0] for e in plan.engines})),
        checkpoint_copies=tuple(sorted({c.dir.rsplit("/", 1)[0] for c in plan.checkpoints})),
        chat_templates=tuple(sorted({c.dir for c in plan.checkpoints})),
        files=(
            *plan.env_files,
            *plan.config_files,
            *(f.path for s in plan.system_services for f in s.files),
            *([plan.bench_metrics.path] if plan.bench_metrics else []),
            plan.helper_path,
            plan.fetch_script_path,
            plan.converter_path,
        ),
        owners=tuple(s.cache_dir for s in plan.services if s.cache_dir),
        modes=(plan.secrets_dir,),
        download_sizes=pulls,
        docker_disk=pulls,
        env_files=plan.secrets_dir,
        units=UnitsAsked(directory=plan.units_dir, prefix=UNIT_PREFIX),
        rollback=plan.rollback_dir,
        listening=True,
        containers=UNIT_PREFIX,
        health=tuple(HealthAsked(port=s.port, ready_path=s.health_path) for s in plan.services) if with_health else (),
        secrets_dir=plan.secrets_dir,
        system_units=tuple(s.unit for s in plan.system_services) or None,
    )


def host_facts_request(plan: HostPlan) -> ProbeRequest:
    """Only what a baseline records: GPU driver, docker, host versions, image digests, and what the bench verified
    (the services' containers and env files)."""
    kept = KeptAsked(directory=plan.host_facts_dir)
    return ProbeRequest(
        gpu=kept,
        docker=True,
        host=kept,
        images=ImagesAsked(refs=tuple(sorted({i.local for i in plan.images}))),
        files=(*(s.env_file for s in plan.services if s.env_file), *plan.config_files),
        containers=UNIT_PREFIX,
    )


def artifacts_request(plan: HostPlan) -> ProbeRequest:
    """What prune decides from: everything kept under the plan's root and secrets directories, with the units
    and containers that may still use it."""
    return ProbeRequest(
        artifacts=ArtifactsAsked(root=plan.root, secrets_dir=plan.secrets_dir),
        units=UnitsAsked(directory=plan.units_dir, prefix=UNIT_PREFIX),
        rollback=plan.rollback_dir,
        containers=UNIT_PREFIX,
    )


@dataclass(frozen=True)
class Observation:
    plan: HostPlan
    request: ProbeRequest
    snapshot: Snapshot
    found: Found  # the snapshot read against the plan


def observe(
    state: DesiredState,
    host: str,
    probe: Callable[[ProbeRequest], Snapshot],
    read_only: bool = False,
    addresses: Mapping[str, str] | None = None,
) -> Observation:
    """Plan the host (`addresses`: where the inventory reaches each host, for what its Prometheus scrapes), probe
    it, and plan it again when the host knows better: an image carries another
    TensorRT-LLM than its tag says (the version inside feeds the engine fingerprints), or a checkpoint pinned to
    a commit is already here, downloaded under the branch or tag it was pinned from (it is used where it is:
    same bits, same engines and units) — probing once more for the new plan."""
    probed: dict[str, str] = {}
    for _ in range(2):  # a second round only when the first taught the plan something
        plan = plan_host(state, host, probed, addresses)
        request = probe_request(plan, read_only)
        snapshot = probe(request)
        found = found_for(plan, snapshot)
        versions, held = found.trtllm_versions, found.held_under
        if not held and all(versions.get(i.local) in (None, i.trtllm_version) for i in plan.images):
            break
        probed = versions
        revised = {n: c.model_copy(update={"revision": held.get(n, c.revision)}) for n, c in state.checkpoints.items()}
        state = state.model_copy(update={"checkpoints": revised})
    return Observation(plan, request, snapshot, found)
