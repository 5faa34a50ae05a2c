"""Stand-in `nvidia-smi`: the GB10's identity in the formats spark-state and people use."""

from __future__ import annotations

import json
import os
import sys
import time

# Not `from .gpu import read_gpu`: that pulls in the server (asyncio); nvidia-smi must start fast.
GPU_FILE = os.environ.get("SPARK_SIM_GPU_FILE", "/etc/spark-sim/gpu.json")
DEFAULTS = {"driver_version": "580.95.05", "cuda_version": "13.0", "uuid": "GPU-5a1e0000-0000-4000-8000-00000000gb10"}


def read_gpu() -> dict | None:
    try:
        with open(GPU_FILE) as f:
            return {**DEFAULTS, **json.load(f)}
    except (OSError, ValueError):
        return None


FIELDS = {
    "name": lambda g: g["name"],
    "gpu_name": lambda g: g["name"],
    "compute_cap": lambda g: g["compute_capability"],
    "driver_version": lambda g: g["driver_version"],
    "uuid": lambda g: g["uuid"],
    "gpu_uuid": lambda g: g["uuid"],
    "index": lambda g: "0",
    "count": lambda g: "1",
    "pci.bus_id": lambda g: "00000000:01:00.0",
    # GB10 memory is unified with the CPU: nvidia-smi has no separate framebuffer to report.
    "memory.total": lambda g: "[N/A]",
    "memory.used": lambda g: "[N/A]",
    "memory.free": lambda g: "[N/A]",
    "utilization.gpu": lambda g: "0 %",
    "temperature.gpu": lambda g: "41",
}


def main(argv: list[str]) -> int:
    gpu = read_gpu()
    if gpu is None:
        print(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running."
        )
        return 9
    query = next((a.split("=", 1)[1] for a in argv if a.startswith("--query-gpu=")), None)
    fmt = next((a.split("=", 1)[1] for a in argv if a.startswith("--format=")), "")
    if "-L" in argv or "--list-gpus" in argv:
        print(f"GPU 0: {gpu['name']} (UUID: {gpu['uuid']})")
        return 0
    if query is not None:
        names = [n.strip() for n in query.split(",") if n.strip()]
        unknown = [n for n in names if n not in FIELDS]
        if unknown:
            print(f'Field "{unknown[0]}" is not a valid field to query.\n', file=sys.stderr)
            return 2
        if "csv" not in fmt:
            print("Format must be specified with --format=csv", file=sys.stderr)
            return 2
        if "noheader" not in fmt:
            print(", ".join(names))
        print(", ".join(FIELDS[n](gpu) for n in names))
        return 0
    print(time.strftime("%a %b %d %H:%M:%S %Y"))
    print("+-----------------------------------------------------------------------------------------+")
    print(
        f"| NVIDIA-SMI {gpu['driver_version']}    Driver Version: {gpu['driver_version']}    "
        f"CUDA Version: {gpu['cuda_version']}     |"
    )
    print("|-----------------------------------------+------------------------+----------------------+")
    print(f"|   0  {gpu['name']:<34} | 00000000:01:00.0  Off |                  N/A |")
    print("| N/A   41C    P0    11W /  N/A           |  Not Supported         |      0%      Default |")
    print("+-----------------------------------------+------------------------+----------------------+")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
