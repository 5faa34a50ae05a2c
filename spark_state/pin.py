"""`spark-state pin FILE`: every image tag to its registry digest (the tag kept beside it for people) and every
checkpoint revision that is a branch or tag to its commit sha, written into FILE in place — comments, order and
formatting untouched: each value is replaced where ruamel.yaml's round-trip loader says it is, nothing else is
re-emitted. `--check` resolves nothing and changes nothing; it lists what is not pinned (exit 2).

Resolution runs where the registry and hub are reachable: on this machine, or through the first host of an
inventory (the rehearsal fleet's registry and hub are only reachable from its hosts), by
spark_state/on_host/resolve.py either way. Credentials (NGC_API_KEY for nvcr.io, HF_TOKEN for the hub) come from
this machine's environment and reach a host on stdin only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .desired.compat import NGC_KEY_ENV, NGC_REGISTRY, NGC_USER
from .desired.loader import load_state, load_state_text, position
from .desired.model import COMMIT_SHA, DesiredState
from .errors import Problem, ResolveError, StateFileError
from .local_files import write_atomically
from .on_host import resolve as resolver

RESOLVE_PROGRAM = Path(resolver.__file__).read_text()
HF_TOKEN_ENV = "HF_TOKEN"


@dataclass(frozen=True)
class Pin:
    kind: str  # "image" or "revision"
    name: str  # the image's or checkpoint's name in the state
    path: tuple[str, ...]  # where the value sits in the file
    current: str  # the value as written
    lookup: str  # what to resolve: an image ref, or a revision of `repo`
    repo: str | None = None
    pinned: str | None = None  # the value to write, once resolved


def unpinned(state: DesiredState) -> list[Pin]:
    """Image refs without a digest and checkpoint revisions that are not a commit sha, in file order."""
    pins = []
    for name, image in state.images.items():
        if "@sha256:" not in image.ref:
            pins.append(Pin("image", name, ("images", name), image.ref, image.ref))
    for name, ckpt in state.checkpoints.items():
        if not COMMIT_SHA.match(ckpt.revision):
            pins.append(
                Pin("revision", name, ("checkpoints", name, "revision"), ckpt.revision, ckpt.revision, ckpt.repo)
            )
    return pins


def request(pins: list[Pin], environ: Mapping[str, str]) -> dict[str, Any]:
    """What resolve.py is asked (credentials included: send it on stdin only)."""
    credentials = {NGC_REGISTRY: [NGC_USER, environ[NGC_KEY_ENV]]} if environ.get(NGC_KEY_ENV) else {}
    return {
        "images": [p.lookup for p in pins if p.kind == "image"],
        "revisions": [[p.repo, p.lookup] for p in pins if p.kind == "revision"],
        "credentials": credentials,
        "hf_token": environ.get(HF_TOKEN_ENV),
        "hub": environ.get("HF_ENDPOINT"),
    }


def resolve_here(document: dict[str, Any]) -> dict[str, Any]:
    return resolver.resolve(document)


def resolve_through(address: str, data: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """Run resolve.py on a host (as its user, without sudo: it reads nothing privileged), request on stdin.
    The hub endpoint is the host's own (HF_ENDPOINT in its environment), not this machine's."""
    from .plan.quoting import sh_word
    from .remote import run

    document = {**document, "hub": None}
    ok, stdout, stderr = run(
        address, data, f"python3 -c {sh_word(RESOLVE_PROGRAM)}", stdin=json.dumps(document), sudo=False
    )
    if not ok:
        raise ResolveError(f"{data.get('spark_host', address)}: the resolver failed: {(stderr or stdout)[-500:]}")
    try:
        return dict(json.loads(stdout))
    except ValueError as exc:
        raise ResolveError(f"{data.get('spark_host', address)}: the resolver answered {stdout[-200:]!r}") from exc


def resolved(pins: list[Pin], answer: dict[str, Any]) -> list[Pin]:
    """The pins with their values; ResolveError naming every one that could not be resolved."""
    done, errors = [], []
    for p in pins:
        if p.kind == "image":
            found = answer.get("images", {}).get(p.lookup) or {"error": "not answered"}
            value = f"{p.current.split('@', 1)[0]}@{found['digest']}" if "digest" in found else None
        else:
            found = answer.get("revisions", {}).get(f"{p.repo}@{p.lookup}") or {"error": "not answered"}
            value = found.get("sha")
        if value is None:
            errors.append(f"{p.kind} {p.name} ({p.repo + '@' if p.repo else ''}{p.lookup}): {found.get('error')}")
        else:
            done.append(Pin(p.kind, p.name, p.path, p.current, p.lookup, p.repo, value))
    if errors:
        raise ResolveError("could not pin: " + "; ".join(errors))
    return done


def rewrite(text: str, pins: list[Pin], file: str = "<string>") -> str:
    """`text` with each pin's value replaced where it is written (plain or quoted), a revision's old name kept
    as an end-of-line comment where the line has none. Everything else stays byte for byte."""
    root = YAML(typ="rt").load(text)
    lines = text.splitlines(keepends=True)
    for p in sorted(pins, key=lambda p: position(root, _value_path(root, p.path)), reverse=True):
        line, col = position(root, _value_path(root, p.path))
        row = lines[line - 1]
        at = col - 1
        for quote in ("", '"', "'"):
            written = f"{quote}{p.current}{quote}"
            if row.startswith(written, at):
                new = f"{quote}{p.pinned}{quote}"
                rest = row[at + len(written) :]
                if p.kind == "revision" and "#" not in rest and rest.strip() == "":
                    rest = f"  # {p.current}{rest}"
                lines[line - 1] = row[:at] + new + rest
                break
        else:
            raise StateFileError(
                [
                    Problem(
                        file,
                        line,
                        col,
                        ".".join(p.path),
                        f"{p.current!r} is not written here as a plain or quoted scalar; pin it by hand",
                    )
                ]
            )
    return "".join(lines)


def _value_path(root: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    """An image written as a mapping (`{ref: ..., size_gb: ...}`) has its value under `ref`."""
    node = root
    for part in path:
        node = node[part]
    return (*path, "ref") if isinstance(node, dict) else path


def pin_file(path: Path, pins: list[Pin]) -> str:
    """Write the resolved pins into the file (validated before it replaces the original); the new text."""
    text = rewrite(path.read_text(encoding="utf-8"), pins, str(path))
    load_state_text(text, str(path))  # still a valid state (raises StateFileError otherwise): then replace
    write_atomically(path, text)
    return text


def pins_for(path: Path) -> list[Pin]:
    return unpinned(load_state(path).state)
