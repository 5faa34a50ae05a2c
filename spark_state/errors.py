"""Every error spark-state raises on purpose, and how a command can end. Only the CLI (spark_state/cli.py) turns
these into exit codes and panels; the deploy's pyinfra boundary turns them into a failed host.

    SparkStateError                 the base: catch this to catch everything below
    ├── StateFileError              the state file is unreadable or invalid (every problem, FILE:LINE:COL field)
    ├── UnknownHostError            a command named a host (or group) the state file does not declare
    ├── InventoryError              an inventory names no spark-state host, or the fleet is too small for it
    ├── QuotingError                a word cannot be carried safely into a shell command or a systemd unit
    ├── MemoryBudgetError           a host's services cannot all fit in its unified memory (each share named)
    ├── HostError                   one host could not be read or changed (the others carry on)
    │   ├── ConnectError            unreachable: SSH refused, timed out, or the probe could not run
    │   ├── ProbeError              the probe answered something that is not a probe's answer
    │   ├── LockHeld                another spark-state writer holds the host (it is named)
    │   └── StepError               a step on the host failed (bench process, baseline write)
    ├── UsageError                  a command was used wrongly (exit 64, as for argparse's own mistakes)
    ├── BenchError                  an endpoint could not be measured (unreachable, not OpenAI-compatible)
    └── ResolveError                a tag or revision could not be pinned (registry or hub refused, unknown)

Foreign errors are mapped where they enter: httpx and OSError in the bench's runner and command (BenchError),
subprocess and SSH in spark_state/remote.py (ConnectError), a host's probe answer at Snapshot.from_output in
on_host/probe.py (ProbeError).
A missed expectation or a drifted host is not an error: it is an `Outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    """How a command that ran to its end came out; the CLI maps it to an exit code (0, 2 and 1)."""

    OK = "ok"  # converged, every expectation met
    FINDINGS = "findings"  # drift found, or an expectation missed
    HOST_ERRORS = "host-errors"  # some host could not be checked (the others were)


class SparkStateError(Exception):
    """Base of every error this package raises on purpose; `title` says what went wrong, in words."""

    title = "error"


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

    title = "invalid state"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.field, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownHostError(SparkStateError):
    """A command named a host the state file does not declare."""

    title = "unknown host"

    def __init__(self, host: str, known: list[str], groups: list[str] | None = None) -> None:
        self.host = host
        said = f"unknown host {host!r}; the state file declares: {', '.join(known) or 'none'}"
        if groups:
            said += f" (groups: {', '.join(groups)})"
        super().__init__(said)


class InventoryError(SparkStateError):
    """An inventory names no spark-state host, or the rehearsal fleet has fewer hosts than the state."""

    title = "inventory"


class QuotingError(SparkStateError):
    """A word cannot be carried safely into a shell command or a systemd unit."""

    title = "cannot quote"


class MemoryBudgetError(SparkStateError):
    """The services placed on a host cannot all fit in its unified memory; refused at plan time."""

    title = "does not fit in memory"


class HostError(SparkStateError):
    """One host could not be read or changed; the others carry on."""

    title = "host failed"


class ConnectError(HostError):
    """The host could not be reached, or the probe could not run on it."""

    title = "cannot reach host"


class ProbeError(HostError):
    """The host's probe answered something that is not a probe's answer."""

    title = "unexpected probe answer"


class LockHeld(HostError):
    """Another spark-state writer (a deploy, a prune) holds this host's writer lock; the message names it."""

    title = "host held by another writer"


class StepError(HostError):
    """A step on a host failed: the bench process, writing the baseline, a missed expectation in the deploy."""

    title = "step failed"


class UsageError(SparkStateError):
    """The command was used wrongly in a way its parser cannot see (e.g. neither a state file nor --url)."""

    title = "usage"


class BenchError(SparkStateError):
    """An endpoint could not be measured (unreachable, not OpenAI-compatible, no model listed)."""

    title = "cannot bench"


class ResolveError(SparkStateError):
    """An image tag or a checkpoint revision could not be resolved to a digest or commit (registry, hub)."""

    title = "cannot pin"
