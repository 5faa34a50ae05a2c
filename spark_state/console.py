"""Consoles and tables that people can read in a terminal and in a captured log alike.

rich sizes output to the terminal, and to 80 columns when there is none — which cut service names to
"trtllm-nvf…" in CI logs. Without a terminal, output gets room for whole lines, and every table column folds
long values onto a second line instead of cutting them."""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

LOG_WIDTH = 200  # without a terminal: wide enough for a whole row of any of our tables


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=LOG_WIDTH)


def make_table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


# C0 controls but tab and newline, DEL and C1 (ESC starts terminal escapes, CR rewrites a line), zero-width and
# direction-override characters: what must not reach an operator's terminal as it came.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def escaped(value: object) -> str:
    """A value that came from a host, a server or a file, with control, escape, zero-width and direction
    characters written out as \\uXXXX: safe in a message any terminal prints."""
    return _UNSHOWABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))


def shown(value: object, style: str = "") -> Text:
    """escaped(value) as rich Text: brackets in it are not markup either."""
    return Text(escaped(value), style=style)
