"""Killed mid-deploy, on the rehearsal fleet: the control machine dies (SIGKILL to pyinfra's whole process group,
the bench it started included) at each long step of a deploy of gamma — the checkpoint download, the conversion,
the engine build, the health wait after a restart, the bench. After each: nothing half-done is served or
reported as done, drift says what is unfinished, and the next deploy converges (exit 0, drift clean).

Not killed here: the image pull (the rehearsal's registry answers a pull in well under a second until its links
are shaped; a pull broken off mid-way is test_faults' nvcr.io-down case) and the moment between a unit's write
and its restart (test_lost_restart writes that state by hand: it is too short to hit from outside).

SPARK_STATE_KILL_ROUNDS (default 1) repeats the five kills, each round with its own engine and KV settings."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet
from e2e_helpers import GAMMA, answers, deploy, deploy_in_background, drift, drifted, state_text

from spark_state.desired.loader import load_state_text
from spark_state.desired.names import build_container, convert_container, fetch_container
from spark_state.plan.host_plan import plan_host

ROUNDS = int(os.environ.get("SPARK_STATE_KILL_ROUNDS", "1"))
NEWER = "tritonserver:26.03-trtllm-python-py3"  # what the fleet serves after test_host_upgrade, and before test_lost_restart


def _state(nvfp4_batch: int = 16, kv: float = 0.4) -> str:
    return state_text(nvfp4_batch=nvfp4_batch, kv=kv).replace("tritonserver:25.12-trtllm-python-py3", NEWER)


ENGINE, CHECKPOINT, SERVICE, PORT = "llama31-8b-nvfp4", "llama31-8b-nvfp4", "trtllm-nvfp4", 8004
CHECKPOINTS = "/var/lib/spark-state/checkpoints"
ENGINES = "/var/lib/spark-state/engines"


def _containers(fleet: Fleet) -> dict[str, str]:
    """gamma's running containers: name → the identity label of the unit that started it."""
    listing = fleet.root(
        fleet.hosts[GAMMA],
        "docker ps --format '{{.Names}} {{.Label \"spark-state.identity\"}}'",
        check=False,
    ).stdout
    return dict((line.split(" ", 1) + [""])[:2] for line in listing.splitlines() if line.strip())


def _running(fleet: Fleet, container: str, identity: str | None = None) -> Callable[[int], bool]:
    """Whether gamma runs `container` (started from the unit of `identity`, when given)."""

    def reached(_: int) -> bool:
        found = _containers(fleet)
        return container in found and identity in (None, found[container])

    return reached


def _bench_running(group: int) -> bool:
    """The deploy's bench (a process of its own, in the deploy's process group) is measuring."""
    for entry in Path("/proc").iterdir():  # /proc itself, not pgrep: procps is not on every fresh Debian
        try:
            mine = entry.name.isdigit() and os.getpgid(int(entry.name)) == group
            if mine and b"spark_state.bench.run_target" in (entry / "cmdline").read_bytes():
                return True
        except OSError:
            continue  # the process ended while we looked
    return False


def _kill_when(workdir: Path, name: str, text: str, reached: Callable[[int], bool]) -> str:
    """Deploy `text` to gamma and kill the control machine's processes as soon as `reached(group)`; the log."""
    run = deploy_in_background(workdir, name, text, "--limit", "gamma")
    deadline = time.monotonic() + 600
    while not reached(run.pid):
        if run.poll() is not None:
            raise AssertionError(f"the deploy ended before {name} was reached:\n{run.communicate()[0][-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} was not reached within 600 s")
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)
    return run.communicate(timeout=60)[0]


def _settled(fleet: Fleet) -> None:
    """What the dead run left running on gamma (a download, a conversion or a build in a container) is stopped,
    as a reboot would stop it: the worst case, where the work dies with its control machine. (Left alone, it runs
    to its end in docker and completes what it started, manifest and all.)"""
    fleet.root(
        fleet.hosts[GAMMA],
        "docker ps --format '{{.Names}}' | grep -E '^spark-state-(fetch|convert|build)-' | xargs -r docker kill",
        check=False,
    )
    deadline = time.monotonic() + 300
    while any(
        n.startswith(("spark-state-fetch-", "spark-state-convert-", "spark-state-build-")) for n in _containers(fleet)
    ):
        assert time.monotonic() < deadline, _containers(fleet)
        time.sleep(1)


def _manifests(fleet: Fleet, root: str, name: str) -> list[str]:
    found = fleet.root(fleet.hosts[GAMMA], f"ls {root}/{name}/*/.spark-state.json 2>/dev/null", check=False)
    return found.stdout.split()


def _engine_fingerprint(text: str) -> str:
    plan = plan_host(load_state_text(text).state, "gamma")
    return next(e.fingerprint for e in plan.engines if e.name == ENGINE)


def _identity(text: str) -> str:
    plan = plan_host(load_state_text(text).state, "gamma")
    return next(s.identity for s in plan.services if s.name == SERVICE)


def _converges(workdir: Path, text: str) -> None:
    proc = deploy(workdir, text, "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-4000:]
    code, report = drift(workdir, text, "--host", "gamma")
    assert (code, drifted(report)) == (0, set())


def _gamma_drift(workdir: Path, text: str) -> set[tuple[str, str]]:
    code, report = drift(workdir, text, "--host", "gamma")
    assert code == 2, report
    return {(kind, name) for _, kind, name in drifted(report)}


def test_a_deploy_killed_at_each_long_step_leaves_nothing_half_done(fleet: Fleet, workdir: Path) -> None:
    unbenched = ("host", f"service {SERVICE} as benched")
    _converges(workdir, _state())
    for round_ in range(ROUNDS):
        batch, kv = 24 + 8 * round_, (0.45 + 0.02 * round_, 0.5 + 0.02 * round_)
        before = _state()

        # the download: what the fetcher wrote has no manifest, so it is neither used nor called done
        fleet.root(fleet.hosts[GAMMA], f"rm -rf {CHECKPOINTS}/{CHECKPOINT}")
        _kill_when(workdir, f"kill-download-{round_}", before, _running(fleet, fetch_container(CHECKPOINT)))
        _settled(fleet)
        assert _manifests(fleet, CHECKPOINTS, CHECKPOINT) == []
        assert ("checkpoint", CHECKPOINT) in _gamma_drift(workdir, before)
        assert answers(fleet, GAMMA, PORT)  # the engine it serves from was not touched
        _converges(workdir, before)

        # the conversion, then the build, of a new engine: the one served goes on serving
        rebuilt = _state(nvfp4_batch=batch)
        new = _engine_fingerprint(rebuilt)
        for step, container in (("convert", convert_container(ENGINE)), ("build", build_container(ENGINE))):
            _kill_when(workdir, f"kill-{step}-{round_}", rebuilt, _running(fleet, container))
            _settled(fleet)
            done = fleet.root(fleet.hosts[GAMMA], f"grep -l {new} {ENGINES}/{ENGINE}/*/.spark-state.json", check=False)
            assert done.stdout == "", f"a {step} killed half-way is reported built: {done.stdout}"
            assert ("engine", ENGINE) in _gamma_drift(workdir, rebuilt)
            assert answers(fleet, GAMMA, PORT)
        _converges(workdir, rebuilt)

        # the health wait after a restart, then the bench: a change that runs but was never benched is named,
        # and the next deploy benches it (the converged deploy above would fail its bench otherwise)
        for step, value in (("health wait", kv[0]), ("bench", kv[1])):
            changed = _state(nvfp4_batch=batch, kv=value)
            identity = _identity(changed)
            reached = _running(fleet, f"spark-state-{SERVICE}", identity) if step == "health wait" else _bench_running
            log = _kill_when(workdir, f"kill-{step.replace(' ', '-')}-{round_}", changed, reached)
            assert "verification verdict" not in log
            deadline = time.monotonic() + 120
            while not answers(fleet, GAMMA, PORT):  # the restarted service comes up by itself
                assert time.monotonic() < deadline
                time.sleep(1)
            assert unbenched in _gamma_drift(workdir, changed)
            proc = deploy(workdir, changed, "--limit", "gamma")
            assert proc.returncode == 0, proc.stdout[-4000:]
            assert "spark-state: gamma (" in proc.stdout, "the unbenched change is benched by the next deploy"
            code, report = drift(workdir, changed, "--host", "gamma")
            assert (code, drifted(report)) == (0, set())

    proc = deploy(workdir, _state())  # the whole fleet as the modules before and after this one have it
    assert proc.returncode == 0, proc.stdout[-4000:]
    code, report = drift(workdir, _state())
    assert (code, drifted(report)) == (0, set())
