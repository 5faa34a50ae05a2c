"""`@deploy` functions that reconcile one Spark to the state file. Users can call them from their own deploys:

    from spark_state.deploy.reconcile import serve_spark
    serve_spark()                     # this host, the state file of $SPARK_STATE_FILE or inventory/state.yaml

Order: ask for this Spark's writer lock and probe at once (the probe reads nothing before the lock is this
run's; held until the run ends; another writer's holder is named, and this host stops; with spark_lock=wait
every host's lock is taken first, one after another in an order all writers share) → (with `rollout.canary`:
the canaries do everything below first, then a gate every host shares lets the others go ahead only when every
canary passed) → preflight (fail this host only, before any change) → spark-state's programs (helper, fetcher,
converter) → daemons from packages (earlyoom; with `monitoring:` the node exporter and Prometheus) → images →
checkpoints → chat-template guard → engines → env files and units (the replaced ones kept for a rollback;
daemon-reload when one changed) → remove dropped services → restart what changed (chained with `_if` on its
unit and env file), start what is not running, wait for health → verification: the bench (after a change, when
the host changed since its baseline, or spark_bench=always) and the summary → one operation per service that
rolls it back when it changed and failed its health wait or its bench (`rollout.rollback`, default on) → the
host's new baseline when every service passed (written there, and kept on this machine) → its bench results for
Prometheus (with `monitoring:`) → the verdict that fails the host when a service failed. `--dry` lists each of
them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import python
from pyinfra.operations.util import any_changed

from .. import writer_lock
from ..desired.compat import NGC_KEY_ENV, NGC_REGISTRY, NGC_USER
from ..desired.loader import load_state
from ..desired.model import DesiredState
from ..desired.names import UNIT_PREFIX
from ..errors import HostError, SparkStateError
from ..inventory import address, state_path
from ..observe import baseline
from ..observe.observation import Observation, observe
from ..observe.preflight import preflight
from ..on_host import program
from ..plan.engines import CONVERTER_TEXT
from ..plan.quoting import env_file_text
from ..stacks.nim import NIM_UID
from . import operations as ops
from .facts import snapshot
from .rollout import ServiceRun, Verification

HELPER = program("spark_host.py")
FETCHER = program("fetch_checkpoint.py")


def _measure(state: Any, host: Any, **kwargs: Any) -> bool:
    """pyinfra passes its state and host to a callback that names both, and takes its return value as the
    command's status: a bench that cannot run fails the host with its message, not with a traceback."""
    from .verification import measure  # imported only when a verification runs: a converged run stays light

    try:
        measure(**kwargs)
    except SparkStateError as exc:
        host.log_styled(str(exc), fg="red", log_func=logging.getLogger("pyinfra").error)
        return False
    return True


def _none_changed(operations: list[OperationMeta]) -> Callable[[], bool]:
    """For `_if`: true when none of these operations changed anything (their counterpart of any_changed)."""
    return lambda: not any(op.did_change() for op in operations)


def _setting(name: str, env: str, default: str, allowed: tuple[str, ...]) -> str:
    value = str(host.data.get(name) or os.environ.get(env) or default).lower()
    if value not in allowed:
        raise SparkStateError(f"{name} must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {value!r}")
    return value


def _deploy_file_known_as_module() -> None:
    """pyinfra's CLI orders operations by the line numbers on the stack from the deploy file down
    (pyinfra.api.util.get_operation_order_from_stack, through inspect.stack and inspect.getframeinfo). For the
    deploy file, which pyinfra runs with exec, inspect.getmodule finds no module and scans every loaded module
    (~900) three times per operation: 2 ms an operation, a third of a converged 8-host run's control-side cost.
    A module entry naming the file lets inspect find it at once; operation order is unchanged (line numbers come
    from the frames)."""
    filename = host.state.current_deploy_filename
    if not filename:
        return
    path = os.path.abspath(filename)
    name = f"_spark_state_deploy_file.{hashlib.sha256(path.encode()).hexdigest()[:16]}"
    if name not in sys.modules:
        module = types.ModuleType(name, f"the pyinfra deploy file {path}")
        module.__file__ = path
        sys.modules[name] = module


def _spark_name(pyinfra_host: Any) -> str:
    """The state's name of the Spark pyinfra reaches as `pyinfra_host`."""
    return str(pyinfra_host.data.get("spark_host") or pyinfra_host.name)


def _addresses(pyinfra_host: Any) -> dict[str, str]:
    """Where this deploy's inventory reaches each Spark, by its state name."""
    return {_spark_name(h): address(h.name, h.data) for h in pyinfra_host.state.inventory}


@deploy("spark-state: serve this Spark as the state file says")
def serve_spark(state: DesiredState | None = None, host_name: str | None = None) -> None:
    _deploy_file_known_as_module()
    state = state or load_state(host.data.get("spark_state_file") or state_path()).state
    name = host_name or _spark_name(host)
    wait = _setting("spark_lock", "SPARK_STATE_LOCK", "stop", ("stop", "wait")) == "wait"
    try:  # one writer per Spark, held until this run ends; the probe reads the host only once it is this run's
        # Waiting: every host's lock is taken first, in the order all writers share (no two runs wait on each
        # other). Not waiting: asked for and probed at once; a busy lock fails this host in settle.
        if wait:
            asked = writer_lock.take_in_order(host, _spark_name, lambda each, said: each.log_styled(said, fg="yellow"))
        else:
            asked = writer_lock.ask(host, wait)
        addresses = _addresses(host)
        observation = observe(
            state, name, lambda request: snapshot(writer_lock.guarded(request, asked)), addresses=addresses
        )
        if not wait:
            writer_lock.settle(asked, name, wait)
            if asked and not observation.snapshot.writer:  # the probe stopped waiting for this run's token
                observation = observe(state, name, snapshot, addresses=addresses)
    except HostError as exc:  # this host is held by another writer or cannot be read: it fails alone
        ops.preflight_gate(name="spark-state writer lock and probe", failures=[str(exc)])
        return
    canary = _setting("spark_canary", "SPARK_STATE_CANARY", "on", ("on", "off")) == "on"
    canaries = list(state.rollout.canary) if canary else []
    # pyinfra runs each operation on every host before the next one, in the order of the lines that defined
    # them: the canaries' operations (first line) precede the gate every host shares, which precedes everyone
    # else's (last line). A failed canary fails the gate, and so every other host before anything changes there.
    if name in canaries:
        _reconcile(state, observation, canary=True)
    if canaries:
        ops.rollout_gate(name=f"rollout gate: canaries first ({', '.join(canaries)})", canaries=canaries)
    if name not in canaries:
        _reconcile(state, observation, canary=False)


def _reconcile(state: DesiredState, observation: Observation, canary: bool) -> None:
    environ = dict(os.environ)
    plan, request, observed, found = observation.plan, observation.request, observation.snapshot, observation.found
    rollback = state.rollout.rollback

    failures = preflight(observation, environ, state.fleet.reserved_memory_gib)
    ops.preflight_gate(name="spark-state preflight", failures=failures)
    if failures:
        return

    changes: dict[str, list[OperationMeta]] = {"host": []}
    programs = {plan.helper_path: HELPER}
    if plan.checkpoints:
        programs[plan.fetch_script_path] = FETCHER
    if plan.engines:
        programs[plan.converter_path] = CONVERTER_TEXT
    ops.programs(name="spark-state's programs on the host", files=programs, found=found)
    for system in plan.system_services:  # not among the changes a bench follows: they do not touch a service
        ops.system_service(name=f"{system.name} ({system.package})", daemon=system, snapshot=observed, found=found)
    for image in plan.images:
        if image.ngc_login:  # preflight made sure the key is here when the image must be pulled
            ops.registry_login(
                name=f"docker login {NGC_REGISTRY} for {image.ref}",
                plan=plan,
                registry=NGC_REGISTRY,
                user=NGC_USER,
                password=ops.Secret(NGC_KEY_ENV, environ.get(NGC_KEY_ENV, "")),
                image=image.ref,
                local=image.local,
                found=found,
            )
        changes["host"].append(
            ops.docker_image(
                name=f"image {image.ref}",
                plan=plan,
                ref=image.ref,
                found=found,
                local=image.local,
                read_trtllm_version=image.local in (request.images.trtllm if request.images else ()),
            )
        )

    for ckpt in plan.checkpoints:
        env_file = plan.checkpoint_env_file(ckpt)
        if env_file:
            secret = ops.Secret(f"env file of {ckpt.name}", env_file_text({}, ckpt.secrets, environ) or "")
            changes["host"].append(
                ops.private_file(
                    name=f"secrets for {ckpt.name}",
                    plan=plan,
                    path=env_file,
                    content=secret,
                    snapshot=observed,
                    found=found,
                )
            )
        # The download keeps the operator's login environment under sudo (HF_ENDPOINT for a mirror, proxies).
        changes["host"].append(
            ops.checkpoint(
                name=f"checkpoint {ckpt.name} ({ckpt.repo}@{ckpt.revision})",
                plan=plan,
                ckpt=ckpt,
                found=found,
                _preserve_sudo_env=True,
            )
        )

    checkpoints = {c.name: c for c in plan.checkpoints}
    for svc in plan.services:
        if svc.tokenizer_checkpoint:
            ckpt = checkpoints[svc.tokenizer_checkpoint]
            ops.chat_template_guard(
                name=f"{svc.name}: tokenizer has a chat template",
                plan=plan,
                service=svc.name,
                checkpoint_dir=ckpt.dir,
                snapshot=observed,
                message=svc.no_chat_template,
            )

    engine_ops = {
        e.name: ops.engine(name=f"engine {e.name} ({e.fingerprint[:16]})", plan=plan, engine_plan=e, found=found)
        for e in plan.engines
    }

    # What a restart follows from: the unit's text (engine, image, flags) and its environment. The files they
    # replace are kept in the rollback directory, so a failed change can go back to what ran before.
    runs: dict[str, ServiceRun] = {}
    restart_after: dict[str, list[OperationMeta]] = {}
    for svc in plan.services:
        service = found.services[svc.name]
        run = runs[svc.name] = ServiceRun(
            svc, previous=service.previous, marked=service.marked, relaunch=service.lost_restart
        )
        run.changes = [engine_ops[svc.engine]] if svc.engine else []
        restart_after[svc.name] = []
        if svc.env_file:
            secret = ops.Secret(f"env file of {svc.name}", env_file_text(svc.env, svc.secrets, environ) or "")
            run.env_op = ops.private_file(
                name=f"{svc.name} environment",
                plan=plan,
                path=svc.env_file,
                content=secret,
                snapshot=observed,
                found=found,
                previous=plan.rollback_env_file(svc) if rollback else None,
            )
            restart_after[svc.name].append(run.env_op)
        if svc.config_files:
            restart_after[svc.name].append(
                ops.programs(name=f"{svc.name} options", files=svc.config_files, found=found)
            )
        if svc.cache_dir:
            run.changes.append(
                ops.nim_cache(name=f"{svc.name} model cache", path=svc.cache_dir, uid=NIM_UID, snapshot=observed)
            )
        restart_after[svc.name].append(
            ops.unit_file(
                name=f"unit {svc.unit_name}",
                path=svc.unit_path,
                content=svc.unit_text,
                found=found,
                previous=plan.rollback_unit(svc) if rollback else None,
            )
        )
        run.changes += restart_after[svc.name]

    wanted = {s.unit_name for s in plan.services}
    env_files = list(plan.env_files)
    for unit in sorted(set(observed.units) - wanted):
        env_file = plan.service_env_file(unit.removeprefix(UNIT_PREFIX).removesuffix(".service"))
        env_files.append(env_file)  # removed with its unit
        changes["host"].append(
            ops.stale_unit_removed(
                name=f"remove {unit}", unit=unit, units_dir=plan.units_dir, env_file=env_file, snapshot=observed
            )
        )
    changes["host"].append(
        ops.stale_env_files_removed(
            name=f"stale env files in {plan.secrets_dir}",
            directory=plan.secrets_dir,
            snapshot=observed,
            found=found,
            wanted=[path.rsplit("/", 1)[1] for path in env_files],
        )
    )

    # With rollback on, a failed health wait does not end the host's run: the verification that follows rolls
    # the service back and then fails the host.
    restarts: dict[str, OperationMeta] = {}
    for svc in plan.services:
        run = runs[svc.name]
        # a unit that follows another went down and up with it already, when that one restarted
        leaders = [restarts[s.name] for s in plan.services if svc.unit_name in s.followers and s.name in restarts]
        restarts[svc.name] = ops.service_restarted(
            name=f"{svc.unit_name} restarted",
            plan=plan,
            svc=svc,
            found=found,
            _if=[any_changed(*restart_after[svc.name]), _none_changed(leaders)],
            _ignore_errors=rollback,
        )
        run.health = [
            restarts[svc.name],
            ops.service_running(
                name=f"{svc.unit_name} running", plan=plan, svc=svc, found=found, _ignore_errors=rollback
            ),
        ]
        run.changes += run.health

    # A host that changed under its services since its last good deploy (driver, CUDA, kernel, OS, docker,
    # toolkit, images) is benched again even when no file changed: the bench tells whether the upgrade hurt.
    since_baseline = baseline.changes(
        baseline.valid(observed.baseline),
        baseline.host_facts(observed),
        baseline.image_digests(observed),
        baseline.verified_services(plan, observed),
    )

    mode = _setting("spark_bench", "SPARK_STATE_BENCH", "on", ("on", "always", "off"))
    fail = _setting("spark_bench_fail", "SPARK_STATE_BENCH_FAIL", "yes", ("yes", "no", "true", "false", "1", "0"))
    if not plan.services:
        return
    every = [op for group in changes.values() for op in group] + [op for r in runs.values() for op in r.changes]

    def needed() -> bool:
        """After a change or a failed health wait; always when asked, when the host changed since its baseline
        (only with the bench on: it is what tells, and what records the next baseline), or when a rollback is
        still marked (a passing run clears it)."""
        return (
            mode == "always"
            or (bool(since_baseline) and mode != "off")
            or any(r.marked or r.relaunch for r in runs.values())
            or any(op.did_change() for op in every)
            or any(r.health_failed() for r in runs.values())
        )

    verification = Verification()
    python.call(
        name="verification: health and bench",
        function=_measure,
        verification=verification,
        spark=state,
        plan=plan,
        runs=list(runs.values()),
        host_changes=changes["host"],
        since_baseline=since_baseline,
        bench=mode != "off",
        canary=canary,
        rollback=rollback,
        fail_on_miss=fail in ("yes", "true", "1"),
        _if=needed,
    )
    # What the verification found decides these when they run: a rollback of each changed service that failed,
    # the host's new baseline when every service passed, and the verdict that fails the host otherwise.
    for svc in plan.services:
        ops.service_rolled_back(
            name=f"{svc.name}: rolled back if its verification failed",
            plan=plan,
            svc=svc,
            verification=verification,
            rollback=rollback,
        )
    ops.baseline_recorded(name="baseline: recorded when every service passed", plan=plan, verification=verification)
    if plan.bench_metrics is not None:
        ops.bench_metrics_written(
            name="bench results for Prometheus", plan=plan, verification=verification, snapshot=observed, found=found
        )
    ops.verification_verdict(name="verification verdict", plan=plan, verification=verification, rollback=rollback)
