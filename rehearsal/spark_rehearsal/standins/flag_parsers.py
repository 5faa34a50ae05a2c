"""What the stand-in servers configured by flags share (stdlib only): an argparse parser built from the flag list
read from the real server's source (shipped in the image as JSON), and the version of the package they stand in
for."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping


def parser_from_flags(
    flags_file: str, prog: str, allow_abbrev: bool, dests: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """The server's parser: every `--flag` of the list ('bool': BooleanOptionalAction, --flag/--no-flag; 'switch':
    store_true; 'value': one value), stored under `dests[flag]` (aliases sharing a destination) or its own name."""
    with open(flags_file) as f:
        flags = json.load(f)["flags"]
    p = argparse.ArgumentParser(prog=prog, allow_abbrev=allow_abbrev)
    for name in sorted(n for n in flags if n.startswith("--")):
        kind, dest = flags[name], (dests or {}).get(name, name[2:].replace("-", "_"))
        if kind == "bool":
            p.add_argument(name, dest=dest, action=argparse.BooleanOptionalAction, default=None)
        elif kind == "switch":
            p.add_argument(name, dest=dest, action="store_true")
        else:
            p.add_argument(name, dest=dest, default=None)
    return p


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "0.0.0"
