"""pyinfra operations for Sparks, in pyinfra's own shape: fact → compare → yield commands or `host.noop(...)`.

Every operation reads the host through `SparkHostState(spec=...)`; pyinfra caches a fact per arguments, so
all operations of one deploy share a single probe of the host.
"""

from __future__ import annotations

import io
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation

from ..observe.compare import checkpoint_ok, engine_ok, sha256
from ..plan import scripts
from ..plan.host_plan import CheckpointPlan, EnginePlan, HostPlan
from ..plan.quoting import sh_join, sh_word
from .facts import SparkHostState

# pyinfra 3 runs a fact's command on every get_fact; one deploy decides everything from one probe per host.
_SNAPSHOTS: dict[tuple[int, str, str], dict[str, Any]] = {}


def observed(spec: str) -> dict[str, Any]:
    """The host's probe snapshot for `spec`, taken once per deploy (state) and host."""
    key = (id(host.state), host.name, spec)
    if key not in _SNAPSHOTS:
        _SNAPSHOTS[key] = host.get_fact(SparkHostState, spec=spec)
    return _SNAPSHOTS[key]




@operation()
def preflight_gate(failures: list[str]):
    """Fail this host, and only this host, before anything changes on it."""
    if not failures:
        host.noop("preflight passed")
        return
    yield sh_join(["sh", "-c", 'printf "spark-state preflight: %s\\n" "$@" >&2; exit 1', "preflight", *failures])


@operation()
def docker_image(ref: str, spec: str, docker: str = "docker", trtllm: bool = False):
    """The image is present locally (pulled under its own name); for a TensorRT-LLM image, the version inside
    it is read once and remembered by image id."""
    if (observed(spec).get("images") or {}).get(ref):
        host.noop(f"image {ref} is present")
        return
    yield sh_join([docker, "pull", ref])
    if trtllm:
        yield scripts.trtllm_version_command(docker, ref)


def _upload(path: str, content: str, mode: str):
    """Commands that write `content` to `path` with `mode`; the file exists with its final mode before any
    content arrives, so secrets are never readable by others."""
    parent = path.rsplit("/", 1)[0]
    yield StringCommand(f"umask 077 && mkdir -p {sh_word(parent)} && touch {sh_word(path)} && chmod {mode} {sh_word(path)}")
    yield FileUploadCommand(io.BytesIO(content.encode()), path)
    yield StringCommand("chmod", mode, sh_word(path))


def _up_to_date(spec: str, path: str, content: str, mode: str) -> bool:
    current = (observed(spec).get("files") or {}).get(path) or _unit_file(observed(spec), path)
    return bool(current) and current.get("sha256") == sha256(content) and current.get("mode") == f"0o{mode}"


@operation()
def managed_file(path: str, content: str, mode: str, spec: str):
    """A file with exactly this content and mode (the probe reported its sha256 and mode)."""
    if _up_to_date(spec, path, content, mode):
        host.noop(f"{path} is up to date")
        return
    yield from _upload(path, content, mode)


@operation()
def unit_file(path: str, content: str, spec: str):
    """A systemd unit with exactly this text; systemd re-reads its units when it changed."""
    if _up_to_date(spec, path, content, "644"):
        host.noop(f"{path} is up to date")
        return
    yield from _upload(path, content, "644")
    yield StringCommand("systemctl", "daemon-reload")


def _unit_file(observed: dict[str, Any], path: str) -> dict[str, Any] | None:
    unit = (observed.get("units") or {}).get(path.rsplit("/", 1)[1])
    return unit.get("file") if unit else None


@operation()
def checkpoint(plan: HostPlan, ckpt: CheckpointPlan, fetcher: str, spec: str):
    """The checkpoint is downloaded at its pinned revision and verified (its manifest says so). `fetcher` is
    the script that downloads and verifies inside the image; it is put on the host with each download."""
    ok, found = checkpoint_ok(observed(spec), ckpt.repo, ckpt.revision, ckpt.dir)
    if ok:
        host.noop(f"checkpoint {ckpt.name}: {found}")
        return
    yield from _upload(scripts.fetch_script_path(plan), fetcher, "644")
    yield scripts.fetch_command(plan, ckpt)


@operation()
def chat_template_guard(service: str, checkpoint_dir: str, message: str, spec: str):
    """Refuse to start a chat service whose tokenizer has no chat template (trtllm-serve would answer 400)."""
    if (observed(spec).get("chat_templates") or {}).get(checkpoint_dir) is True:
        host.noop(f"{service}: tokenizer has a chat template")
        return
    check = (
        "import json, os, sys\n"
        "d = sys.argv[1]\n"
        "ok = os.path.exists(os.path.join(d, 'chat_template.jinja')) or "
        "bool(json.load(open(os.path.join(d, 'tokenizer_config.json'))).get('chat_template'))\n"
        "sys.exit(0 if ok else 'spark-state: ' + sys.argv[2])\n"
    )
    yield sh_join(["python3", "-c", check, checkpoint_dir, message])


@operation()
def engine(plan: HostPlan, engine_plan: EnginePlan, spec: str):
    """The engine is built for its fingerprint; the served engine switches only after a successful build."""
    ok, found = engine_ok(observed(spec), engine_plan.fingerprint, engine_plan.dir, engine_plan.name)
    if ok:
        host.noop(f"engine {engine_plan.name}: {found}")
        return
    yield scripts.build_script(plan, engine_plan)


@operation()
def service_running(unit: str, port: int, restart: bool, timeout_s: int, spec: str, ready_path: str = "/health",
                    container: str | None = None, identity: str | None = None):
    """The unit is enabled and active, restarted when its unit file or environment changed, and answering
    its readiness path and /v1/models (waited for after a start or restart).

    + unit: the systemd unit
    + port: the host port the service answers on
    + restart: restart it (its unit text or environment changed)
    + timeout_s: how long a start may take before this host fails
    + ready_path: `/health` for trtllm-serve, `/v1/health/ready` for a NIM
    + container, identity: the service's container and the identity label the current unit gives it; a
      running container with another identity was started from an older unit and is restarted
    """
    state = (observed(spec).get("units") or {}).get(unit) or {}
    running = (observed(spec).get("containers") or {}).get(container or "") or {}
    if identity and running.get("state") == "running" and running.get("identity") != identity:
        restart = True  # a restart an earlier run lost: the unit is current, the container is not
    answer = (observed(spec).get("health") or {}).get(str(port)) or {}
    healthy = answer.get(ready_path) == 200 and answer.get("/v1/models") == 200
    starting = restart or state.get("active") != "active"
    if state.get("enabled") != "enabled":
        yield sh_join(["systemctl", "enable", unit])
    if starting:
        yield sh_join(["systemctl", "restart", unit])
    if starting or not healthy:
        yield scripts.wait_healthy_command(port, timeout_s, ready_path)
    elif state.get("enabled") == "enabled":
        host.noop(f"{unit} is enabled, active and answering on :{port}")


@operation()
def nim_cache(path: str, uid: int, spec: str):
    """A NIM's model cache directory exists and belongs to the container's user (NIM runs as UID 1000 and
    exits when it cannot write its cache).

    + path: the cache directory on the host (mounted at /opt/nim/.cache)
    + uid: the user (and group) the NIM container runs as
    """
    current = (observed(spec).get("owners") or {}).get(path)
    if current == [uid, uid]:
        host.noop(f"{path} belongs to {uid}:{uid}")
        return
    yield sh_join(["install", "-d", "-m", "0755", "-o", str(uid), "-g", str(uid), path])


@operation()
def stale_unit_removed(unit: str, units_dir: str, env_file: str, spec: str):
    """A spark-state unit the state no longer declares is stopped, disabled and removed (artifacts are kept)."""
    if unit not in (observed(spec).get("units") or {}):
        host.noop(f"{unit} is absent")
        return
    yield sh_join(["systemctl", "disable", "--now", unit])
    yield sh_join(["rm", "-f", f"{units_dir}/{unit}", env_file])
    yield StringCommand("systemctl", "daemon-reload")
