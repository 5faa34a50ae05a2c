"""`spark-rehearsal upgrade HOST …`, `slow HOST FACTOR` and `reboot HOST`: change what one simulated
Spark reports, as a DGX OS update would (driver and CUDA versions in nvidia-smi, the kernel release, the container
toolkit's version), how fast its GPU stand-in serves, or reboot it through its own systemd.

Files are changed from outside, through the host's overlay (mounted on this machine); the running containers'
copy of the GPU description is refreshed from inside the host, through its namespaces (nsenter), so no SSH login
is needed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import packages
from .errors import SimError
from .fleet import GPU_DIR, FleetRecord, SimHost, check_proc_binds, host_exec, init_pid, require_root, wait_ready
from .layout import Layout

GPU_JSON = f"/{GPU_DIR}/gpu.json"
REBOOT_TIMEOUT_S = 300  # services stop (docker stop, up to their TimeoutStopSec) before the machine goes down


def _host(name: str, layout: Layout) -> SimHost:
    record = FleetRecord.load(layout)
    for host in record.hosts:
        if host.name == name:
            return host
    raise SimError(f"no simulated Spark named {name!r}; the fleet has {', '.join(h.name for h in record.hosts)}")


def _root(host: SimHost) -> Path:
    return Path(host.dir) / "merged"


def _update_gpu(host: SimHost, changes: dict[str, Any]) -> dict[str, Any]:
    path = _root(host) / GPU_DIR / "gpu.json"
    gpu = json.loads(path.read_text())
    gpu.update(changes)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(gpu, indent=2) + "\n")
    tmp.replace(path)  # nvidia-smi never reads half a file
    return gpu


def upgrade(
    name: str,
    driver: str | None = None,
    cuda: str | None = None,
    kernel: str | None = None,
    toolkit: str | None = None,
    layout: Layout | None = None,
) -> dict[str, str]:
    """What the host reports after the upgrade: {"driver", "cuda", "kernel", "toolkit"}."""
    require_root()
    host = _host(name, layout or Layout.default())
    changes = {k: v for k, v in (("driver_version", driver), ("cuda_version", cuda), ("toolkit_version", toolkit)) if v}
    gpu = _update_gpu(host, changes) if changes else json.loads((_root(host) / GPU_DIR / "gpu.json").read_text())
    release = _root(host) / GPU_DIR / "osrelease"
    if kernel:
        # In place (same inode): the host sees this file through a bind mount over /proc/sys/kernel/osrelease.
        with open(release, "r+") as f:
            f.truncate(0)
            f.write(kernel + "\n")
        check_proc_binds(host)  # the host reads the new release now, or this says why not
    if changes or kernel:  # as apt would: the package database says what is installed now
        packages.record_installed(_root(host), gpu, release.read_text().strip())
    return {
        "driver": str(gpu.get("driver_version", "")),
        "cuda": str(gpu.get("cuda_version", "")),
        "kernel": release.read_text().strip(),
        "toolkit": str(gpu.get("toolkit_version", "")),
    }


def slow(name: str, factor: float, layout: Layout | None = None) -> list[str]:
    """Make the host's GPU stand-in `factor` times slower (1 restores it), now: the host's GPU description and
    the copy inside every running GPU container. Returns the containers updated."""
    if not factor > 0 or factor != factor or factor == float("inf"):
        raise SimError(f"slowdown factor must be a positive number, not {factor}")
    require_root()
    host = _host(name, layout or Layout.default())
    _update_gpu(host, {"slowdown": factor})
    listing = host_exec(host, ["docker", "ps", "--format", "{{.Names}}"])
    if listing.returncode != 0:
        raise SimError(f"docker on {name}: {listing.stderr.strip()}")
    updated = []
    for container in listing.stdout.split():
        probe = host_exec(host, ["docker", "exec", container, "test", "-f", GPU_JSON])
        if probe.returncode != 0:
            continue  # not a GPU container: the runtime hook put no GPU description in it
        copied = host_exec(host, ["docker", "cp", GPU_JSON, f"{container}:{GPU_JSON}"])
        if copied.returncode != 0:
            raise SimError(f"could not update {container} on {name}: {copied.stderr.strip()}")
        updated.append(container)
    return updated


def repush(ref: str, layout: Layout | None = None) -> str:
    """Re-push one rehearsal image under its tag with new bits (the registry behind nvcr.io); the new digest."""
    from . import images, registry
    from .rootfs import ensure_rootfs

    require_root()
    layout = layout or Layout.default()
    ca_crt, _, _ = registry.ensure_certificates(layout)
    return images.repush(layout, ensure_rootfs(layout, "image"), f"http://{layout.backend}", ca_crt, ref)


def reboot(name: str, layout: Layout | None = None, wait: bool = True) -> float:
    """Reboot one simulated Spark through its own systemd (`systemctl reboot` inside: services stop, the machine
    starts again on the same disk and address); with `wait`, until SSH and docker answer again. Returns seconds."""
    require_root()
    layout = layout or Layout.default()
    host = _host(name, layout)
    started = time.monotonic()
    before = init_pid(host)
    host_exec(host, ["systemctl", "reboot"])
    deadline = started + REBOOT_TIMEOUT_S
    while time.monotonic() < deadline:  # the old systemd goes away, a new one comes
        try:
            if init_pid(host) != before:
                break
        except SimError:
            pass  # between the two machines
        time.sleep(0.2)
    else:
        console = (Path(host.dir) / "console.log").read_text(errors="replace").splitlines()[-15:]
        raise SimError(
            f"{name} did not come back within {REBOOT_TIMEOUT_S} s; its console ended with:\n" + "\n".join(console)
        )
    if wait:
        wait_ready(host)
    return time.monotonic() - started
