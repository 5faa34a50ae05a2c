"""pyinfra facts about a Spark. One probe (spark_state/on_host/probe.py) answers them all, so the whole picture
of a host costs one SSH round trip; `process()` parses it once into a typed Snapshot. The narrow facts are there
for users' own deploys."""

from __future__ import annotations

import json
import weakref
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase

from ..errors import ProbeError
from ..observe.probe import ProbeSpec, probe_command
from ..observe.snapshot import DiskFact, DockerFact, GpuFact, ImageFact, MemoryFact, Snapshot, UnitFact


class SparkHostState(FactBase[Snapshot]):
    """Everything the deploy and the drift check compare, as a Snapshot. Build `spec` with
    spark_state.observe.probe.probe_spec(plan)."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "python3"

    def command(self, spec: ProbeSpec) -> str:
        return probe_command(spec)

    def process(self, output: list[str]) -> Snapshot:
        try:
            document = json.loads("\n".join(output))
        except ValueError as exc:
            raise ProbeError(
                f"the host's probe answered something that is not JSON ({exc}): {' '.join(output)[:200]!r}"
            ) from exc
        return Snapshot.parse(document)


# pyinfra 3 runs a fact's command on every get_fact; one deploy decides everything from one probe per host.
# Kept per pyinfra State (weakly: a finished deploy's snapshots go with it), then per host and spec.
_TAKEN: weakref.WeakKeyDictionary[Any, dict[tuple[str, ProbeSpec], Snapshot]] = weakref.WeakKeyDictionary()


def snapshot(spec: ProbeSpec) -> Snapshot:
    """This host's Snapshot for `spec`, probed once per deploy (pyinfra state) and host."""
    taken = _TAKEN.setdefault(host.state, {})
    key = (host.name, spec)
    if key not in taken:
        found = host.get_fact(SparkHostState, spec=spec)
        if found is None:  # the probe exited non-zero or printed nothing; pyinfra logged its error output
            raise ProbeError(
                "the probe failed on this host (python3 missing, or the probe crashed: its error output is above)"
            )
        taken[key] = found
    return taken[key]


class _Section(SparkHostState):
    abstract = True
    spec = ProbeSpec()

    def command(self, *args: Any, **kwargs: Any) -> str:
        return probe_command(self.spec)


class SparkGpu(_Section):
    """The GPU (name, compute capability, driver), or None without a working driver."""

    spec = ProbeSpec(gpu=True)

    def process(self, output: list[str]) -> GpuFact | None:  # type: ignore[override]
        return super().process(output).gpu


class UnifiedMemory(_Section):
    """Total and available GiB from /proc/meminfo (GB10's memory is shared by CPU and GPU)."""

    spec = ProbeSpec(memory=True)

    def process(self, output: list[str]) -> MemoryFact | None:  # type: ignore[override]
        return super().process(output).memory


class DockerRuntime(_Section):
    """Docker and the NVIDIA container runtime hook."""

    spec = ProbeSpec(docker=True)

    def process(self, output: list[str]) -> DockerFact | None:  # type: ignore[override]
        return super().process(output).docker


class FreeDisk(SparkHostState):
    """Free and total GB of the filesystem that holds `path` (or its nearest existing parent)."""

    def command(self, path: str) -> str:  # type: ignore[override]
        return probe_command(ProbeSpec(disk=path))

    def process(self, output: list[str]) -> DiskFact | None:  # type: ignore[override]
        return super().process(output).disk


class DockerImages(SparkHostState):
    """ref → ImageFact, or None when not present."""

    def command(self, refs: tuple[str, ...]) -> str:  # type: ignore[override]
        return probe_command(ProbeSpec(images=tuple(refs)))

    def process(self, output: list[str]) -> dict[str, ImageFact | None]:  # type: ignore[override]
        return super().process(output).images


class SparkUnits(SparkHostState):
    """unit name → UnitFact for units named `prefix`* in `directory`."""

    def command(self, directory: str = "/etc/systemd/system", prefix: str = "spark-state-") -> str:  # type: ignore[override]
        return probe_command(ProbeSpec(units_dir=directory, units_prefix=prefix))

    def process(self, output: list[str]) -> dict[str, UnitFact]:  # type: ignore[override]
        return super().process(output).units
