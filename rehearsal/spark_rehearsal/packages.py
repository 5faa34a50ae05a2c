"""The simulated Spark's package database: what dpkg says is installed of NVIDIA's driver, the container toolkit
and the kernel, kept in step with what the stand-ins report. On a real Spark every `apt upgrade` of these
rewrites /var/lib/dpkg/status (dpkg writes status-new and renames it over the old one: a new file), so tools
that key what they know on the package database see the upgrade; the rehearsal's upgrades do the same."""

from __future__ import annotations

import os
from pathlib import Path

STATUS = "var/lib/dpkg/status"


def _stanza(package: str, version: str, description: str) -> str:
    return (
        f"Package: {package}\nStatus: install ok installed\nPriority: optional\nSection: non-free/libs\n"
        f"Installed-Size: 1\nMaintainer: spark-state rehearsal fleet\nArchitecture: arm64\nVersion: {version}\n"
        f"Description: {description} (rehearsal stand-in)\n"
    )


def nvidia_stanzas(gpu: dict[str, object], kernel: str) -> dict[str, str]:
    """package name → its stanza, for the driver and toolkit versions in the GPU description and the kernel."""
    driver = str(gpu["driver_version"])
    installed = (
        (f"nvidia-driver-{driver.split('.')[0]}-open", f"{driver}-0ubuntu1", "NVIDIA driver metapackage"),
        ("nvidia-container-toolkit", f"{gpu['toolkit_version']}-1", "NVIDIA Container toolkit"),
        (f"linux-image-{kernel}", kernel, "Linux kernel image"),
    )
    return {package: _stanza(package, version, what) for package, version, what in installed}


def record_installed(root: Path, gpu: dict[str, object], kernel: str) -> None:
    """Rewrite the host's dpkg status so it lists the NVIDIA driver, toolkit and kernel packages given (another
    driver series replaced; older kernels stay installed, as on Ubuntu), as dpkg does: into status-new, then
    renamed over status."""
    path = root / STATUS
    text = path.read_text() if path.exists() else ""
    ours = nvidia_stanzas(gpu, kernel)
    replaced = tuple(f"Package: {name}\n" for name in ours) + ("Package: nvidia-driver-",)
    stanzas = [s.strip("\n") + "\n" for s in text.split("\n\n") if s.strip()]
    kept = [s for s in stanzas if not s.startswith(replaced)]
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name("status-new")
    new.write_text("\n".join(kept + list(ours.values())))
    os.replace(new, path)
