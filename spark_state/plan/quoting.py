"""The one place where words that come from the state file are quoted for a shell or a systemd unit.

Two targets with different rules:
- POSIX sh (commands run over SSH): `shlex.quote` is exact.
- systemd `ExecStart=` lines: systemd C-unescapes inside quotes and expands `%` specifiers and `$VAR`.
  We refuse `%`, `$` and control characters there and escape only `\\` and `"` inside double quotes, where
  systemd and POSIX agree — so a unit's command line parses back identically with `shlex.split`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence

from ..errors import QuotingError

_SAFE_WORD = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, C1 and Unicode line separators


def sh_word(word: str) -> str:
    """Quote one word for POSIX sh."""
    if "\x00" in word:
        raise QuotingError("a NUL byte cannot be passed in a shell word")
    return shlex.quote(word)


def sh_join(words: Iterable[str]) -> str:
    """Join words into one POSIX sh command line, each quoted."""
    return " ".join(sh_word(w) for w in words)


def systemd_problem(word: str) -> str | None:
    """Why `word` cannot stand in a systemd command line, or None when it can."""
    if _CONTROL.search(word):
        return "control characters and line separators (newline, tab, U+0085, U+2028 ...) cannot be carried in a systemd unit"
    if "%" in word:
        return "'%' would be expanded by systemd as a unit specifier"
    if "$" in word:
        return "'$' would be expanded by systemd as an environment variable; put the value in env instead"
    return None


def systemd_word(word: str) -> str:
    """Quote one word for a systemd Exec*= line (parses back identically with shlex.split)."""
    problem = systemd_problem(word)
    if problem:
        raise QuotingError(f"{word!r}: {problem}")
    if _SAFE_WORD.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_join(words: Iterable[str]) -> str:
    """Join words into one systemd Exec*= command line, each quoted."""
    return " ".join(systemd_word(w) for w in words)


def env_file_problem(value: str) -> str | None:
    """Why `value` cannot stand in a docker --env-file line (read raw, one line per variable)."""
    if "\n" in value or "\r" in value or "\x00" in value:
        return "newlines and NUL bytes cannot be carried in an environment file"
    return None


def env_file_line(key: str, value: str) -> str:
    """One `KEY=VALUE` line for docker's --env-file, which takes the value verbatim (no unquoting)."""
    problem = env_file_problem(value)
    if problem:
        raise QuotingError(f"{key}: {problem}")
    return f"{key}={value}"


def env_file_text(env: Mapping[str, str], secrets: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """A 0600 env file (a service's or a checkpoint download's): plain env, then secrets read from the control
    machine's environment. None when a secret is missing there (preflight reports it)."""
    lines = [env_file_line(k, v) for k, v in sorted(env.items())]
    for name in secrets:
        if name not in environ:
            return None
        lines.append(env_file_line(name, environ[name]))
    return "".join(line + "\n" for line in lines)
