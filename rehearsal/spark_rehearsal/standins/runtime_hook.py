"""Stand-in `nvidia-container-runtime-hook`: dockerd registers its GPU device driver when this is on PATH, and
runs it as `... prestart` with the OCI state on stdin. Like the real hook it injects the driver's userland
(here: nvidia-smi and the GPU description) into containers started with `--gpus`."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys

GPU_FILE = "/etc/spark-sim/gpu.json"
DEFAULT_VERSION = "1.17.8"
INJECT = {"/usr/bin/nvidia-smi": "usr/bin/nvidia-smi"}
GPU_IN_CONTAINER = "etc/spark-sim/gpu.json"
# What the host's memory cgroups hold: docker's containers (systemd driver, or cgroupfs driver).
CONTAINER_CGROUPS = ("/sys/fs/cgroup/system.slice/docker-*.scope", "/sys/fs/cgroup/docker/*")
TOTAL_GIB, OS_GIB = 121.7, 3.0  # GB10's unified memory, and what DGX OS holds when nothing else runs


def cgroup_bytes(cgroup: str) -> int:
    """What a container's processes hold: its cgroup's memory.current where the memory controller is enabled on
    the unified hierarchy, else the resident memory of the processes in it (a hybrid host, whose memory
    controller is on cgroup v1 and out of the simulated host's view)."""
    try:
        with open(os.path.join(cgroup, "memory.current")) as f:
            return int(f.read())
    except (OSError, ValueError):
        pass
    held = 0
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pids = [line.strip() for line in f if line.strip() not in ("", "0")]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next((line.split()[1] for line in f if line.startswith("VmRSS:")), "0")
            held += int(rss) * 1024
        except (OSError, ValueError):
            continue  # the process ended while we read
    return held


def free_memory_gib(gpu: dict) -> float:
    """Unified memory free as the GPU would report it at this container's start (cudaMemGetInfo): the total less
    the OS and what the host's running containers hold. Containers hold simulated memory at `memory_scale`, so
    their real usage, scaled back, is what they claim of the simulated Spark."""
    scale = float(gpu.get("memory_scale", 1 / 64))
    held = sum(cgroup_bytes(cgroup) for pattern in CONTAINER_CGROUPS for cgroup in glob.glob(pattern))
    total = float(gpu.get("memory_total_gib", TOTAL_GIB))
    return max(0.0, total - OS_GIB - held / 2**30 / scale)


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-version"]):
        # nvidia-container-toolkit's hook prints two lines (seen from 1.10 to 1.20):
        #   NVIDIA Container Runtime Hook version 1.17.8
        #   commit: <sha>
        try:
            with open(GPU_FILE) as f:
                version = json.load(f).get("toolkit_version") or DEFAULT_VERSION
        except (OSError, ValueError):
            version = DEFAULT_VERSION
        print(f"NVIDIA Container Runtime Hook version {version}\ncommit: 0000000000000000000000000000000000000000")
        return 0
    if argv[:1] != ["prestart"]:
        print(f"unknown command {' '.join(argv[:1])!r}; the runtime calls `prestart`", file=sys.stderr)
        return 1
    state = json.load(sys.stdin)
    bundle = state.get("bundle") or state.get("bundlePath") or "."
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    env = dict(e.split("=", 1) for e in config.get("process", {}).get("env", []) if "=" in e)
    if env.get("NVIDIA_VISIBLE_DEVICES", "void") in ("", "void", "none"):
        return 0
    root = config["root"]["path"]
    root = root if os.path.isabs(root) else os.path.join(bundle, root)
    for source, target in INJECT.items():
        if os.path.exists(source):
            dest = os.path.join(root, target)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(source, dest)
    if os.path.exists(GPU_FILE):
        with open(GPU_FILE) as f:
            gpu = json.load(f)
        gpu["memory_free_gib_at_start"] = round(free_memory_gib(gpu), 3)
        dest = os.path.join(root, GPU_IN_CONTAINER)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w") as f:
            json.dump(gpu, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
