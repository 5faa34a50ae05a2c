"""Stand-in `nvidia-container-runtime-hook`: dockerd registers its GPU device driver when this is on PATH, and
runs it as `... prestart` with the OCI state on stdin. Like the real hook it injects the driver's userland
(here: nvidia-smi and the GPU description) into containers started with `--gpus`."""

from __future__ import annotations

import json
import os
import shutil
import sys

GPU_FILE = "/etc/spark-sim/gpu.json"
DEFAULT_VERSION = "1.17.8"
INJECT = {
    "/usr/bin/nvidia-smi": "usr/bin/nvidia-smi",
    "/etc/spark-sim/gpu.json": "etc/spark-sim/gpu.json",
}


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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
