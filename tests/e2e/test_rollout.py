"""Safe upgrades on the rehearsal fleet: a canary goes first and gates the rest; a changed service that fails
its bench or never becomes healthy goes back to what it ran before; drift names the rollback; the next deploy
tries the new version again. Runs after the other e2e modules on the same fleet."""

from __future__ import annotations

from pathlib import Path

from conftest import Fleet
from e2e_helpers import ALPHA, BETA, GAMMA, deploy, drift, drifted, events, host_clock, sim, state_text, unit_files

NEWER = "tritonserver:26.03-trtllm-python-py3"
IDENTITY = "docker inspect -f '{{index .Config.Labels \"spark-state.identity\"}}' spark-state-trtllm-nvfp4"


def _with_canary(text: str, canary: str = "beta") -> str:
    return text + f"rollout: {{canary: [{canary}]}}\n"


def _identity(fleet: Fleet, index: int) -> str:
    return fleet.root(fleet.hosts[index], IDENTITY).stdout.strip()


def _touched(fleet: Fleet, index: int, since: str) -> list[str]:
    """Pulls, container starts and creates (builds run in containers) on a host since `since`."""
    return [e for e in events(fleet, index, since) if e.split()[:2] in (["image", "pull"], ["container", "start"],
                                                                     ["container", "create"])]  # fmt: skip


def _rollback_items(report: dict) -> dict[tuple[str, str], str]:
    return {(h["host"], d["name"]): d["observed"] for h in report["hosts"] for d in h["drift"] if d["kind"] == "rollback"}


def test_a_slow_canary_is_rolled_back_and_stops_the_rollout(fleet: Fleet, workdir: Path) -> None:
    current = _with_canary(state_text())
    proc = deploy(workdir, current)
    assert proc.returncode == 0, proc.stdout[-4000:]
    units = [unit_files(fleet, i) for i in range(3)]
    identity = _identity(fleet, BETA)

    sim("slow", fleet.hosts[BETA].name, "3")
    upgrade = current.replace("tritonserver:25.12-trtllm-python-py3", NEWER)
    marks = [host_clock(fleet, i) for i in range(3)]
    try:
        proc = deploy(workdir, upgrade)
    finally:
        sim("slow", fleet.hosts[BETA].name, "1")
    log = proc.stdout
    assert proc.returncode != 0, log[-4000:]
    # the canary built and tried the new engine, missed its bench, and serves its previous unit again
    assert any("pull" in e for e in _touched(fleet, BETA, marks[BETA])) or "26.03" in log
    assert "beta: trtllm-nvfp4 failed (" in log and "rolling back to engine llama31-8b-nvfp4" in log, log[-4000:]
    assert "verification failed on beta: trtllm-nvfp4: " in log and "rolled back to engine llama31-8b-nvfp4" in log
    assert unit_files(fleet, BETA) == units[BETA]
    assert _identity(fleet, BETA) == identity
    # the others were not touched: no pull, no build, no restart
    assert "rollout stopped: canary beta failed; alpha was not touched" in log
    for i in (ALPHA, GAMMA):
        assert _touched(fleet, i, marks[i]) == [], f"host {i} was touched"
        assert unit_files(fleet, i) == units[i]

    code, report = drift(workdir, upgrade)
    assert code == 2
    rolled = _rollback_items(report)
    assert set(rolled) == {("beta", "trtllm-nvfp4")}
    observed = rolled[("beta", "trtllm-nvfp4")]
    assert observed.startswith("rolled back: desired engine llama31-8b-nvfp4 ") and NEWER.split(":")[1] in observed
    assert "decode" in observed or "ttft" in observed.lower()

    # at full speed the same deploy goes canary first, then the rest; a third run changes nothing
    proc = deploy(workdir, upgrade)
    assert proc.returncode == 0, proc.stdout[-4000:]
    log = proc.stdout
    assert log.index("spark-state: beta (") < min(log.index("spark-state: alpha ("), log.index("spark-state: gamma ("))
    code, report = drift(workdir, upgrade)
    assert (code, drifted(report)) == (0, set())
    marks = [host_clock(fleet, i) for i in range(3)]
    proc = deploy(workdir, upgrade)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert all(events(fleet, i, marks[i]) == [] for i in range(3))
    assert "spark-state: beta (" not in proc.stdout  # nothing changed: nothing benched


def test_a_service_that_never_becomes_healthy_is_rolled_back_on_every_host(fleet: Fleet, workdir: Path) -> None:
    good = state_text().replace("tritonserver:25.12-trtllm-python-py3", NEWER)
    proc = deploy(workdir, good)
    assert proc.returncode == 0, proc.stdout[-4000:]
    units = [unit_files(fleet, i) for i in range(3)]
    identities = [_identity(fleet, i) for i in range(3)]

    # trtllm-serve refuses a flag it does not know: the new container exits, the health wait gives up
    bad = good.replace("kv_cache_free_gpu_memory_fraction: 0.4,",
                       "kv_cache_free_gpu_memory_fraction: 0.4, extra_args: [--no_such_flag], health_timeout_s: 30,")
    assert bad != good
    proc = deploy(workdir, bad)
    assert proc.returncode != 0
    for name in ("alpha", "beta", "gamma"):
        assert f"{name}: trtllm-nvfp4 failed (not answering /health and /v1/models on :8004 within 30 s)" in proc.stdout
    assert [unit_files(fleet, i) for i in range(3)] == units
    assert [_identity(fleet, i) for i in range(3)] == identities
    code, report = drift(workdir, bad)
    assert code == 2
    assert set(_rollback_items(report)) == {(h, "trtllm-nvfp4") for h in ("alpha", "beta", "gamma")}
    code, report = drift(workdir, good)  # what serves is the good state: no drift from it
    assert (code, drifted(report)) == (0, set())

    # the next deploy of the bad state tries it again (no silent "no change"), and fails again
    marks = [host_clock(fleet, i) for i in range(3)]
    proc = deploy(workdir, bad)
    assert proc.returncode != 0
    assert "spark-state-trtllm-nvfp4" in " ".join(events(fleet, BETA, marks[BETA]))
    proc = deploy(workdir, good)
    assert proc.returncode == 0, proc.stdout[-4000:]
    code, report = drift(workdir, bad)
    assert not _rollback_items(report)  # a passing deploy clears the markers
