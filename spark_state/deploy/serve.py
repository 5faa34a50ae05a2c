"""`@deploy` functions that reconcile one Spark to the state file. Users can call them from their own deploys:

    from spark_state.deploy.serve import serve_spark
    serve_spark()                     # this host, the state file of $SPARK_STATE_FILE or inventory/state.yaml

Order: probe once → preflight (fail this host only, before any change) → images → checkpoints → chat-template
guard → engines → env files and units (daemon-reload when one changed) → remove dropped services → start or
restart what changed and wait for health → verification bench and summary (after a change, when the host changed
since its baseline, or spark_bench=always) → a new baseline when every service passed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import python
from pyinfra.operations.util import any_changed

from ..observe import baseline
from ..observe.compare import env_file_text, probe_spec, sha256
from ..observe.preflight import chat_template_message, observed_trtllm_versions, preflight
from ..plan import scripts
from ..plan.host_plan import NIM_UID, UNIT_PREFIX, HostPlan, plan_host
from ..plan.quoting import env_file_line
from ..state.inventory import state_path
from ..state.loader import load_state
from ..state.model import State
from . import operations as ops

FETCH_SCRIPT = (Path(__file__).parent.parent / "on_host" / "fetch_checkpoint.py").read_text()


def _snapshot(plan: HostPlan) -> tuple[str, dict[str, Any]]:
    spec = json.dumps(probe_spec(plan, plan.root, plan.units_dir) | {"files": _files(plan)}, sort_keys=True)
    return spec, ops.observed(spec)


def _files(plan: HostPlan) -> list[str]:
    files = [s.env_file for s in plan.services if s.env_file]
    files += [env for c in plan.checkpoints if (env := scripts.checkpoint_env_file(plan, c))]
    return files


def _secrets_needed(plan: HostPlan) -> list[str]:
    return [name for s in plan.services for name in s.secrets] + [n for c in plan.checkpoints for n in c.secrets]


def _bench_and_summarise(**kwargs: Any) -> None:
    from .report import bench_and_summarise  # imported only when a bench runs: a converged run stays light

    bench_and_summarise(**kwargs)


@deploy("spark-state: serve this Spark as the state file says")
def serve_spark(state: State | None = None, host_name: str | None = None) -> None:
    state = state or load_state(host.data.get("spark_state_file") or state_path()).state
    name = host_name or host.data.get("spark_host") or host.name
    environ = dict(os.environ)

    plan = plan_host(state, name)
    spec, observed = _snapshot(plan)
    probed = observed_trtllm_versions(observed)
    if any(probed.get(i.ref) not in (None, i.trtllm_version) for i in plan.images):
        plan = plan_host(state, name, probed)  # the image knows its TensorRT-LLM better than its tag
        spec, observed = _snapshot(plan)

    failures = preflight(plan, observed, environ, _secrets_needed(plan), state.fleet.reserved_memory_gib)
    ops.preflight_gate(name="spark-state preflight", failures=failures)
    if failures:
        return

    changes: dict[str, list[OperationMeta]] = {"host": []}
    trtllm_refs = set(json.loads(spec)["probe"])
    for image in plan.images:
        changes["host"].append(ops.docker_image(name=f"image {image.ref}", ref=image.ref, spec=spec,
                                                docker=plan.docker, trtllm=image.ref in trtllm_refs))  # fmt: skip

    for ckpt in plan.checkpoints:
        env_file = scripts.checkpoint_env_file(plan, ckpt)
        if env_file:
            text = "".join(env_file_line(k, environ[k]) + "\n" for k in ckpt.secrets)
            changes["host"].append(ops.managed_file(name=f"secrets for {ckpt.name}", path=env_file, content=text,
                                                    mode="600", spec=spec))  # fmt: skip
        changes["host"].append(ops.checkpoint(name=f"checkpoint {ckpt.name} ({ckpt.repo}@{ckpt.revision})",
                                              plan=plan, ckpt=ckpt, fetcher=FETCH_SCRIPT, spec=spec))  # fmt: skip

    checkpoints = {c.name: c for c in plan.checkpoints}
    for svc in plan.services:
        if svc.tokenizer_checkpoint:
            ckpt = checkpoints[svc.tokenizer_checkpoint]
            ops.chat_template_guard(name=f"{svc.name}: tokenizer has a chat template", service=svc.name,
                                    checkpoint_dir=ckpt.dir, spec=spec,
                                    message=chat_template_message(svc.name, ckpt.name, ckpt.repo))  # fmt: skip

    engine_ops = {e.name: ops.engine(name=f"engine {e.name} ({e.fingerprint[:16]})", plan=plan, engine_plan=e,
                                     spec=spec) for e in plan.engines}  # fmt: skip

    units = observed.get("units") or {}
    files = observed.get("files") or {}
    restarts: dict[str, bool] = {}
    for svc in plan.services:
        changes[svc.name] = [engine_ops[svc.engine]] if svc.engine else []
        unit_changed = ((units.get(svc.unit_name) or {}).get("file") or {}).get("sha256") != sha256(svc.unit_text)
        env_changed = False
        if svc.env_file:
            text = env_file_text(svc, environ) or ""
            env_changed = (files.get(svc.env_file) or {}).get("sha256") != sha256(text)
            changes[svc.name].append(ops.managed_file(name=f"{svc.name} environment", path=svc.env_file,
                                                      content=text, mode="600", spec=spec))  # fmt: skip
        if svc.cache_dir:
            changes[svc.name].append(ops.nim_cache(name=f"{svc.name} model cache", path=svc.cache_dir, uid=NIM_UID,
                                                   spec=spec))  # fmt: skip
        changes[svc.name].append(ops.unit_file(name=f"unit {svc.unit_name}", path=svc.unit_path,
                                               content=svc.unit_text, spec=spec))  # fmt: skip
        # A new unit is started, not restarted; a changed one (engine, image, flags or env) is restarted.
        restarts[svc.name] = svc.unit_name in units and (unit_changed or env_changed)

    wanted = {s.unit_name for s in plan.services}
    for unit in sorted(set(units) - wanted):
        env_file = f"{plan.secrets_dir}/{unit.removeprefix(UNIT_PREFIX).removesuffix('.service')}.env"
        changes["host"].append(ops.stale_unit_removed(name=f"remove {unit}", unit=unit, units_dir=plan.units_dir,
                                                      env_file=env_file, spec=spec))  # fmt: skip

    for svc in plan.services:
        changes[svc.name].append(ops.service_running(name=f"{svc.unit_name} running", unit=svc.unit_name,
                                                     port=svc.port, restart=restarts[svc.name],
                                                     timeout_s=svc.health_timeout_s, ready_path=svc.health_path,
                                                     container=svc.container_name, identity=svc.identity,
                                                     spec=spec))  # fmt: skip

    # A host that changed under its services since its last good deploy (driver, CUDA, kernel, OS, docker,
    # toolkit, images) is benched again even when no file changed: the bench tells whether the upgrade hurt.
    since_baseline = baseline.changes(baseline.valid(observed.get("baseline")), baseline.host_facts(observed),
                                      baseline.image_digests(observed))  # fmt: skip

    mode = str(host.data.get("spark_bench") or os.environ.get("SPARK_STATE_BENCH") or "on")
    if mode not in ("on", "always", "off"):
        raise ValueError(f"spark_bench must be on, always or off, not {mode!r}")
    fail = str(host.data.get("spark_bench_fail") or os.environ.get("SPARK_STATE_BENCH_FAIL") or "yes")
    every = [op for group in changes.values() for op in group]
    if mode != "off" and plan.services:
        changed = any_changed(*every)
        condition = (lambda: True) if mode == "always" or since_baseline else changed
        python.call(name="verification bench and summary", function=_bench_and_summarise, state=state, plan=plan,
                    changes=changes, since_baseline=since_baseline, fail_on_miss=fail.lower() not in ("no", "false", "0"),
                    _if=condition)  # fmt: skip
