"""Consoles and tables that people can read in a terminal and in a captured log alike.

rich sizes output to the terminal, and to 80 columns when there is none — which cut service names to
"trtllm-nvf…" in CI logs. Without a terminal, output gets room for whole lines, and every table column folds
long values onto a second line instead of cutting them."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

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
