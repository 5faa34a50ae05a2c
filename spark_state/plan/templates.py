"""Render files from templates/ with jinja2 (StrictUndefined: a missing variable is a bug, not a blank)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2


def templates_dir() -> Path:
    """templates/ beside the package in a checkout, or the copy shipped inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no templates directory near {package}")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    )


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
