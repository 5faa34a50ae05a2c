"""pyinfra operations for Sparks, in pyinfra's own shape: desired state in, the host's Snapshot (one probe per
deploy, `facts.snapshot`, handed to each operation) compared with it, commands or `host.noop(...)` out; the
command builders stand beside the operations that use them. Restarts are chained by the caller with
`_if=any_changed(...)` on the operations that changed a unit or its environment, as pyinfra's own
`systemd.service(restarted=True, _if=...)` is.

Each operation is tested as data: tests/operations/<operation>/<case>.json holds a probe answer and the
arguments in, the commands out (tests/test_operations.py).
"""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime
from typing import Any

from pyinfra import host
from pyinfra import state as pyinfra_state
from pyinfra.api import FileUploadCommand, FunctionCommand, QuoteString, StringCommand, operation
from pyinfra.operations import apt, systemd
from pyinfra.operations.util.files import chmod
from pyinfra.operations.util.service import handle_service_control

from ..desired.compat import MIN_TRTLLM_FOR_SM12
from ..desired.names import build_container, convert_container, fetch_container
from ..observe import baseline
from ..observe.found import Found, holds_text
from ..observe.observation import host_facts_request
from ..on_host.probe import MANIFEST_NAME, Snapshot, SystemUnitFact, manifest_path
from ..plan.checkpoints import CheckpointPlan
from ..plan.engines import EnginePlan
from ..plan.host_plan import HostPlan
from ..plan.quoting import sh_join, sh_word
from ..plan.system_services import BenchMetricsPlan, SystemServicePlan
from ..plan.templates import render
from ..plan.units import ServicePlan
from ..stacks import trtllm
from .facts import SparkHostState
from .rollout import ServiceOutcome, Verification

# Command builders (pure; every word quoted by plan.quoting) ------------------------------------------------

FETCH_SCRIPT_NAME = "fetch_checkpoint.py"
SYSTEMCTL = "systemctl {1} {0}"  # pyinfra's systemd.service formatter: {0} the unit, {1} the verb


def helper(plan: HostPlan, *args: str) -> str:
    """A call of the host helper (spark_state/on_host/spark_host.py, uploaded to HostPlan.helper_path)."""
    return sh_join(["python3", plan.helper_path, *args])


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
        *[word for pattern in ckpt.files for word in ("--include", pattern)],
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
        has_build=sh_join(
            [plan.docker, "run", "--rm", "--entrypoint", "sh", engine.image_ref, "-c", "command -v trtllm-build"]
        ),
        no_build=sh_word(trtllm.no_trtllm_build_fix(engine.image_ref, None, engine.checkpoint)),
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


class ShownCommand(StringCommand):
    """A long step (pull, download, build, health wait) whose output pyinfra prints as it arrives, at any
    verbosity: its progress lines are the only sign of life for minutes."""

    def execute(self, state, host, connector_arguments):
        connector_arguments.update(self.connector_arguments)
        return host.run_shell_command(self, print_output=True, print_input=state.print_input, **connector_arguments)


@operation()
def preflight_gate(failures: list[str]):
    """Fail this host, and only this host, before anything changes on it.

    + failures: every reason preflight found (empty: the host may be changed)
    """
    if not failures:
        host.noop("preflight passed")
        return
    yield sh_join(["sh", "-c", 'printf "spark-state preflight: %s\\n" "$@" >&2; exit 1', "preflight", *failures])


def spark_name(pyinfra_host) -> str:
    """A pyinfra host's name in the state file (inventories made by spark-state carry it as `spark_host`)."""
    return str(pyinfra_host.data.get("spark_host") or pyinfra_host.name)


@operation(is_idempotent=False)
def rollout_gate(canaries: list[str]):
    """The rest of the fleet goes ahead only when every canary passed: runs after the canaries' last operation
    (pyinfra orders it after them, as every host shares it) and fails a non-canary host when a canary failed
    or is not part of this run.

    + canaries: the state's rollout.canary host names
    """
    me = spark_name(host)
    if me in canaries:
        host.noop(f"{me} is a canary: it has passed")
        return
    hosts = {spark_name(h): h for h in pyinfra_state.inventory}
    absent = [name for name in canaries if name not in hosts or not pyinfra_state.is_host_in_limit(hosts[name])]
    failed = [name for name in canaries if name in hosts and hosts[name] in pyinfra_state.failed_hosts]
    if not absent and not failed:
        host.noop(f"canaries passed: {', '.join(canaries)}")
        return
    why = (
        f"canary {', '.join(failed)} failed"
        if failed
        else f"canary {', '.join(absent)} is not part of this run (deploy it first, with the canaries, or "
        "`--data spark_canary=off`)"
    )
    yield sh_join(["sh", "-c", 'echo "$1" >&2; exit 1', "gate", f"rollout stopped: {why}; {me} was not touched"])


def _upload(path: str, content: str, mode: str):
    """Commands that write `content` to `path` with `mode`; the file exists with its final mode before any
    content arrives, so secrets are never readable by others."""
    parent = path.rsplit("/", 1)[0]
    yield StringCommand(
        f"umask 077 && mkdir -p {sh_word(parent)} && touch {sh_word(path)} && chmod {mode} {sh_word(path)}"
    )
    yield FileUploadCommand(io.BytesIO(content.encode()), path)
    yield chmod(path, mode)


def _keep_previous(found: Found, path: str, previous: str | None):
    """Copy the file being replaced to `previous` (mode kept, in a 0700 directory): what a rollback restores."""
    if previous and found.files.get(path) is not None:
        parent = previous.rsplit("/", 1)[0]
        yield StringCommand(f"install -d -m 700 {sh_word(parent)} && cp -p {sh_word(path)} {sh_word(previous)}")


@operation()
def programs(files: dict[str, str], found: Found):
    """spark-state's own files on the host (the helper, the checkpoint fetcher, the converter, a service's LLM API
    options), each with exactly this text and mode 644 (the probe reported their sha256 and modes); only those that
    differ are uploaded.

    + files: where on the host → the program's text
    + found: the host, as the deploy's probe found it (its `files` must name each path)
    """
    stale = [path for path, text in files.items() if not holds_text(found.files.get(path), text, "0o644")]
    if not stale:
        host.noop(f"{', '.join(files)} up to date")
        return
    for path in stale:
        yield from _upload(path, files[path], "644")


@operation()
def private_file(
    plan: HostPlan, path: str, content: Secret, snapshot: Snapshot, found: Found, previous: str | None = None
):
    """A file of secrets (0600, in a 0700 directory) with exactly this content. It travels base64 on the SSH
    channel's stdin to the helper, which writes a 0600 temp file beside it and renames it into place: no argv, no
    upload staging file in /tmp (pyinfra's upload under sudo stages one there), never a half-written file.

    + plan: the host's plan (helper path)
    + path: where on the host (an env file in the secrets directory)
    + content: the whole text, wrapped so it never prints
    + snapshot: the host, as the deploy's probe found it (its `modes` must name the directory)
    + found: the same, read against the plan (its `files` must name `path`)
    + previous: where to keep the file being replaced, for a rollback (none: not kept)
    """
    directory = path.rsplit("/", 1)[0]
    loose = snapshot.modes.get(directory) not in (None, "0o700")
    if holds_text(found.files.get(path), content.value, "0o600") and not loose:
        host.noop(f"{path} is up to date")
        return
    yield from _keep_previous(found, path, previous)
    encoded = base64.b64encode(content.value.encode()).decode()
    yield StringCommand(write_private_command(plan, path), _stdin=encoded)


@operation()
def unit_file(path: str, content: str, found: Found, previous: str | None = None):
    """A systemd unit with exactly this text; systemd re-reads its units when it changed.

    + path: the unit file (in the units directory the probe lists)
    + content: the unit text
    + found: the host, as the deploy's probe found it, read against the plan
    + previous: where to keep the unit being replaced, for a rollback (none: not kept)
    """
    if holds_text(found.files.get(path), content, "0o644"):
        host.noop(f"{path} is up to date")
        return
    yield from _keep_previous(found, path, previous)
    yield from _upload(path, content, "644")
    yield from systemd.daemon_reload._inner()


@operation()
def system_service(daemon: SystemServicePlan, snapshot: Snapshot, found: Found):
    """A daemon from a package as the state configures it: the package installed (pyinfra's apt.packages, after
    `apt-get update`), its files with exactly their text (mode 644; a file with a check is replaced only once the
    check accepts it), the unit enabled and running, restarted when a file changed. Decided from the probe alone:
    nothing is asked of the host when it saw all of it in place.

    + daemon: the daemon's plan (package, unit, its files and their text)
    + snapshot: the host, as the deploy's probe found it (its `system_units` must name the unit)
    + found: the same, read against the plan (its `files` must name the file)
    """
    unit = snapshot.system_units.get(daemon.unit) or SystemUnitFact()
    stale = [f for f in daemon.files if not holds_text(found.files.get(f.path), f.text, "0o644")]
    if unit.load == "loaded" and not stale and (unit.enabled, unit.active) == ("enabled", "active"):
        host.noop(f"{daemon.name} is installed, configured, enabled and running")
        return
    if unit.load != "loaded":
        yield from apt.packages._inner(packages=[daemon.package], update=True)
    for file in stale:  # beside it first, checked when the daemon has a check, then renamed over it
        new = f"{file.path}.spark-state-new"
        yield from _upload(new, file.text, "644")
        if file.check:
            yield sh_join([new if word == "{}" else word for word in file.check])
        yield sh_join(["mv", "-f", new, file.path])
    if unit.active == "failed":  # systemd refuses to start a unit that failed too often until it is reset
        yield SYSTEMCTL.format(daemon.unit, "reset-failed")
    # A restart, not a start: the package's postinst has already started the daemon with its packaged file.
    if stale or unit.active != "active":
        yield SYSTEMCTL.format(daemon.unit, "restart")
    if unit.enabled != "enabled":
        yield SYSTEMCTL.format(daemon.unit, "enable")


@operation()
def docker_image(plan: HostPlan, ref: str, found: Found, local: str | None = None, read_trtllm_version: bool = False):
    """The image is present locally under `local` (pulled with progress lines); a pinned reference
    (`name:tag@sha256:...`) is pulled by its digest and tagged `name:tag`, and a local tag holding other bits is
    pulled again. For a TensorRT-LLM image, the version inside it is read once and remembered by image id.

    + plan: the host's plan (docker binary, helper and cache paths)
    + ref: the image reference as the state declares it
    + local: the name units and builds use (host_plan.local_ref; default: ref)
    + read_trtllm_version: read the TensorRT-LLM version inside it after the pull
    + found: the host, as the deploy's probe found it, read against the plan
    """
    local = local or ref
    if found.images.get(local):
        host.noop(f"image {ref} is present")
        return
    yield ShownCommand(pull_command(plan, ref, local))
    if read_trtllm_version:
        yield trtllm_version_command(plan, local)


class Secret:
    """A value that must not appear in pyinfra's output or logs: its repr says only what it is."""

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def __repr__(self) -> str:
        return f"<secret {self.name}>"


@operation()
def registry_login(
    plan: HostPlan,
    registry: str,
    user: str,
    password: Secret,
    image: str,
    found: Found,
    local: str | None = None,
):
    """The host's docker is logged in to `registry` before `image` is pulled from it (only then: an image already
    present needs no login). The password goes to `docker login --password-stdin` over the SSH channel's stdin —
    never in an argv, a file or pyinfra's output.

    + plan: the host's plan (docker binary, helper path, host name for messages)
    + registry: e.g. nvcr.io
    + user: e.g. $oauthtoken (NGC)
    + password: the key, wrapped so it never prints
    + image: the image that needs the login
    + found: the host, as the deploy's probe found it, read against the plan
    + local: the name it is used by on the host (default: image)
    """
    if found.images.get(local or image):
        host.noop(f"image {image} is present: no login to {registry} needed")
        return
    yield StringCommand(docker_login_command(plan, registry, user, image), _stdin=password.value)


@operation()
def checkpoint(plan: HostPlan, ckpt: CheckpointPlan, found: Found):
    """The checkpoint is downloaded at its pinned revision and verified (its manifest says so), inside its image
    by the fetcher (uploaded before, to plan.fetch_script_path), which prints progress while it downloads.

    + plan: the host's plan
    + ckpt: the checkpoint's plan (repo, revision, directory, image, secrets)
    + found: the host, as the deploy's probe found it, read against the plan
    """
    download = found.checkpoints[ckpt.name]
    if download.ready:
        host.noop(f"checkpoint {ckpt.name}: {download.seen}")
        return
    yield ShownCommand(fetch_command(plan, ckpt))


@operation()
def chat_template_guard(plan: HostPlan, service: str, checkpoint_dir: str, message: str, snapshot: Snapshot):
    """Refuse to start a chat service whose tokenizer has no chat template (trtllm-serve would answer 400).

    + service: the service that loads the tokenizer
    + checkpoint_dir: the checkpoint whose tokenizer it loads
    + message: what the host fails with when there is no template
    + snapshot: the host, as the deploy's probe found it
    """
    if snapshot.chat_templates.get(checkpoint_dir) is True:
        host.noop(f"{service}: tokenizer has a chat template")
        return
    yield chat_template_command(plan, checkpoint_dir, message)


@operation()
def engine(plan: HostPlan, engine_plan: EnginePlan, found: Found):
    """The engine is built for its fingerprint; the served engine switches only after a successful build.

    + plan: the host's plan
    + engine_plan: the engine's plan (fingerprint, directories, convert and build commands)
    + found: the host, as the deploy's probe found it, read against the plan
    """
    build = found.engines[engine_plan.name]
    if build.ready:
        host.noop(f"engine {engine_plan.name}: {build.seen}")
        return
    yield ShownCommand(build_script(plan, engine_plan))


@operation()
def nim_cache(path: str, uid: int, snapshot: Snapshot):
    """A NIM's model cache directory exists and belongs to the container's user (NIM runs as UID 1000 and
    exits when it cannot write its cache).

    + path: the cache directory on the host (mounted at /opt/nim/.cache)
    + uid: the user (and group) the NIM container runs as
    + snapshot: the host, as the deploy's probe found it
    """
    if snapshot.owners.get(path) == (uid, uid):
        host.noop(f"{path} belongs to {uid}:{uid}")
        return
    yield sh_join(["install", "-d", "-m", "0755", "-o", str(uid), "-g", str(uid), path])


@operation(is_idempotent=False)
def service_restarted(plan: HostPlan, svc: ServicePlan, found: Found):
    """Restart a running service and wait for it to answer; chain it with `_if=any_changed(unit_op, env_op)`.
    A service that was not running is left to `service_running`, which starts it (a new unit is started once,
    not started and restarted). The units that follow it (`PartOf=`) go down first and come up after it: they are
    waited for too.

    + plan: the host's plan
    + svc: the service (unit, port, readiness path, health timeout, followers)
    + found: the host, as the deploy's probe found it, read against the plan
    """
    if not found.services[svc.name].active:
        host.noop(f"{svc.unit_name} is not running; it is started, not restarted")
        return
    yield from handle_service_control(host, svc.unit_name, {svc.unit_name: True}, SYSTEMCTL, restarted=True)
    for restarted in [svc, *running_followers(plan, svc, found)]:
        yield ShownCommand(wait_healthy_command(plan, restarted))


def running_followers(plan: HostPlan, svc: ServicePlan, found: Found) -> list[ServicePlan]:
    """The running services a restart of `svc` restarts too (their units are `PartOf=` it; systemd restarts a
    follower that runs and leaves one that does not to its own start)."""
    return [s for s in plan.services if s.unit_name in svc.followers and found.services[s.name].active]


@operation()
def service_running(plan: HostPlan, svc: ServicePlan, found: Found):
    """The unit is enabled and active and answers its readiness path and /v1/models (waited for after a start).
    A container that runs but was started from an older unit than the current one (a restart an earlier run
    lost) is restarted, and the running units that follow it are waited for too (they restart with it).

    + plan: the host's plan
    + svc: the service (unit, port, container, identity, readiness path, health timeout)
    + found: the host, as the deploy's probe found it, read against the plan
    """
    service = found.services[svc.name]
    enabled = service.enabled
    relaunch = not service.active or service.lost_restart
    if not enabled:
        yield StringCommand("systemctl", "enable", QuoteString(svc.unit_name))
    if relaunch:  # a stopped unit is restarted as well: `restart` starts it
        yield from handle_service_control(host, svc.unit_name, {}, SYSTEMCTL, command="restart")
    if relaunch or not service.answers:
        yield ShownCommand(wait_healthy_command(plan, svc))
        for follower in running_followers(plan, svc, found) if relaunch else []:
            yield ShownCommand(wait_healthy_command(plan, follower))
    elif enabled:
        host.noop(f"{svc.unit_name} is enabled, active and answering on :{svc.port}")


@operation()
def stale_env_files_removed(directory: str, wanted: list[str], snapshot: Snapshot, found: Found):
    """Env files in the secrets directory that nothing on this host uses any more (a service or checkpoint the
    state dropped, or whose env and secrets it emptied) are removed: a secret is kept no longer than it is used.

    + directory: the secrets directory
    + wanted: the names of the env files this host's plan writes (and those a stale unit's removal takes)
    + snapshot: the host, as the deploy's probe found it (its `env_files` lists the directory)
    + found: the same, read against the plan (whether the directory is spark-state's to change)
    """
    if found.secrets_dir_refusal:
        host.noop(f"{directory} is not spark-state's: nothing is removed there")
        return
    stale = sorted(set(snapshot.env_files) - set(wanted))
    if not stale:
        host.noop(f"no stale env files in {directory}")
        return
    yield sh_join(["rm", "-f", *(f"{directory}/{name}" for name in stale)])


@operation()
def stale_unit_removed(unit: str, units_dir: str, env_file: str, snapshot: Snapshot):
    """A spark-state unit the state no longer declares is stopped, disabled and removed with its env file
    (artifacts are kept).

    + unit: the unit's name
    + units_dir: where unit files live
    + env_file: the service's env file
    + snapshot: the host, as the deploy's probe found it
    """
    if unit not in snapshot.units:
        host.noop(f"{unit} is absent")
        return
    yield sh_join(["systemctl", "disable", "--now", unit])
    yield sh_join(["rm", "-f", f"{units_dir}/{unit}", env_file])
    yield from systemd.daemon_reload._inner()


@operation(is_idempotent=False)
def service_rolled_back(plan: HostPlan, svc: ServicePlan, verification: Verification, rollback: bool):
    """A changed service that failed its verification gets the unit (and env file) it ran before back, is
    restarted and waited for, and a marker tells drift what serves instead; a service that passed has an earlier
    rollback's marker removed. Decided from the verification step of the same run (nothing to do at --dry).

    + plan: the host's plan
    + svc: the service
    + verification: what the verification step found (read when this operation runs)
    + rollback: the state's rollout.rollback
    """
    outcome = verification.outcomes.get(svc.name) if verification.done else None
    if outcome is None:
        host.noop(f"{svc.name}: not verified in this run, nothing to roll back")
        return
    if outcome.fatal and rollback and outcome.changed and outcome.previous:
        outcome.rolled_back_to = outcome.previous
        said = f"{plan.host}: {svc.name} failed ({outcome.reason}); rolling back to {outcome.previous}"
        yield ShownCommand(sh_join(["echo", said]))
        yield rollback_command(plan, svc, restore_env=outcome.env_changed)
        yield ShownCommand(wait_healthy_command(plan, svc))
        for follower in (s for s in plan.services if s.unit_name in svc.followers):
            # it restarted with svc if it ran (PartOf=): wait for it then
            active = sh_join(["systemctl", "is-active", "--quiet", follower.unit_name])
            yield ShownCommand(f"! {active} || {wait_healthy_command(plan, follower)}")
        document = {  # what drift reads (probe's RollbackMarker): what the deploy wanted, what serves instead, why
            "service": svc.name,
            "desired": svc.serves,
            "desired_identity": svc.identity,
            "serving": outcome.previous,
            "reason": outcome.reason,
            "at": verification.at,
        }
        yield write_file_command(plan.rollback_marker(svc), json.dumps(document, indent=2, sort_keys=True))
        return
    if not outcome.reason and outcome.marked:
        yield sh_join(["rm", "-f", plan.rollback_marker(svc)])
        return
    host.noop(f"{svc.name}: " + ("passed" if not outcome.reason else "failed, and is not rolled back"))


@operation(is_idempotent=False)
def baseline_recorded(plan: HostPlan, verification: Verification):
    """When every service of the host was benched and none failed: the host's baseline (driver, CUDA, kernel, OS,
    docker, container toolkit, image digests — probed now, after this run's pulls — and the bench figures) is
    written to plan.baseline_path, and kept in this machine's history; drift and the next deploy compare the host
    with it.

    + plan: the host's plan
    + verification: what the verification step found (read when this operation runs)
    """
    # every service was benched and none failed (a miss under spark_bench_fail=no is not a failure)
    earned = verification.done and all(o.benched and not o.fatal for o in verification.outcomes.values())
    if not earned:
        host.noop("no new baseline: " + ("nothing verified" if not verification.done else "not every service passed"))
        return
    now = host.get_fact(SparkHostState, request=host_facts_request(plan))  # not the deploy's snapshot: after it
    document = baseline.make_baseline(
        plan.host,
        baseline.host_facts(now),
        baseline.image_digests(now),
        verification.figures,
        verification.at,
        baseline.verified_services(plan, now),
    )
    text = json.dumps(document, indent=2, sort_keys=True)
    yield write_file_command(plan.baseline_path, text, private_directory=False)
    yield FunctionCommand(keep_baseline_here, (document,), {})


# What a verification bench's figures are called in Prometheus (observe.baseline's names → metric, unit scale).
BENCH_METRICS = {
    baseline.TTFT: ("spark_state_bench_ttft_p50_seconds", "Serial time to first token, p50", 0.001),
    baseline.DECODE: ("spark_state_bench_decode_tokens_per_second", "Serial decode rate, p50", 1.0),
}
AGGREGATE = ("spark_state_bench_aggregate_tokens_per_second", "Aggregate output rate at a concurrency")


def bench_metrics_text(metrics: BenchMetricsPlan, verification: Verification) -> str:
    """The node exporter's textfile (Prometheus text): each benched service's figures, whether it passed, and
    when; labelled service, stack and model (Prometheus adds the host's own labels when it scrapes)."""
    samples: dict[str, tuple[str, list[str]]] = {}

    def add(name: str, about: str, labels: dict[str, str], value: float) -> None:
        said = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items()))
        samples.setdefault(name, (about, []))[1].append(f"{name}{{{said}}} {value:.15g}")

    at = datetime.fromisoformat(verification.at).timestamp() if verification.at else 0.0
    for service, outcome in sorted(verification.outcomes.items()):
        labels = metrics.labels.get(service, {"service": service})
        if not outcome.benched:
            continue
        for figure, value in sorted(verification.figures.get(service, {}).items()):
            if figure in BENCH_METRICS:
                name, about, scale = BENCH_METRICS[figure]
                add(name, about, labels, value * scale)
            elif figure.startswith("aggregate c="):
                level = figure.removeprefix("aggregate c=").split(" ", 1)[0]
                add(AGGREGATE[0], AGGREGATE[1], labels | {"concurrency": level}, value)
        add("spark_state_bench_passed", "1 when the service met its expectations", labels, float(not outcome.reason))
        add("spark_state_bench_timestamp_seconds", "When the bench ran (unix time)", labels, at)
    lines = []
    for name, (about, values) in samples.items():
        lines += [
            f"# HELP {name} {about} (the last verification bench by spark-state).",
            f"# TYPE {name} gauge",
            *values,
        ]
    return "\n".join(lines)


def _label_value(value: str) -> str:
    """A label value as Prometheus' text format escapes it (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@operation(is_idempotent=False)
def bench_metrics_written(plan: HostPlan, verification: Verification, snapshot: Snapshot, found: Found):
    """When this run's verification benched the host: its figures as Prometheus text in the node exporter's
    textfile directory (plan.bench_metrics), replaced whole (a temp file renamed over it: the collector reads
    *.prom files only, never a half-written one). When nothing was benched and the file is not there yet (the
    monitoring is new), the bench of the host's baseline (its last good deploy) is written instead.

    + plan: the host's plan (its bench_metrics, set with `monitoring:`)
    + verification: what the verification step found (read when this operation runs)
    + snapshot: the host, as the deploy's probe found it (its baseline)
    + found: the same, read against the plan (its `files` must name the textfile)
    """
    if plan.bench_metrics is None:
        host.noop("no monitoring declared")
        return
    if verification.done and any(o.benched for o in verification.outcomes.values()):
        yield write_file_command(plan.bench_metrics.path, bench_metrics_text(plan.bench_metrics, verification), False)
        return
    recorded = baseline.valid(snapshot.baseline)
    if found.files.get(plan.bench_metrics.path) is None and recorded and recorded["bench"]:
        last = Verification(
            done=True,
            at=str(recorded.get("recorded_at") or ""),
            outcomes={service: ServiceOutcome(benched=True) for service in recorded["bench"]},
            figures={service: dict(figures) for service, figures in recorded["bench"].items()},
        )
        yield write_file_command(plan.bench_metrics.path, bench_metrics_text(plan.bench_metrics, last), False)
        return
    host.noop("nothing benched in this run")


def keep_baseline_here(document: dict[str, Any]) -> None:
    """The baseline just written on the host, kept in this machine's history too."""
    from .verification import keep_baseline  # imported only when a baseline is written: a converged run stays light

    keep_baseline(document)


@operation(is_idempotent=False)
def verification_verdict(plan: HostPlan, verification: Verification, rollback: bool):
    """Fail the host when a service failed its verification (after its rollback), naming each service, the
    missed metric (measured vs expected) and what it serves again.

    + plan: the host's plan
    + verification: what the verification step found (read when this operation runs)
    + rollback: the state's rollout.rollback
    """
    failed = []
    for name, o in verification.outcomes.items():
        if not o.fatal:
            continue
        if o.rolled_back_to:
            failed.append(f"{name}: {o.reason}; rolled back to {o.rolled_back_to}")
        elif rollback and o.changed and not o.previous:
            failed.append(f"{name}: {o.reason}; nothing to roll back to (it is new on this host)")
        else:
            failed.append(f"{name}: {o.reason}")
    if not failed:
        missed = any(o.reason for o in verification.outcomes.values())
        host.noop(
            f"{plan.host}: "
            + (
                "nothing verified"
                if not verification.done
                else "missed expectations reported, not failed (spark_bench_fail=no)"
                if missed
                else "every service passed"
            )
        )
        return
    said = f"verification failed on {plan.host}: " + "; ".join(failed)
    yield sh_join(["sh", "-c", 'echo "$1" >&2; exit 1', "verdict", said])
