"""A deploy that wrote a service's new unit and died before restarting it leaves the old container running.
The container carries the identity of the unit that started it: drift says "running an older version than
installed" and the next deploy restarts exactly that service (with the one that starts after it). Runs after test_host_upgrade.py on the same fleet."""

from __future__ import annotations

from pathlib import Path

from conftest import Fleet
from e2e_helpers import ALPHA, deploy, drift, drifted, host_clock, started, state_text

from spark_state.desired.loader import load_state
from spark_state.plan.host_plan import plan_host

NEWER = "tritonserver:26.03-trtllm-python-py3"


def _state(kv: float) -> str:
    return state_text(nvfp4_batch=16, kv=kv).replace("tritonserver:25.12-trtllm-python-py3", NEWER)


def test_a_restart_lost_between_unit_write_and_restart_is_flagged_and_healed(fleet: Fleet, workdir: Path) -> None:
    before, after = _state(0.4), _state(0.5)
    proc = deploy(workdir, before)
    assert proc.returncode == 0, proc.stdout[-4000:]

    # what the interrupted run did on alpha: the new unit written and loaded, no restart
    path = workdir / "lost-restart.yaml"
    path.write_text(after)
    unit = next(s for s in plan_host(load_state(path).state, "alpha").services if s.name == "trtllm-nvfp4")
    fleet.root(fleet.hosts[ALPHA], f"cat > {unit.unit_path} <<'UNIT'\n{unit.unit_text}UNIT\nsystemctl daemon-reload")

    code, report = drift(workdir, after)
    assert code == 2
    alpha = {(k, n) for h, k, n in drifted(report) if h == "alpha"}
    assert alpha == {("service", "trtllm-nvfp4 container")}
    item = next(d for h in report["hosts"] if h["host"] == "alpha" for d in h["drift"])
    assert item["observed"].startswith("running an older version than installed")

    since = host_clock(fleet, ALPHA)
    proc = deploy(workdir, after)
    assert proc.returncode == 0, proc.stdout[-4000:]
    # the service whose restart was lost, and trtllm-fp8, which starts after it (it restarts with it)
    assert started(fleet, ALPHA, since) == {"spark-state-trtllm-nvfp4", "spark-state-trtllm-fp8"}
    code, report = drift(workdir, after)
    assert (code, drifted(report)) == (0, set())
    running = fleet.root(
        fleet.hosts[ALPHA],
        "docker inspect -f '{{index .Config.Labels \"spark-state.identity\"}}' spark-state-trtllm-nvfp4",
    ).stdout.strip()
    assert running == unit.identity
