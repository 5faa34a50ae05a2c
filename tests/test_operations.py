"""Operations as data, the way pyinfra tests its own (tests/operations/<op>/<case>.json): a probe answer and the
operation's arguments in, the commands it yields (or its noop) out.

A case file:
    {"args": {...}, "probe": {...}, "commands": [...], "noop": "..."}
- args: the operation's arguments. `plan`, `svc`, `ckpt`, `engine_plan` and `daemon` name objects of the example
  state's plan for spark-01 (a host name, a service, a checkpoint, an engine, a daemon from a package); `snapshot` is always the case's probe,
  `found` the probe read against that plan.
- verification (service_rolled_back, baseline_recorded, verification_verdict): what the verification step found,
  {"done", "at", "outcomes": {service: ServiceOutcome fields}, "figures"}.
- fleet (rollout_gate only): {"me": host, "hosts": [...], "failed": [...], "limit": [...] or null}: pyinfra's
  inventory, the hosts that failed so far and --limit, as the gate sees them when it runs.
- probe: what on_host/probe.py answered (only the sections the case needs): the operation's `snapshot`, and the
  fact an operation reads itself (baseline_recorded's host facts). "@unit_sha:SERVICE",
  "@identity:SERVICE", "@env_sha:SERVICE" and "@config_sha:DAEMON" (a daemon from a package) stand for the
  values of the plan, so cases survive a unit change.
- facts: pyinfra's own facts, by class name, for the pyinfra operations ours run (apt.packages reads
  DebPackages, systemd.service SystemdStatus and SystemdEnabled), as pyinfra's tests give them.
- commands: each a string, ["shown", string] for a command whose output pyinfra prints as it runs,
  ["stdin", string, what it reads on stdin], ["upload", path, sha256 of the content], or ["call", function] for
  a function run on this machine.
`UPDATE_GOLDEN=1` rewrites `commands` and `noop` from what the operations yield now (review the diff).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_STATE
from pyinfra.api import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.context import ctx_host, ctx_state

from spark_state.deploy import operations
from spark_state.deploy.facts import SparkHostState
from spark_state.deploy.rollout import ServiceOutcome, Verification
from spark_state.desired.loader import load_state
from spark_state.observe.found import found_for, sha256
from spark_state.on_host.probe import Snapshot
from spark_state.plan.host_plan import HostPlan, plan_host
from spark_state.plan.quoting import env_file_text

CASES = Path(__file__).parent / "operations"
STATE = load_state(EXAMPLE_STATE).state
ENV = {"NGC_API_KEY": "nvapi-test"}


class FakeState:
    """A deploy of its own, with the inventory, failed hosts and --limit the rollout gate reads."""

    def __init__(self, fleet: dict[str, Any]) -> None:
        self.inventory = [FakeHost({}, name, self) for name in fleet.get("hosts", [])]
        by_name = {h.name: h for h in self.inventory}
        self.failed_hosts = {by_name[name] for name in fleet.get("failed", [])}
        limit = fleet.get("limit")
        self.limit_hosts = None if limit is None else [by_name[name] for name in limit]

    def is_host_in_limit(self, host: FakeHost) -> bool:
        return self.limit_hosts is None or host in self.limit_hosts


class FakeHost:
    """What an operation touches of pyinfra's host: its name, state, facts and noop."""

    def __init__(
        self,
        probe: dict[str, Any],
        name: str = "spark-under-test",
        state: FakeState | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.state = state or FakeState({})
        self.data: dict[str, Any] = {"spark_host": name}
        self.probe = probe
        self.facts = facts or {}
        self.noops: list[str] = []

    def get_fact(self, cls: type, **kwargs: Any) -> Any:
        if cls is SparkHostState:
            return Snapshot.parse(self.probe)
        assert cls.__name__ in self.facts, f"the case gives no {cls.__name__} fact"
        return self.facts[cls.__name__]

    def noop(self, description: str) -> None:
        self.noops.append(description)


def _placeholders(value: Any, plan: HostPlan) -> Any:
    services = {s.name: s for s in plan.services}
    daemons = {s.name: s for s in plan.system_services}
    if isinstance(value, dict):
        return {_placeholders(k, plan): _placeholders(v, plan) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v, plan) for v in value]
    if isinstance(value, str) and value.startswith("@"):
        kind, _, name = value[1:].partition(":")
        if kind == "config_sha":  # @config_sha:DAEMON (its first file) or @config_sha:DAEMON:N
            daemon, _, index = name.partition(":")
            return sha256(daemons[daemon].files[int(index or 0)].text)
        svc = services[name]
        return {
            "unit_sha": lambda: sha256(svc.unit_text),
            "identity": lambda: svc.identity,
            "env_sha": lambda: sha256(env_file_text(svc.env, svc.secrets, ENV) or ""),
        }[kind]()
    return value


def _arguments(op: Any, args: dict[str, Any], plan: HostPlan, probe: dict[str, Any]) -> dict[str, Any]:
    resolved = dict(args)
    by_name = {"svc": plan.services, "ckpt": plan.checkpoints, "engine_plan": plan.engines}
    by_name["daemon"] = plan.system_services
    for key, items in by_name.items():
        if key in resolved:
            resolved[key] = next(i for i in items if i.name == resolved[key])
    if "plan" in resolved:
        resolved["plan"] = plan
    if isinstance(resolved.get("verification"), dict):  # what the verification step found, as it left it
        found = dict(resolved["verification"])
        outcomes = {name: ServiceOutcome(**o) for name, o in found.pop("outcomes", {}).items()}
        resolved["verification"] = Verification(**found, outcomes=outcomes)
    if isinstance(resolved.get("password"), dict):  # {"secret": NAME}: the test environment's value, wrapped
        name = resolved["password"]["secret"]
        resolved["password"] = operations.Secret(name, ENV[name])
    if "content" in resolved and isinstance(resolved["content"], dict):  # {"unit": SERVICE} or {"env": SERVICE}
        ((kind, name),) = resolved["content"].items()
        svc = next(s for s in plan.services if s.name == name)
        resolved["content"] = svc.unit_text if kind == "unit" else env_file_text(svc.env, svc.secrets, ENV)
        if inspect.signature(op).parameters["content"].annotation == "Secret":
            resolved["content"] = operations.Secret(name, resolved["content"])
    snapshot, parameters = Snapshot.parse(probe), inspect.signature(op).parameters
    facts = {"snapshot": snapshot, "found": found_for(plan, snapshot)}
    return resolved | {name: fact for name, fact in facts.items() if name in parameters}


def _rendered(command: Any) -> Any:
    if isinstance(command, FileUploadCommand):
        command.src.seek(0)
        return ["upload", command.dest, hashlib.sha256(command.src.read()).hexdigest()]
    if isinstance(command, operations.ShownCommand):
        return ["shown", command.get_raw_value()]
    if isinstance(command, StringCommand) and command.connector_arguments.get("_stdin"):
        return ["stdin", command.get_raw_value(), command.connector_arguments["_stdin"]]
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FunctionCommand):
        return ["call", command.function.__name__]
    return command


def _cases() -> list[Path]:
    return sorted(CASES.glob("*/*.json"))


@pytest.mark.parametrize("path", _cases(), ids=[f"{p.parent.name}/{p.stem}" for p in _cases()])
def test_operation(path: Path) -> None:
    case = json.loads(path.read_text())
    plan = plan_host(STATE, "spark-01")
    op = getattr(operations, path.parent.name)
    fleet = FakeState(case.get("fleet", {}))
    probe = _placeholders(case.get("probe", {}), plan)
    fake = FakeHost(probe, case.get("fleet", {}).get("me", "spark-01"), fleet, case.get("facts"))
    with ctx_host.use(fake), ctx_state.use(fleet):
        commands = [_rendered(c) for c in op._inner(**_arguments(op._inner, case["args"], plan, probe))]
    noop = fake.noops[0] if fake.noops else None
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(case | {"commands": commands, "noop": noop}, indent=2) + "\n")
    assert commands == case["commands"]
    assert noop == case.get("noop")
    assert bool(commands) != bool(noop), "an operation either acts or says why not"


def test_every_operation_has_cases() -> None:
    names = {name for name, value in vars(operations).items() if hasattr(value, "_inner")}
    covered = {p.parent.name for p in _cases()}
    assert names - covered == set(), f"operations without data tests: {sorted(names - covered)}"
