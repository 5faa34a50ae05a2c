"""pyinfra facts about a Spark. One probe script answers them all, so the whole picture of a host costs one
SSH round trip (`SparkHostState`); the narrow facts are there for users' own deploys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyinfra.api import FactBase

from ..plan.quoting import sh_word

PROBE_SCRIPT = (Path(__file__).parent.parent / "on_host" / "probe.py").read_text()


def probe_command(spec: dict[str, Any]) -> str:
    return f"python3 -c {sh_word(PROBE_SCRIPT)} {sh_word(json.dumps(spec, sort_keys=True))}"


class _Probe(FactBase):
    abstract = True

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "python3"

    def _section(self, data: dict[str, Any]) -> Any:
        return data

    def process(self, output: list[str]) -> Any:
        return self._section(json.loads("\n".join(output)))


class SparkHostState(_Probe):
    """Everything the deploy and the drift check compare, from one probe. `spec` is a JSON document naming
    the sections (see probe_script.py); build it with spark_state.deploy.preflight.probe_spec(plan)."""

    def command(self, spec: str) -> str:
        return probe_command(json.loads(spec))


class SparkGpu(_Probe):
    """The GPU: {"name", "compute_capability", "driver_version"}, or None without a working driver."""

    def command(self) -> str:
        return probe_command({"gpu": True})

    def _section(self, data: dict[str, Any]) -> Any:
        return data.get("gpu")


class UnifiedMemory(_Probe):
    """{"total_gib", "available_gib"} from /proc/meminfo (GB10's memory is shared by CPU and GPU)."""

    def command(self) -> str:
        return probe_command({"memory": True})

    def _section(self, data: dict[str, Any]) -> Any:
        return data["memory"]


class FreeDisk(_Probe):
    """{"path", "free_gb", "total_gb"} of the filesystem that holds `path` (or its nearest existing parent)."""

    def command(self, path: str) -> str:
        return probe_command({"disk": path})

    def _section(self, data: dict[str, Any]) -> Any:
        return data["disk"]


class DockerRuntime(_Probe):
    """{"present", "running", "version", "nvidia_runtime"}: docker and the NVIDIA container runtime hook."""

    def command(self) -> str:
        return probe_command({"docker": True})

    def _section(self, data: dict[str, Any]) -> Any:
        return data["docker"]


class DockerImages(_Probe):
    """ref → {"id", "digests", "trtllm_version"} or None when not present. `probe` lists refs whose
    TensorRT-LLM version is read from inside the image (once per image id, cached on the host)."""

    def command(self, refs: tuple[str, ...], probe: tuple[str, ...] = ()) -> str:
        return probe_command({"images": list(refs), "probe": list(probe)})

    def _section(self, data: dict[str, Any]) -> Any:
        return data["images"]


class ArtifactManifests(_Probe):
    """path → the JSON manifest spark-state wrote when a checkpoint or engine was complete, or None."""

    def command(self, paths: tuple[str, ...]) -> str:
        return probe_command({"manifests": list(paths)})

    def _section(self, data: dict[str, Any]) -> Any:
        return data["manifests"]


class SparkUnits(_Probe):
    """unit name → {"file": {"sha256", "mode", "text"}, "active", "enabled"} for units named `prefix`*."""

    def command(self, directory: str = "/etc/systemd/system", prefix: str = "spark-state-") -> str:
        return probe_command({"units": {"dir": directory, "prefix": prefix}})

    def _section(self, data: dict[str, Any]) -> Any:
        return data["units"]
