"""A host's baseline: what it was (driver, CUDA, kernel, OS, docker, container toolkit, image digests) and how
fast its services were when it last deployed cleanly — and what has changed since. Pure: plain data in, items out.

The deploy records a baseline after a run in which every service of the host passed its verification bench
(on the host at HostPlan.baseline_path, and in the control machine's history); drift and the next deploy compare the
host's probe with it, so an upgrade that leaves every file in place still shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..local_files import state_home, write_atomically
from ..on_host.probe import Snapshot
from ..plan.host_plan import HostPlan
from .compare import Item

if TYPE_CHECKING:  # the bench's results are read here, never built: the deploy does not import the bench
    from ..bench.results import EndpointResult

BASELINE_FORMAT = "spark-state/baseline/v1"

# Host facts, in the order they are reported, with the words a person reads them by.
HOST_FACTS = {
    "driver": "NVIDIA driver",
    "cuda": "CUDA (driver API)",
    "kernel": "kernel",
    "os": "OS release",
    "docker": "docker engine",
    "container_toolkit": "NVIDIA container toolkit",
}
NO_BASELINE = "no baseline recorded yet"
TTFT = "TTFT p50 (ms)"
DECODE = "decode (tok/s)"
LOWER_IS_BETTER = frozenset({TTFT})


def host_facts(snapshot: Snapshot) -> dict[str, str | None]:
    """The baseline's host fields from a probe snapshot (sections gpu, docker and host)."""
    return {
        "driver": snapshot.gpu.driver_version if snapshot.gpu else None,
        "cuda": snapshot.host.cuda,
        "kernel": snapshot.host.kernel,
        "os": snapshot.host.os,
        "docker": snapshot.docker.version if snapshot.docker else None,
        "container_toolkit": snapshot.host.container_toolkit,
    }


def image_digests(snapshot: Snapshot) -> dict[str, str | None]:
    """ref → the registry digest the host pulled it at (its local image id when it has none), None when absent.
    A tag re-pushed and pulled again shows as a new digest."""
    out: dict[str, str | None] = {}
    for ref, entry in sorted(snapshot.images.items()):
        if not entry:
            out[ref] = None
            continue
        repository = ref.split("@", 1)[0].rsplit(":", 1)[0] if "/" in ref else ref
        pulled = [d.split("@", 1)[1] for d in entry.digests if d.split("@", 1)[0] == repository]
        out[ref] = pulled[0] if pulled else entry.id
    return out


def verified_services(plan: HostPlan, snapshot: Snapshot) -> dict[str, str]:
    """service → what a bench of it verifies, as the host runs it: the unit its container was started from (the
    container's identity label) and its env file (by hash: the file may hold secrets). A change that runs but was
    never benched — a run killed during its bench, a deploy with the bench off — differs from the baseline's, so
    the next deploy benches it and drift says so. A service whose container is not there is left out: other items
    say it is down, and the deploy that starts it benches it."""
    verified = {}
    for svc in plan.services:
        container = snapshot.containers.get(svc.container_name)
        if container is None:
            continue
        env = snapshot.files.get(svc.env_file) if svc.env_file else None
        seen = f"{container.identity or ''}:{env.sha256 if env else ''}"
        for path in sorted(svc.config_files):  # the options it was benched with, as the host holds them
            found = snapshot.files.get(path)
            seen += f":{found.sha256 if found else ''}"
        verified[svc.name] = hashlib.sha256(seen.encode()).hexdigest()[:16]
    return verified


def bench_figures(result: EndpointResult) -> dict[str, float]:
    """The figures a bench is compared by: serial TTFT p50 and decode p50, aggregate at each concurrency."""
    figures: dict[str, float | None] = {}
    if result.serial:
        figures[TTFT] = result.serial.ttft_ms.get("p50")
        figures[DECODE] = result.serial.decode_tok_s.get("p50")
    for level in result.levels:
        figures[f"aggregate c={level.concurrency} (tok/s)"] = level.aggregate_tok_s
    return {name: value for name, value in figures.items() if value is not None}


def make_baseline(
    host: str,
    facts: Mapping[str, str | None],
    images: Mapping[str, str | None],
    bench: Mapping[str, Mapping[str, float]],
    recorded_at: str | None = None,
    services: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "format": BASELINE_FORMAT,
        "host": host,
        "recorded_at": recorded_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "facts": dict(facts),
        "images": dict(images),
        "bench": {service: dict(figures) for service, figures in sorted(bench.items())},
        "services": dict(sorted((services or {}).items())),
    }


def valid(document: Any) -> dict[str, Any] | None:
    """The baseline document, or None when it is absent or not one of ours (it is then re-recorded)."""
    if (
        isinstance(document, dict)
        and document.get("format") == BASELINE_FORMAT
        and all(isinstance(document.get(k), dict) for k in ("facts", "images", "bench"))
    ):
        return document
    return None


def _fields(
    baseline: Mapping[str, Any],
    facts: Mapping[str, str | None],
    images: Mapping[str, str | None],
    services: Mapping[str, str],
) -> Iterator[tuple[str, str, str, bool]]:
    """Each baseline field as (label, then, now, unchanged), then and now as a person reads them."""
    for key, label in HOST_FACTS.items():
        then, now = baseline["facts"].get(key), facts.get(key)
        yield label, then or "unknown", now or "unknown", then == now
    for ref, then in sorted(baseline["images"].items()):
        if ref in images:  # an image the state no longer uses is not this host's drift
            yield f"image {ref}", _short(then), _short(images[ref]), then == images[ref]
    benched = baseline.get("services")
    if isinstance(benched, dict):  # baselines recorded before services were noted say nothing of them
        for name, now in sorted(services.items()):
            then = benched.get(name)
            shown_now = now if then == now else f"{now}, not benched since it changed"
            yield f"service {name} as benched", str(then or "never benched"), shown_now, then == now


def changes(
    baseline: Mapping[str, Any] | None,
    facts: Mapping[str, str | None],
    images: Mapping[str, str | None],
    services: Mapping[str, str],
) -> list[str]:
    """What differs from the baseline, in words ("NVIDIA driver 580.95.05 → 590.10"); [] when nothing does."""
    if baseline is None:
        return [NO_BASELINE]
    fields = _fields(baseline, facts, images, services)
    return [f"{label} {then} → {now}" for label, then, now, same in fields if not same]


def host_items(
    host: str,
    baseline: Mapping[str, Any] | None,
    facts: Mapping[str, str | None],
    images: Mapping[str, str | None],
    services: Mapping[str, str],
) -> list[Item]:
    """One `host` item per baseline field: in sync, or drift naming the value then and now."""
    if baseline is None:
        return [Item(host, "host", "baseline", "recorded after a deploy whose bench passed", "none recorded yet", True)]
    since = f"baseline {baseline.get('recorded_at', '?')}"
    return [
        Item(host, "host", label, f"{then} ({since})", now, same)
        for label, then, now, same in _fields(baseline, facts, images, services)
    ]


def figure_items(
    host: str, service: str, kind: str, now: Mapping[str, float], then: Mapping[str, float], label: str, margin: float
) -> list[Item]:
    """Each figure measured now against the same figure then: drift when it is worse by more than `margin`."""
    items = []
    for metric, value in now.items():
        before = then.get(metric)
        if before is None or before == 0:
            continue
        change = (value - before) / before
        worse = change if metric in LOWER_IS_BETTER else -change
        items.append(
            Item(
                host,
                kind,
                f"{service} {metric}",
                f"within {margin:.0%} of {before:.1f} ({label})",
                f"{value:.1f} ({change:+.1%})",
                worse <= margin,
            )
        )
    return items


def _short(image_id: str | None) -> str:
    return (image_id or "absent").removeprefix("sha256:")[:12]


# ----------------------------------------------------------------------------- the control machine's copy


def local_dir() -> Path:
    return state_home() / "baselines"


def save_local(document: Mapping[str, Any], base: Path | None = None) -> Path:
    """Keep every recorded baseline (one file per deploy that recorded one), newest last by name."""
    slot = (base or local_dir()) / str(document["host"])
    slot.mkdir(parents=True, exist_ok=True)
    path = slot / (datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + ".json")
    write_atomically(path, json.dumps(document, indent=2, sort_keys=True))
    return path


def latest_local(host: str, base: Path | None = None) -> dict[str, Any] | None:
    slot = (base or local_dir()) / host
    for path in sorted(slot.glob("*.json"), reverse=True) if slot.is_dir() else []:
        try:
            document = valid(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
        if document is not None:
            return document
    return None
