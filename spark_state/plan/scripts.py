"""Shell scripts the deploy runs on a host, rendered from plan data (pure; every state word quoted here)."""

from __future__ import annotations

import json

from ..observe.compare import MANIFEST, manifest_path
from .host_plan import UNIT_PREFIX, CheckpointPlan, EnginePlan, HostPlan
from .quoting import sh_join, sh_word

FETCH_SCRIPT_NAME = "fetch_checkpoint.py"
TRTLLM_PROBE = "import importlib.metadata as m; print(m.version('tensorrt_llm'))"
# Shared with probe_script.py (which runs on the host and cannot import this): one file per image id.
TRTLLM_VERSION_CACHE = "/var/cache/spark-state/trtllm-versions"

# Writes the engine's completion manifest: its fingerprint, inputs and the size of every engine file.
ENGINE_MANIFEST_WRITER = """
import json, os, sys
build, fingerprint, inputs, version = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
files = {}
for base, _, names in os.walk(os.path.join(build, "engine")):
    for name in names:
        path = os.path.join(base, name)
        files[os.path.relpath(path, build)] = os.path.getsize(path)
manifest = {"kind": "engine", "fingerprint": fingerprint, "inputs": inputs, "trtllm_version": version, "files": files}
with open(os.path.join(build, sys.argv[5]), "w") as f:
    json.dump(manifest, f, indent=2)
"""


def fetch_script_path(plan: HostPlan) -> str:
    return f"{plan.root}/lib/{FETCH_SCRIPT_NAME}"


def checkpoint_env_file(plan: HostPlan, ckpt: CheckpointPlan) -> str | None:
    return f"{plan.secrets_dir}/checkpoint-{ckpt.name}.env" if ckpt.secrets else None


def fetch_command(plan: HostPlan, ckpt: CheckpointPlan) -> str:
    """Download (resumably), verify and complete one checkpoint, inside its image."""
    parent, revision_dir = ckpt.dir.rsplit("/", 1)
    argv = [plan.docker, "run", "--rm", "--name", f"{UNIT_PREFIX}fetch-{ckpt.name}",
            "-e", "HF_ENDPOINT", "-e", "HF_HUB_DISABLE_TELEMETRY=1"]  # fmt: skip
    env_file = checkpoint_env_file(plan, ckpt)
    if env_file:
        argv += ["--env-file", env_file]
    argv += ["-v", f"{parent}:/ckpt", "-v", f"{fetch_script_path(plan)}:/opt/spark-state/{FETCH_SCRIPT_NAME}:ro",
             "--entrypoint", "python3", ckpt.fetch_image_ref, f"/opt/spark-state/{FETCH_SCRIPT_NAME}",
             "--repo", ckpt.repo, "--revision", ckpt.revision, "--dir", f"/ckpt/{revision_dir}"]  # fmt: skip
    return f"mkdir -p {sh_word(parent)} && {sh_join(argv)}"


def trtllm_version_command(docker: str, ref: str) -> str:
    """Print the TensorRT-LLM version inside an image, and remember it by image id for the host's probe."""
    inspect = sh_join([docker, "image", "inspect", "--format", "{{.Id}}", ref])
    probe = sh_join([docker, "run", "--rm", "--entrypoint", "python3", ref, "-c", TRTLLM_PROBE])
    cache = sh_word(TRTLLM_VERSION_CACHE)
    return (
        f"(id=$({inspect}) && v=$({probe} | tail -n 1) && mkdir -p {cache} && "
        f'printf "%s" "$v" > {cache}/$(echo "$id" | tr : -) && echo "$v")'
    )


def build_script(plan: HostPlan, engine: EnginePlan) -> str:
    """Convert and build into the .partial directory; check the image's real TensorRT-LLM first; write the
    manifest last; only then replace the final directory. A failed build leaves the served engine alone."""
    build, final = sh_word(engine.build_dir), sh_word(engine.dir)
    image = sh_word(engine.image_ref)
    probe = trtllm_version_command(plan.docker, engine.image_ref)
    expected = engine.trtllm_version or ""
    writer = sh_join(["python3", "-c", ENGINE_MANIFEST_WRITER, engine.build_dir, engine.fingerprint,
                      json.dumps(engine.inputs, sort_keys=True), expected, MANIFEST])  # fmt: skip
    return "\n".join([
        "set -e",
        f"rm -rf {build} && mkdir -p {build}",
        f"found=$( {probe} | tail -n 1)",  # the space keeps $( ( from reading as $((
        f'if [ -n {sh_word(expected)} ] && [ "$found" != {sh_word(expected)} ]; then',
        f'  echo "image "{image}" ships TensorRT-LLM $found, the plan expects "{sh_word(expected)} >&2; exit 1',
        "fi",
        engine.convert_command,
        engine.build_command,
        f"test -f {sh_word(engine.build_dir + '/engine/rank0.engine')}",
        writer,
        f"rm -rf {final} && mv {build} {final}",
        f"echo built {sh_word(manifest_path(engine.dir))}",
    ])  # fmt: skip


def wait_healthy_command(port: int, timeout_s: int, ready_path: str = "/health") -> str:
    """Poll the service's readiness path (trtllm-serve: /health; NIM: /v1/health/ready) and /v1/models on the
    host until both answer 200 (stdlib python3, no curl needed)."""
    paths = (ready_path, "/v1/models")
    code = (
        "import sys, time, urllib.request\n"
        f"deadline = time.time() + {timeout_s}\n"
        "while time.time() < deadline:\n"
        "    try:\n"
        f"        ok = all(urllib.request.urlopen('http://127.0.0.1:{port}' + p, timeout=3).status == 200\n"
        f"                 for p in {paths!r})\n"
        "    except Exception:\n"
        "        ok = False\n"
        "    if ok:\n"
        "        sys.exit(0)\n"
        "    time.sleep(1)\n"
        f"sys.exit('port {port}: {ready_path} and /v1/models did not answer 200 within {timeout_s} s')\n"
    )
    return sh_join(["python3", "-c", code])


def resident_command(docker: str, container: str) -> str:
    """Memory a service's container holds: docker stats (cgroup accounting, as the field report read it), then
    the RSS of its processes (for hosts whose docker has no memory accounting)."""
    stats = sh_join([docker, "stats", "--no-stream", "--format", "{{.MemUsage}}", container])
    top = sh_join([docker, "top", container, "-o", "pid,rss"])
    return f"echo stats $({stats} 2>/dev/null); {top} 2>/dev/null"


_UNITS = {"B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def parse_resident(output: str) -> float | None:
    """GiB from resident_command's output; None when the container is not running."""
    lines = output.splitlines()
    if lines and lines[0].startswith("stats "):
        usage = lines[0][6:].split("/")[0].strip().upper()
        number = usage.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        unit = usage[len(number):]
        if number and unit in _UNITS and float(number) > 0:
            return float(number) * _UNITS[unit] / 2**30
    kib = [int(parts[1]) for line in lines[1:] if len(parts := line.split()) == 2 and parts[1].isdigit()]
    return sum(kib) / 2**20 if kib else None
