"""Programs that run ON a Spark (python3 and the standard library only, or inside an image), shipped as text:
`program(name)` reads one from the installed package, wherever it was installed."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def program(name: str) -> str:
    """The source of on_host/NAME, e.g. program("probe.py")."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8")
