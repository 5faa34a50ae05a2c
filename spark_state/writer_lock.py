"""One writer per Spark at a time: a deploy (or `prune --yes`) holds the Spark's lock for its whole run, through
a channel of its own SSH connection to a small program on the host (on_host/lock.py). A second writer is told
who holds it (operator, control machine, command, since) and stops, or waits when asked; a run killed on the
control machine releases it with its connection.

Waiting runs take their locks in one order every writer shares (by each Spark's SSH host key, which names the
machine whatever an inventory calls it), one after another, before anything is probed: pyinfra loads a deploy on
every host at once, and two waiting runs that each took some hosts first would each wait for the other's for ever.
Held locks in one global order cannot form such a cycle."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import socket
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import gevent
from gevent import Greenlet
from gevent.event import AsyncResult

from .errors import HostError, LockHeld
from .on_host import program
from .on_host.probe import ProbeRequest, WriterAsked
from .plan.quoting import sh_join
from .safe_text import escaped

LOCK_PATH = "/run/lock/spark-state-writer.lock"  # sticky and world-writable on DGX OS (systemd tmpfiles), tmpfs
HOLDER_PATH = LOCK_PATH + ".holder"  # who holds it, written by on_host/lock.py once it does
BUSY_EXIT = 3
_HELD: dict[int, Greenlet] = {}  # id(the Host) → what opens its channel: held until this process ends
# Wait mode, per pyinfra State (weakly, as deploy/facts.py keeps its snapshots): {id(the Host): Asked | None | HostError}
_TAKEN: weakref.WeakKeyDictionary[Any, AsyncResult] = weakref.WeakKeyDictionary()


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


@dataclass
class Asked:
    """A lock asked for over a channel of its own, its answer not read yet (`settle` reads it)."""

    opening: Greenlet  # opens the channel and starts the lock program; its value: the channel, or why not
    key: int  # the pyinfra host's, in _HELD
    token: str  # written beside the lock by this run's lock program once it holds it (the probe waits for it)


def _the_host(pyinfra_host: Any) -> Any:
    """The Host itself. pyinfra prepares a deploy on every host at once, one greenlet each, and its `host` is a
    greenlet-local stand-in for the current one (pyinfra/context.py, LocalContextObject): one object, one id(),
    for every host. Keyed by the stand-in, the first host to ask took the key, and every other host was taken
    for one this process already held: it went ahead unlocked."""
    return pyinfra_host.state.inventory.get_host(pyinfra_host.name)


def _transport(pyinfra_host: Any) -> Any:
    client = getattr(pyinfra_host.connector, "client", None)
    return client.get_transport() if client is not None else None


def ask(pyinfra_host: Any, wait: bool) -> Asked | None:
    """Ask for the lock over `pyinfra_host`'s SSH connection, without waiting for the answer: the probe can set
    out at the same time and wait on the host for this run's token (probe section `writer`). None for hosts
    reached without SSH (pyinfra's @local: not locked) and for a host this process holds already."""
    pyinfra_host = _the_host(pyinfra_host)
    if id(pyinfra_host) in _HELD:
        return None
    transport = _transport(pyinfra_host)
    if transport is None:
        return None
    token = secrets.token_hex(16)
    mode = "wait" if wait else "stop"
    document = json.dumps({**holder(), "token": token}, sort_keys=True)
    command = sh_join(["python3", "-I", "-S", "-c", program("lock.py"), LOCK_PATH, mode, document])
    # Opened beside the probe, not before it: a connection's first session waits for sshd's PAM session setup
    # (≈45 ms on the rehearsal hosts), which the probe's session then shares instead of waiting for it after.
    opening = gevent.spawn(_start_lock_program, transport, command)
    _HELD[id(pyinfra_host)] = opening
    return Asked(opening, id(pyinfra_host), token)


def _start_lock_program(transport: Any, command: str) -> Any:
    """The channel, or what stopped it opening (settle raises it: a greenlet that raised would be printed too)."""
    try:
        channel = transport.open_session()
        channel.exec_command(command)
    except Exception as exc:  # paramiko's errors, mapped to HostError where settle reads this
        return exc
    return channel


def settle(asked: Asked | None, name: str, wait: bool, say: Any = print) -> None:
    """Read the lock program's answer and keep the lock until this process ends; LockHeld when another writer
    has it and `wait` is off (after saying who, when it is on, once it is ours)."""
    if asked is None:
        return
    opened = asked.opening.get()
    if isinstance(opened, Exception):
        _release(asked)
        raise HostError(f"{name}: could not ask for the writer lock ({escaped(opened)})") from opened
    answers = opened.makefile("r")
    line = answers.readline().strip()
    if line.startswith("busy "):
        who = describe(line[len("busy ") :])
        if not wait:
            _release(asked)
            raise LockHeld(
                f"another spark-state writer holds {name}: {who}; try again when it ends, or wait for it "
                "with --data spark_lock=wait"
            )
        say(f"{name}: waiting for the writer lock, held by {who}")
        line = answers.readline().strip()
    if line != "held":
        _release(asked)
        raise HostError(f"{name}: could not take the writer lock ({line or 'no answer'})")


def _machine_order(pyinfra_host: Any) -> tuple[str, str]:
    """Where a host comes in the order every waiting writer takes locks in: its SSH host key's digest (the same
    machine whichever name or address reaches it), then its name."""
    transport = _transport(pyinfra_host)
    key = transport.get_remote_server_key().asbytes() if transport is not None else b""
    return hashlib.sha256(key).hexdigest(), pyinfra_host.name


def take_in_order(pyinfra_host: Any, name_of: Callable[[Any], str], say: Callable[[Any, str], None]) -> Asked | None:
    """Wait mode: this run's locks on every host it deploys, taken by the first of its hosts to ask, one after
    another in the shared order, waiting for each; every host then gets its own. Raises this host's HostError."""
    state = pyinfra_host.state
    if state not in _TAKEN:
        result = _TAKEN[state] = AsyncResult()
        taken: dict[int, Asked | HostError | None] = {}
        try:
            for each in sorted(state.inventory.get_active_hosts(), key=_machine_order):
                try:
                    asked = ask(each, wait=True)
                    settle(asked, name_of(each), wait=True, say=lambda said, each=each: say(each, said))
                    taken[id(each)] = asked
                except HostError as exc:  # this host fails alone; the others are still taken
                    taken[id(each)] = exc
        except BaseException as exc:
            result.set_exception(exc)
            raise
        result.set(taken)
    mine = _TAKEN[state].get().get(id(_the_host(pyinfra_host)))
    if isinstance(mine, HostError):
        raise mine
    return mine


def _release(asked: Asked) -> None:
    opened = asked.opening.get()
    if not isinstance(opened, Exception):
        opened.close()
    _HELD.pop(asked.key, None)


def hold(pyinfra_host: Any, name: str, wait: bool, say: Any = print) -> None:
    """Take `name`'s lock and keep it until this process ends (ask, then settle)."""
    settle(ask(pyinfra_host, wait), name, wait, say)


def guarded(request: ProbeRequest, asked: Asked | None) -> ProbeRequest:
    """`request`, read on the host only once this run holds the lock (when it was asked for)."""
    if asked is None:
        return request
    return request.model_copy(update={"writer": WriterAsked(holder=HOLDER_PATH, token=asked.token)})
