"""Text that came from a host, a server or a file, made safe for any terminal (without rich: the deploy uses it
and does not import rich)."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL and C1 (ESC starts terminal escapes, CR rewrites a line), zero-width and
# direction-override characters: what must not reach an operator's terminal as it came.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def escaped(value: object) -> str:
    """A value that came from a host, a server or a file, with control, escape, zero-width and direction
    characters written out as \\uXXXX: safe in a message any terminal prints."""
    return _UNSHOWABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))
