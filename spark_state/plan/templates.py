"""Render files from spark_state/templates/ with jinja2 (StrictUndefined: a missing variable is a bug, not a blank)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("spark_state", "templates"),  # importlib.resources: checkout or wheel alike
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    )


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
