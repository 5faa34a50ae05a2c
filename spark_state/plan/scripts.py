"""Shell scripts the deploy runs on a host, rendered from plan data (pure; every state word quoted here)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ..desired.compat import MIN_TRTLLM_FOR_SM12
from ..desired.names import build_container, convert_container, fetch_container
from ..on_host.probe import MANIFEST_NAME, manifest_path
from .host_plan import CheckpointPlan, EnginePlan, HostPlan, ServicePlan
from .quoting import env_file_line, sh_join, sh_word
from .templates import render

FETCH_SCRIPT_NAME = "fetch_checkpoint.py"


def helper(plan: HostPlan, *args: str) -> str:
    """A call of the host helper (spark_state/on_host/spark_host.py, uploaded to HostPlan.helper_path)."""
    return sh_join(["python3", plan.helper_path, *args])


def env_file_text(env: Mapping[str, str], secrets: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """A 0600 env file (a service's or a checkpoint download's): plain env, then secrets read from the control
    machine's environment. None when a secret is missing there (preflight reports it)."""
    lines = [env_file_line(k, v) for k, v in sorted(env.items())]
    for name in secrets:
        if name not in environ:
            return None
        lines.append(env_file_line(name, environ[name]))
    return "".join(line + "\n" for line in lines)


def fetch_command(plan: HostPlan, ckpt: CheckpointPlan) -> str:
    """Download (resumably), verify and complete one checkpoint, inside its image; the fetcher prints progress."""
    parent, revision_dir = ckpt.dir.rsplit("/", 1)
    argv = [
        plan.docker,
        "run",
        "--rm",
        "--name",
        fetch_container(ckpt.name),
        "-e",
        "HF_ENDPOINT",
        "-e",
        "HF_HUB_DISABLE_TELEMETRY=1",
        "-e",
        "HF_HUB_DISABLE_PROGRESS_BARS=1",
    ]
    env_file = plan.checkpoint_env_file(ckpt)
    if env_file:
        argv += ["--env-file", env_file]
    argv += [
        "-v",
        f"{parent}:/ckpt",
        "-v",
        f"{plan.fetch_script_path}:/opt/spark-state/{FETCH_SCRIPT_NAME}:ro",
        "--entrypoint",
        "python3",
        ckpt.fetch_image_ref,
        f"/opt/spark-state/{FETCH_SCRIPT_NAME}",
        "--repo",
        ckpt.repo,
        "--revision",
        ckpt.revision,
        "--dir",
        f"/ckpt/{revision_dir}",
        *(["--tokenizer-only"] if ckpt.tokenizer_only else []),
    ]
    # a download interrupted earlier can leave its container under the same name: docker run would refuse it
    leftover = sh_join([plan.docker, "rm", "-f", fetch_container(ckpt.name)])
    return f"mkdir -p {sh_word(parent)} && {{ {leftover} >/dev/null 2>&1 || true; }} && {sh_join(argv)}"


def pull_command(plan: HostPlan, ref: str, local: str | None = None) -> str:
    """Pull `ref` with progress lines; a pinned `name:tag@sha256:...` is then tagged `local` (`name:tag`)."""
    return helper(plan, "pull", plan.docker, ref, *([local] if local and local != ref else []))


def docker_login_command(plan: HostPlan, registry: str, user: str, image: str) -> str:
    """`docker login` through the helper; the password must come on the command's stdin."""
    return helper(plan, "docker-login", plan.docker, registry, user, image, plan.host)


def write_private_command(plan: HostPlan, path: str) -> str:
    """Write a secret file atomically (0600, its directory 0700); its content, base64, must come on stdin."""
    return helper(plan, "write-private", path)


def trtllm_version_command(plan: HostPlan, ref: str) -> str:
    """Print the TensorRT-LLM version inside an image, and remember it by image id for the host's probe."""
    return helper(plan, "trtllm-version", plan.docker, ref, plan.trtllm_versions_dir)


def chat_template_command(plan: HostPlan, checkpoint_dir: str, message: str) -> str:
    return helper(plan, "chat-template", checkpoint_dir, message)


def build_script(plan: HostPlan, engine: EnginePlan) -> str:
    """Convert and build into the .partial directory; check the image's real TensorRT-LLM first; write the
    manifest last; only then replace the final directory. A failed build leaves the served engine alone."""
    expected = engine.trtllm_version or ""
    return render(
        "build_engine.sh.j2",
        build=sh_word(engine.build_dir),
        final=sh_word(engine.dir),
        image=sh_word(engine.image_ref),
        expected=sh_word(expected),
        minimum=sh_word(MIN_TRTLLM_FOR_SM12),
        cleanup=sh_join([plan.docker, "rm", "-f", convert_container(engine.name), build_container(engine.name)]),
        version_command=trtllm_version_command(plan, engine.image_ref),
        convert=helper(plan, "progress", f"convert {engine.name}", "--", "sh", "-c", engine.convert_command),
        build_engine=helper(plan, "progress", f"build {engine.name}", "--", "sh", "-c", engine.build_command),
        rank0=sh_word(engine.build_dir + "/engine/rank0.engine"),
        manifest=helper(
            plan,
            "engine-manifest",
            engine.build_dir,
            engine.fingerprint,
            json.dumps(engine.inputs, sort_keys=True),
            expected,
            MANIFEST_NAME,
        ),
        manifest_path=sh_word(manifest_path(engine.dir)),
    )


def wait_healthy_command(plan: HostPlan, svc: ServicePlan) -> str:
    """Poll the service's readiness path (trtllm-serve: /health; NIM: /v1/health/ready) and /v1/models on the
    host until both answer 200, with a progress line while it waits."""
    return helper(
        plan,
        "wait-healthy",
        str(svc.port),
        str(svc.health_timeout_s),
        plan.docker,
        svc.container_name,
        svc.health_path,
        "/v1/models",
    )


def rollback_command(plan: HostPlan, svc: ServicePlan, restore_env: bool) -> str:
    """Put back the unit (and env file) the service ran before its last change, and restart it."""
    steps = [sh_join(["cp", "-p", plan.rollback_unit(svc), svc.unit_path])]
    if restore_env and svc.env_file:
        steps.append(sh_join(["cp", "-p", plan.rollback_env_file(svc), svc.env_file]))
    steps += [sh_join(["systemctl", "daemon-reload"]), sh_join(["systemctl", "restart", svc.unit_name])]
    return " && ".join(steps)


def write_file_command(path: str, text: str, private_directory: bool = True) -> str:
    """Write a small, non-secret document atomically (temp file beside it, then rename), creating its directory
    (readable by root only with `private_directory`; an existing one is then made so)."""
    parent = path.rsplit("/", 1)[0]
    directory = f"install -d -m 700 {sh_word(parent)}" if private_directory else f"mkdir -p {sh_word(parent)}"
    return (
        f"{directory} && printf '%s\\n' {sh_word(text)} > {sh_word(path + '.tmp')} "
        f"&& mv {sh_word(path + '.tmp')} {sh_word(path)}"
    )


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
        unit = usage[len(number) :]
        if number and unit in _UNITS and float(number) > 0:
            return float(number) * _UNITS[unit] / 2**30
    kib = [int(parts[1]) for line in lines[1:] if len(parts := line.split()) == 2 and parts[1].isdigit()]
    return sum(kib) / 2**20 if kib else None
