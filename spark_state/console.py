"""Consoles and tables that people can read in a terminal and in a captured log alike.

rich sizes output to the terminal, and to 80 columns when there is none — which cut service names to
"trtllm-nvf…" in CI logs. Without a terminal, output gets room for whole lines unless `COLUMNS` says otherwise,
and every table column folds long values onto a second line instead of cutting them."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from .safe_text import escaped

LOG_WIDTH = 200  # without a terminal: wide enough for a whole row of any of our tables


def make_console(stderr: bool = False) -> Console:
    """A terminal's own width; `COLUMNS` when set (a pipe too); else LOG_WIDTH."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return Console(stderr=stderr)  # rich reads COLUMNS itself
    return Console(stderr=stderr, width=LOG_WIDTH)


def make_table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def shown(value: object, style: str = "") -> Text:
    """escaped(value) as rich Text: brackets in it are not markup either."""
    return Text(escaped(value), style=style)


LABEL_CELL_WIDTH = 24  # a free-text cell wraps at words beyond this; a figure is never wrapped
_CELL_COST = 3  # padding on both sides and the border after a column


def _plain(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def _need(column: Column) -> int:
    """The width a column needs to show every word whole: figures (right-justified) as they are, free text
    wrapped at words, the header's words whole."""
    words = [len(w) for cell in [column.header, *column.cells] for w in _plain(cell).split()] or [1]
    if column.justify == "right":
        return max(words)
    return max(max(words), min(_natural(column), LABEL_CELL_WIDTH))


def _natural(column: Column) -> int:
    """The width a column takes when nothing in it wraps."""
    return max([len(line) for cell in [column.header, *column.cells] for line in _plain(cell).splitlines()] or [1])


def fitted(table: Table, width: int) -> list[Table]:
    """The table as one or more tables no wider than `width` that hide nothing: when its columns do not fit
    side by side, those that do not go to a next table, which repeats the first (label) column. Each column of
    a table that had to be fitted gets a fixed width, at least what it needs to show every word whole."""
    columns = table.columns
    if sum(map(_natural, columns)) + _CELL_COST * len(columns) + 1 <= width:
        return [table]
    needs = {id(c): _need(c) for c in columns}
    natural = {id(c): _natural(c) for c in columns}
    label, rest = columns[0], columns[1:]
    chunks: list[list[Column]] = [[]]
    used = needs[id(label)] + _CELL_COST + 1
    for column in rest:
        if chunks[-1] and used + needs[id(column)] + _CELL_COST > width:
            chunks.append([])
            used = needs[id(label)] + _CELL_COST + 1
        chunks[-1].append(column)
        used += needs[id(column)] + _CELL_COST
    parts = []
    for number, chunk in enumerate(chunks, 1):
        shown_columns = [label, *chunk]
        widths = [needs[id(c)] for c in shown_columns]
        spare = width - sum(widths) - _CELL_COST * len(widths) - 1
        while spare > 0:  # room left: widen, one character at a time, the columns that would wrap less
            wider = [i for i, c in enumerate(shown_columns) if widths[i] < natural[id(c)]]
            if not wider:
                break
            for i in wider[:spare]:
                widths[i] += 1
            spare -= len(wider[:spare])
        title = Text.assemble(table.title or "", f" ({number}/{len(chunks)})" if len(chunks) > 1 else "")
        part = Table(title=title, title_justify=table.title_justify, box=table.box)
        for column, column_width in zip(shown_columns, widths, strict=True):
            part.add_column(column.header, justify=column.justify, overflow="fold", width=column_width)
        for row in zip(*(list(column.cells) for column in shown_columns), strict=True):
            part.add_row(*row)
        parts.append(part)
    return parts


def print_table(console: Console, table: Table) -> None:
    """Print a table whole at the console's width (split by columns when it is too narrow)."""
    for part in fitted(table, console.width):
        console.print(part)
