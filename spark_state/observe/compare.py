"""Desired (a HostPlan) against observed (a probe snapshot), as plain data. The deploy decides what to do from
these items; the drift check reports them. Pure: no SSH, no pyinfra."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..plan import quoting
from ..plan.host_plan import NIM_UID, UNIT_PREFIX, HostPlan, ServicePlan

MANIFEST = ".spark-state.json"


@dataclass(frozen=True)
class Item:
    host: str
    kind: str  # image, checkpoint, engine, unit, env, service, health, stale-unit
    name: str
    desired: str
    observed: str
    ok: bool


def manifest_path(directory: str) -> str:
    return f"{directory}/{MANIFEST}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def env_file_text(service: ServicePlan, environ: Mapping[str, str]) -> str | None:
    """The 0600 env file of a service: plain env, then secrets read from the control machine's environment.
    None when a secret is missing there (preflight reports it)."""
    lines = [quoting.env_file_line(k, v) for k, v in sorted(service.env.items())]
    for name in service.secrets:
        if name not in environ:
            return None
        lines.append(quoting.env_file_line(name, environ[name]))
    return "\n".join(lines) + "\n"


def probe_spec(plan: HostPlan, root: str, units_dir: str, with_health: bool = True) -> dict[str, Any]:
    """What to ask the host's probe for, given the plan."""
    trtllm_refs = sorted({e.image_ref for e in plan.engines} | {s.image_ref for s in plan.services
                                                                if s.kind == "trtllm-pytorch"})  # fmt: skip
    return {
        "gpu": True,
        "memory": True,
        "disk": root,
        "docker": True,
        "host": True,
        "baseline": plan.baseline_path,
        "images": sorted({i.ref for i in plan.images}),
        "probe": trtllm_refs,
        "manifests": [manifest_path(c.dir) for c in plan.checkpoints] + [manifest_path(e.dir) for e in plan.engines],
        "engine_dirs": sorted({e.dir.rsplit("/", 1)[0] for e in plan.engines}),
        "chat_templates": sorted({c.dir for c in plan.checkpoints}),
        "files": [s.env_file for s in plan.services if s.env_file],
        "owners": [s.cache_dir for s in plan.services if s.cache_dir],
        "units": {"dir": units_dir, "prefix": UNIT_PREFIX},
        "ports": [s.port for s in plan.services],
        "containers": UNIT_PREFIX,
        "health": [[s.port, s.health_path] for s in plan.services] if with_health else [],
    }


def manifest_state(snapshot: dict[str, Any], directory: str) -> tuple[dict[str, Any] | None, list[str]]:
    """(manifest, files it lists that are missing or changed size) for an artifact directory."""
    entry = (snapshot.get("manifests") or {}).get(manifest_path(directory))
    if not entry:
        return None, []
    return entry.get("manifest"), entry.get("missing") or []


def checkpoint_ok(snapshot: dict[str, Any], repo: str, revision: str, directory: str) -> tuple[bool, str]:
    manifest, missing = manifest_state(snapshot, directory)
    if manifest is None:
        return False, "not downloaded"
    if (manifest.get("repo"), manifest.get("revision")) != (repo, revision):
        return False, f"{manifest.get('repo')}@{manifest.get('revision')}"
    if missing:
        return False, f"files missing or changed: {', '.join(missing[:3])}"
    return True, f"{repo}@{revision} ({str(manifest.get('sha', ''))[:12]})"


def engine_ok(snapshot: dict[str, Any], fingerprint: str, directory: str, name: str) -> tuple[bool, str]:
    manifest, missing = manifest_state(snapshot, directory)
    if manifest is not None and manifest.get("fingerprint") == fingerprint and not missing:
        return True, f"{fingerprint[:16]} (TensorRT-LLM {manifest.get('trtllm_version')})"
    if manifest is not None and missing:
        return False, f"{fingerprint[:16]} built, but {', '.join(missing[:3])} missing or changed"
    others = [m for m in (snapshot.get("engine_builds") or {}).get(name, []) if m.get("fingerprint") != fingerprint]
    if others:
        latest = others[-1]
        return False, f"only {str(latest.get('fingerprint'))[:16]} (TensorRT-LLM {latest.get('trtllm_version')})"
    return False, "not built"


def compare(plan: HostPlan, snapshot: dict[str, Any], environ: Mapping[str, str]) -> list[Item]:
    items: list[Item] = []
    host = plan.host
    images = snapshot.get("images") or {}
    for image in plan.images:
        found = images.get(image.ref)
        if found is None:
            items.append(Item(host, "image", image.ref, "present", "absent", False))
            continue
        digest = (found.get("digests") or [found.get("id")])[0]
        observed = f"{digest}" + (f", TensorRT-LLM {found['trtllm_version']}" if found.get("trtllm_version") else "")
        version_ok = image.trtllm_version is None or found.get("trtllm_version") in (None, image.trtllm_version)
        desired = "present" + (f", TensorRT-LLM {image.trtllm_version}" if image.trtllm_version else "")
        items.append(Item(host, "image", image.ref, desired, observed, version_ok))
    for ckpt in plan.checkpoints:
        ok, observed = checkpoint_ok(snapshot, ckpt.repo, ckpt.revision, ckpt.dir)
        items.append(Item(host, "checkpoint", ckpt.name, f"{ckpt.repo}@{ckpt.revision}", observed, ok))
    for engine in plan.engines:
        ok, observed = engine_ok(snapshot, engine.fingerprint, engine.dir, engine.name)
        desired = f"{engine.fingerprint[:16]} (TensorRT-LLM {engine.trtllm_version})"
        items.append(Item(host, "engine", engine.name, desired, observed, ok))
    units = snapshot.get("units") or {}
    files = snapshot.get("files") or {}
    health = snapshot.get("health") or {}
    for svc in plan.services:
        unit = units.get(svc.unit_name)
        observed_sha = ((unit or {}).get("file") or {}).get("sha256")
        unit_ok = observed_sha == sha256(svc.unit_text)
        items.append(Item(host, "unit", svc.unit_name, f"sha256 {sha256(svc.unit_text)[:12]}",
                          "absent" if unit is None else f"sha256 {str(observed_sha)[:12]}", unit_ok))  # fmt: skip
        if svc.env_file:
            text = env_file_text(svc, environ)
            observed_env = files.get(svc.env_file)
            desired_env = "unknown (secret missing here)" if text is None else f"sha256 {sha256(text)[:12]}, 0600"
            ok = text is not None and observed_env is not None and observed_env.get("sha256") == sha256(text) \
                and observed_env.get("mode") == "0o600"
            seen = "absent" if observed_env is None else f"sha256 {observed_env['sha256'][:12]}, {observed_env['mode'][2:]}"
            items.append(Item(host, "env", svc.env_file, desired_env, seen, ok))
        if svc.cache_dir:
            owner = (snapshot.get("owners") or {}).get(svc.cache_dir)
            seen = "absent" if owner is None else f"owned by {owner[0]}:{owner[1]}"
            items.append(Item(host, "cache", svc.cache_dir, f"owned by {NIM_UID}:{NIM_UID}", seen,
                              owner == [NIM_UID, NIM_UID]))  # fmt: skip
        running = (snapshot.get("containers") or {}).get(svc.container_name) or {}
        if unit_ok and running.get("state") == "running" and running.get("identity") != svc.identity:
            items.append(Item(host, "service", f"{svc.name} container", f"started from unit {svc.identity}",
                              f"running an older version than installed ({running.get('identity') or 'unlabelled'})",
                              False))  # fmt: skip
        state = f"{(unit or {}).get('enabled', 'absent')}/{(unit or {}).get('active', 'absent')}"
        items.append(Item(host, "service", svc.name, "enabled/active", state, state == "enabled/active"))
        if str(svc.port) in health:
            answer = health[str(svc.port)]
            ok = answer.get(svc.health_path) == 200 and answer.get("/v1/models") == 200
            items.append(Item(host, "health", f"{svc.name} :{svc.port}", f"{svc.health_path} 200, /v1/models 200",
                              f"{svc.health_path} {answer.get(svc.health_path)}, /v1/models {answer.get('/v1/models')}",
                              ok))  # fmt: skip
    wanted = {s.unit_name for s in plan.services}
    for name, unit in sorted(units.items()):
        if name not in wanted:
            items.append(Item(host, "stale-unit", name, "absent", f"{unit.get('enabled')}/{unit.get('active')}", False))
    return items
