"""What came from a host is shown as data: no markup is read in it, no escape reaches the terminal."""

from __future__ import annotations

import io

from rich.console import Console

from spark_state.console import shown


def _printed(value: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=True, color_system=None).print(shown(value))
    return out.getvalue()


def test_brackets_from_a_host_are_text_not_markup() -> None:
    assert _printed("HTTP/1.0 [/] OK [bold]x[/bold]") == "HTTP/1.0 [/] OK [bold]x[/bold]\n"


def test_escapes_and_invisible_characters_are_written_out() -> None:
    link = "\x1b]8;;https://evil.example\x1b\\1.17.8\x1b]8;;\x1b\\"
    printed = _printed(f"{link} a\rb\u202ec\u200bd\x07")
    assert "\x1b" not in printed and "\r" not in printed and "\u202e" not in printed and "\x07" not in printed
    assert "\\u001b]8;;https://evil.example" in printed and "a\\u000db\\u202ec\\u200bd\\u0007" in printed
