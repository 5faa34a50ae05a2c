"""Daemons a Spark runs from its distribution's packages beside the served models, as the state configures them:
earlyoom (fleet.memory_guard). Each is a package, its systemd unit and the one file spark-state writes for it.

earlyoom reads EARLYOOM_ARGS from /etc/default/earlyoom (the unit Debian and Ubuntu ship:
`EnvironmentFile=-/etc/default/earlyoom`, `ExecStart=/usr/bin/earlyoom $EARLYOOM_ARGS`). Options as earlyoom
1.7's manual gives them (the version in Debian 12 and Ubuntu 24.04, under DGX OS 7):
  -M SIZE[,KILL_SIZE]  available memory minimum in KiB: SIGTERM at or below SIZE, SIGKILL at or below KILL_SIZE
                       (default SIZE/2); "if you pass both -M and -m, the lower value is used", so -M below
                       -m's default 10 % decides alone (-m 100 is refused: "exceeds limit 99")
  -s PERCENT           free swap minimum; with no swap, free swap counts as 0 % and memory alone decides
  --avoid REGEX        process names (comm) to spare: 300 is taken off their oom_score
  -r SECONDS           how often it reports memory in the journal
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..desired.model import DesiredState

EARLYOOM_DEFAULTS = "/etc/default/earlyoom"
# What keeps the host reachable and its containers alive: sshd, systemd and its helpers, docker and containerd
# (their shims too: comm is cut at 15 characters, "containerd-shim"), earlyoom itself. Names as /proc/PID/comm.
SPARED = r"^(sshd|systemd|systemd-.*|dockerd|containerd|containerd-shim|docker-proxy|earlyoom)$"


@dataclass(frozen=True)
class SystemServicePlan:
    """One daemon from a package: installed, configured by exactly `config_text` at `config_path`, enabled and
    running, restarted when that file changes."""

    name: str  # as plan, drift and status say it
    package: str
    unit: str
    config_path: str
    config_text: str
    summary: str  # what it does, in a line of `spark-state plan`


# Each word must read the same to the three that parse it: systemd's EnvironmentFile= (quotes removed), systemd's
# split of `$EARLYOOM_ARGS` in ExecStart= (at whitespace, quotes removed) and /bin/sh sourcing the file for the
# init script. Words without whitespace, quotes, backslashes or `$NAME` need no quoting in any of them.
_PLAIN_WORD = re.compile(r"^(?:[^\s'\"\\$]|\$(?![A-Za-z_{]))+$")


def earlyoom_args(available_below_gib: float) -> list[str]:
    kib = round(available_below_gib * 2**20)
    words = ["-M", str(kib), "--avoid", SPARED, "-r", "3600"]
    assert all(_PLAIN_WORD.match(word) for word in words), words
    return words


def plan_system_services(state: DesiredState) -> tuple[SystemServicePlan, ...]:
    guard = state.fleet.memory_guard
    if not guard.enabled:
        return ()
    text = (
        "# Written by spark-state (fleet.memory_guard); a deploy puts it back when it differs.\n"
        f'EARLYOOM_ARGS="{" ".join(earlyoom_args(guard.available_below_gib))}"\n'
    )
    summary = (
        f"ends the process with the highest oom_score below {guard.available_below_gib:g} GiB available "
        "(sparing sshd, systemd and docker)"
    )
    return (SystemServicePlan("earlyoom", "earlyoom", "earlyoom.service", EARLYOOM_DEFAULTS, text, summary),)
