"""Bench results kept as history: one versioned JSON document per run, per host and service."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..local_files import state_home, write_atomically
from .results import EndpointResult, Verdict, from_document, to_document


def default_dir() -> Path:
    return state_home() / "bench"


def _slot(base: Path, result: EndpointResult) -> Path:
    host = result.host or "adhoc"
    service = result.service or result.url.replace("://", "_").replace("/", "_").replace(":", "_")
    return base / host / service


def save(result: EndpointResult, verdict: Verdict | None, base: Path | None = None) -> Path:
    base = base or default_dir()
    slot = _slot(base, result)
    slot.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = slot / f"{stamp}.json"
    document: dict[str, Any] = to_document([result], [verdict] if verdict else [])
    write_atomically(path, json.dumps(document, indent=2))
    return path


def latest(host: str, service: str, base: Path | None = None) -> EndpointResult | None:
    found = latest_verdict(host, service, base)
    return found[0] if found else None


def latest_verdict(host: str, service: str, base: Path | None = None) -> tuple[EndpointResult, Verdict | None] | None:
    """The newest readable bench of a service, with its verdict when it was judged."""
    slot = (base or default_dir()) / host / service
    files = sorted(slot.glob("*.json")) if slot.is_dir() else []
    for path in reversed(files):
        try:
            results, verdicts = from_document(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            continue
        if results:
            return results[0], (verdicts[0] if verdicts else None)
    return None
