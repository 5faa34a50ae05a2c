"""Every error spark-state raises. Only the CLI turns these into exit codes and panels."""

from __future__ import annotations

from dataclasses import dataclass


class SparkStateError(Exception):
    """Base of every error this package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a state file, located at FILE:LINE:COL (1-based) and a dotted field path."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column} {self.field}: {self.message}"


class StateFileError(SparkStateError):
    """The state file is unreadable or invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.field, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownHostError(SparkStateError):
    """A command named a host the state file does not declare."""

    def __init__(self, host: str, known: list[str]) -> None:
        self.host = host
        super().__init__(f"unknown host {host!r}; the state file declares: {', '.join(known) or 'none'}")


class QuotingError(SparkStateError):
    """A word cannot be carried safely into a shell command or a systemd unit."""


class SimError(SparkStateError):
    """The rehearsal fleet could not be set up, inspected or torn down."""
