"""The pyinfra fact every spark-state operation reads: the host's Snapshot, from one probe (on_host/probe.py, one
SSH round trip), taken once per deploy and host."""

from __future__ import annotations

import weakref
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase

from ..errors import ProbeError
from ..on_host.probe import ProbeRequest, Snapshot, probe_command


class SparkHostState(FactBase[Snapshot]):
    """Everything the deploy and the drift check compare, as a Snapshot. Build `request` with
    spark_state.observe.observation.probe_request(plan)."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "python3"

    def command(self, request: ProbeRequest) -> str:
        return probe_command(request)

    def process(self, output: list[str]) -> Snapshot:
        return Snapshot.from_output("\n".join(output))


# pyinfra 3 runs a fact's command on every get_fact; one deploy decides everything from one probe per host.
# Kept per pyinfra State (weakly: a finished deploy's snapshots go with it), then per host and request.
_TAKEN: weakref.WeakKeyDictionary[Any, dict[tuple[str, ProbeRequest], Snapshot]] = weakref.WeakKeyDictionary()


def snapshot(request: ProbeRequest) -> Snapshot:
    """This host's Snapshot for `request`, probed once per deploy (pyinfra state) and host."""
    taken = _TAKEN.setdefault(host.state, {})
    key = (host.name, request)
    if key not in taken:
        found = host.get_fact(SparkHostState, request=request)
        if found is None:  # the probe exited non-zero or printed nothing; pyinfra logged its error output
            raise ProbeError(
                "the probe failed on this host (python3 missing, or the probe crashed: its error output is above)"
            )
        taken[key] = found
    return taken[key]
