"""Desired (a HostPlan) against observed (a probe snapshot), as plain data. The deploy decides what to do from
these items; the drift check reports them. Pure: no SSH, no pyinfra."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..on_host.probe import Snapshot
from ..plan.quoting import env_file_text
from ..plan.units import ServicePlan
from ..stacks.nim import NIM_UID
from .found import ServiceFound, holds_text, sha256
from .observation import Observation


@dataclass(frozen=True)
class Item:
    host: str
    kind: str  # image, checkpoint, engine, unit, rollback, env, service, health, stale-unit, system-service, …
    name: str
    desired: str
    observed: str
    ok: bool
    unchecked: bool = False  # could not be checked from here (e.g. a secret not in this machine's environment)


def compare(observation: Observation, environ: Mapping[str, str]) -> list[Item]:
    plan, snapshot, found = observation.plan, observation.snapshot, observation.found
    items: list[Item] = []
    host = plan.host
    for image in plan.images:
        held = snapshot.images.get(image.local)
        if held is None:
            items.append(Item(host, "image", image.ref, "present", "absent", False))
            continue
        if not found.images[image.local]:
            items.append(
                Item(
                    host,
                    "image",
                    image.ref,
                    f"{image.local} at {image.digest}",
                    f"{image.local} is {', '.join(held.digests) or held.id}: the tag was re-pushed "
                    "or pulled without the pin",
                    False,
                )
            )
            continue
        digest = (held.digests or (held.id,))[0]
        observed = f"{digest}" + (f", TensorRT-LLM {held.trtllm_version}" if held.trtllm_version else "")
        version_ok = image.trtllm_version is None or held.trtllm_version in (None, image.trtllm_version)
        desired = "present" + (f", TensorRT-LLM {image.trtllm_version}" if image.trtllm_version else "")
        items.append(Item(host, "image", image.ref, desired, observed, version_ok))
    for ckpt in plan.checkpoints:
        download = found.checkpoints[ckpt.name]
        items.append(Item(host, "checkpoint", ckpt.name, f"{ckpt.repo}@{ckpt.revision}", download.seen, download.ready))
    for engine in plan.engines:
        build = found.engines[engine.name]
        desired = f"{engine.fingerprint[:16]} (TensorRT-LLM {engine.trtllm_version})"
        items.append(Item(host, "engine", engine.name, desired, build.seen, build.ready))
    for system in plan.system_services:
        daemon = snapshot.system_units.get(system.unit)
        status = daemon.status if daemon else "not installed"
        items.append(Item(host, "system-service", system.name, "enabled/active", status, status == "enabled/active"))
        for file in system.files:
            seen_file = snapshot.files.get(file.path)
            seen = "absent" if seen_file is None else f"sha256 {seen_file.sha256[:12]}"
            ok = holds_text(seen_file, file.text, "0o644")
            items.append(Item(host, "system-config", file.path, f"sha256 {sha256(file.text)[:12]}", seen, ok))
    for svc in plan.services:
        items += _service_items(host, svc, snapshot, found.services[svc.name], environ)
    wanted = {s.unit_name for s in plan.services}
    for name, unit in sorted(snapshot.units.items()):
        if name not in wanted:
            items.append(Item(host, "stale-unit", name, "absent", unit.status, False))
    return items


def _service_items(
    host: str, svc: ServicePlan, snapshot: Snapshot, found: ServiceFound, environ: Mapping[str, str]
) -> list[Item]:
    items = []
    unit = snapshot.units.get(svc.unit_name)
    observed_sha = unit.file.sha256 if unit and unit.file else None
    unit_ok = found.unit_current
    items.append(
        Item(
            host,
            "unit",
            svc.unit_name,
            f"sha256 {sha256(svc.unit_text)[:12]}",
            "absent" if unit is None else f"sha256 {str(observed_sha)[:12]}",
            unit_ok,
        )
    )
    rolled_back = snapshot.rollback.markers.get(svc.unit_name)
    if not unit_ok and rolled_back and rolled_back.desired_identity == svc.identity:
        items.append(
            Item(
                host,
                "rollback",
                svc.name,
                svc.serves,
                f"rolled back: desired {rolled_back.desired}, serving {rolled_back.serving} "
                f"({rolled_back.reason}, {rolled_back.at})",
                False,
            )
        )
    if svc.env_file:
        text = env_file_text(svc.env, svc.secrets, environ)
        seen_env = snapshot.files.get(svc.env_file)
        seen = "absent" if seen_env is None else f"sha256 {seen_env.sha256[:12]}, {seen_env.mode[2:]}"
        if text is None:  # what the file should hold is unknown here: not drift, and said so
            missing = ", ".join(name for name in svc.secrets if name not in environ)
            items.append(
                Item(
                    host, "env", svc.env_file, f"unknown: {missing} not set on this machine", seen, True, unchecked=True
                )
            )
        else:
            ok = holds_text(seen_env, text, "0o600")
            items.append(Item(host, "env", svc.env_file, f"sha256 {sha256(text)[:12]}, 0600", seen, ok))
    for path, text in svc.config_files.items():
        want, seen_file = sha256(text), snapshot.files.get(path)
        seen = "absent" if seen_file is None else f"sha256 {seen_file.sha256[:12]}"
        ok = holds_text(seen_file, text)
        items.append(Item(host, "options", path, f"sha256 {want[:12]}", seen, ok))
    if svc.cache_dir:
        owner = snapshot.owners.get(svc.cache_dir)
        seen = "absent" if owner is None else f"owned by {owner[0]}:{owner[1]}"
        items.append(
            Item(host, "cache", svc.cache_dir, f"owned by {NIM_UID}:{NIM_UID}", seen, owner == (NIM_UID, NIM_UID))
        )
    if found.lost_restart:
        running = snapshot.containers[svc.container_name]
        items.append(
            Item(
                host,
                "service",
                f"{svc.name} container",
                f"started from unit {svc.identity}",
                f"running an older version than installed ({running.identity or 'unlabelled'})",
                False,
            )
        )
    status = unit.status if unit else "absent/absent"
    items.append(Item(host, "service", svc.name, "enabled/active", status, status == "enabled/active"))
    if svc.port in snapshot.health:
        answer = snapshot.health[svc.port]
        healthy = found.answers
        # Up (or coming up) but not ready yet — refused, reset or 503 while it loads after a boot or restart. A 404 or
        # another answer is not "starting": something else answers there.
        loading = all(not isinstance(code, int) or code == 503 for code in answer.values())
        starting = not healthy and loading and unit is not None and unit.active in ("active", "activating")
        seen = f"{svc.health_path} {answer.get(svc.health_path)}, /v1/models {answer.get('/v1/models')}"
        items.append(
            Item(
                host,
                "health",
                f"{svc.name} :{svc.port}",
                f"{svc.health_path} 200, /v1/models 200",
                f"starting ({seen})" if starting else seen,
                healthy,
            )
        )
    return items
