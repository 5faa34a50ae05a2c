"""One writer per Spark at a time: a deploy (or `prune --yes`) holds the Spark's lock for its whole run, through
a channel of its own SSH connection to a small program on the host (on_host/lock.py). A second writer is told
who holds it (operator, control machine, command, since) and stops, or waits when asked; a run killed on the
control machine releases it with its connection."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from datetime import UTC, datetime
from typing import Any

from .console import escaped
from .errors import HostError, LockHeld
from .on_host import program
from .plan.quoting import sh_join

LOCK_PATH = "/run/lock/spark-state-writer.lock"  # sticky and world-writable on DGX OS (systemd tmpfiles), tmpfs
BUSY_EXIT = 3
_HELD: dict[int, Any] = {}  # id(pyinfra host) → the open channel: held until this process ends


def holder() -> dict[str, Any]:
    """Who asks: read by the next writer."""
    return {
        "operator": getpass.getuser(),
        "control_machine": socket.gethostname(),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300],
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe(document: str) -> str:
    try:
        found = json.loads(document)
    except ValueError:
        found = {}
    if not isinstance(found, dict) or not found:
        return "another writer (it did not say who)"
    said = (  # written on the host by whoever held the lock: data, escaped before any terminal shows it
        f"{found.get('operator', '?')} on {found.get('control_machine', '?')} since {found.get('since', '?')} "
        f"(pid {found.get('pid', '?')}: {found.get('command', '?')})"
    )
    return escaped(said[:500])


def hold(pyinfra_host: Any, name: str, wait: bool, say: Any = print) -> None:
    """Take `name`'s lock over `pyinfra_host`'s SSH connection and keep it until this process ends; LockHeld
    when another writer has it and `wait` is off. Hosts reached without SSH (pyinfra's @local) are not locked."""
    if id(pyinfra_host) in _HELD:
        return
    client = getattr(pyinfra_host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None:
        return
    channel = transport.open_session()
    mode = "wait" if wait else "stop"
    channel.exec_command(
        sh_join(["python3", "-c", program("lock.py"), LOCK_PATH, mode, json.dumps(holder(), sort_keys=True)])
    )
    answers = channel.makefile("r")
    line = answers.readline().strip()
    if line.startswith("busy "):
        who = describe(line[len("busy ") :])
        if not wait:
            channel.close()
            raise LockHeld(
                f"another spark-state writer holds {name}: {who}; try again when it ends, or wait for it "
                "with --data spark_lock=wait"
            )
        say(f"{name}: waiting for the writer lock, held by {who}")
        line = answers.readline().strip()
    if line != "held":
        channel.close()
        raise HostError(f"{name}: could not take the writer lock ({line or 'no answer'})")
    _HELD[id(pyinfra_host)] = channel
