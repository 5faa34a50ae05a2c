"""Safe upgrades on the rehearsal fleet: a canary goes first and gates the rest; a changed service that fails
its bench or never becomes healthy goes back to what it ran before; drift names the rollback; the next deploy
tries the new version again; prune removes replaced builds but keeps the rollback target; a pinned state changes
nothing where the unpinned one put the same bits, and drift sees a re-pushed tag. Runs after the other e2e
modules on the same fleet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, Fleet
from e2e_helpers import (
    ALPHA,
    BETA,
    GAMMA,
    answers,
    deploy,
    drift,
    drifted,
    events,
    host_clock,
    read_fleet,
    sim,
    state_text,
    unit_files,
)

from spark_rehearsal.registry import NGC_KEY

NEWER = "tritonserver:26.03-trtllm-python-py3"
ROLLBACK = "/var/lib/spark-state/rollback"
IDENTITY = "docker inspect -f '{{index .Config.Labels \"spark-state.identity\"}}' spark-state-trtllm-nvfp4"


def _with_canary(text: str, canary: str = "beta") -> str:
    return text + f"rollout: {{canary: [{canary}]}}\n"


def _identity(fleet: Fleet, index: int) -> str:
    return fleet.root(fleet.hosts[index], IDENTITY).stdout.strip()


def _touched(fleet: Fleet, index: int, since: str) -> list[str]:
    """Pulls, container starts and creates (builds run in containers) on a host since `since`."""
    return [
        e
        for e in events(fleet, index, since)
        if e.split()[:2] in (["image", "pull"], ["container", "start"], ["container", "create"])
    ]


def _rollback_items(report: dict) -> dict[tuple[str, str], str]:
    return {
        (h["host"], d["name"]): d["observed"] for h in report["hosts"] for d in h["drift"] if d["kind"] == "rollback"
    }


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


def _prune(workdir: Path, text: str, *extra: str) -> tuple[int, dict]:
    return read_fleet("prune", workdir, text, *extra)


def _slot_engine(fleet: Fleet, index: int) -> str:
    """The engine directory the kept (rollback) unit of trtllm-nvfp4 serves."""
    unit = fleet.root(fleet.hosts[index], f"cat {ROLLBACK}/spark-state-trtllm-nvfp4.service").stdout
    return re.search(r"-v (\S+)/engine:/engine:ro", unit).group(1)  # type: ignore[union-attr]


def test_prune_lists_replaced_builds_removes_them_and_keeps_the_rollback_target(fleet: Fleet, workdir: Path) -> None:
    upgrade = _with_canary(state_text()).replace("tritonserver:25.12-trtllm-python-py3", NEWER)
    targets = [_slot_engine(fleet, i) for i in range(3)]
    assert all("/llama31-8b-nvfp4/" in t for t in targets)

    code, report = _prune(workdir, upgrade)
    assert code == 0 and not report["removed"]
    listed = {(h["host"], i["target"]): i for h in report["hosts"] for i in h["items"]}
    engines = [i for i in listed.values() if i["kind"] == "engine"]
    assert any("25.12-trtllm-python-py3" in i["what"] for i in engines), engines
    assert not any(t in {target for _, target in listed} for t in targets)  # the rollback targets stay
    assert all(i["bytes"] > 0 for i in engines)

    code, report = _prune(workdir, upgrade, "--yes")
    assert code == 0 and report["removed"]
    for index, name in enumerate(("alpha", "beta", "gamma")):
        gone = [t for h, t in listed if h == name and t.startswith("/")]
        if gone:
            assert fleet.root(fleet.hosts[index], "ls -d " + " ".join(gone) + " 2>/dev/null; true").stdout == ""
        assert fleet.root(fleet.hosts[index], f"test -d {targets[index]}/engine", check=False).returncode == 0
        assert answers(fleet, index, 8004)
    code, report = drift(workdir, upgrade)
    assert (code, drifted(report)) == (0, set())
    code, report = _prune(workdir, upgrade)
    assert code == 0 and not [i for h in report["hosts"] for i in h["items"] if i["kind"] == "engine"]


def test_a_service_that_never_becomes_healthy_is_rolled_back_on_every_host(fleet: Fleet, workdir: Path) -> None:
    good = state_text().replace("tritonserver:25.12-trtllm-python-py3", NEWER)
    proc = deploy(workdir, good)
    assert proc.returncode == 0, proc.stdout[-4000:]
    units = [unit_files(fleet, i) for i in range(3)]
    identities = [_identity(fleet, i) for i in range(3)]

    # trtllm-serve refuses a flag it does not know: the new container exits, the health wait gives up
    bad = good.replace(
        "kv_cache_free_gpu_memory_fraction: 0.4,",
        "kv_cache_free_gpu_memory_fraction: 0.4, extra_args: [--no_such_flag], health_timeout_s: 30,",
    )
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


def _spark_state(workdir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NGC_API_KEY": NGC_KEY, "SPARK_STATE_HOME": str(workdir / "home")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "spark-state"), *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pin_writes_digests_and_commits_and_the_pinned_state_changes_nothing(fleet: Fleet, workdir: Path) -> None:
    text = "# the fleet as it serves now\n" + state_text().replace("tritonserver:25.12-trtllm-python-py3", NEWER)
    proc = deploy(workdir, text)
    assert proc.returncode == 0, proc.stdout[-4000:]
    path = workdir / "pinned.yaml"
    path.write_text(text)
    assert _spark_state(workdir, "pin", str(path), "--check").returncode == 2
    proc = _spark_state(workdir, "pin", str(path), "--inventory", "inventory/sim.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pinned = path.read_text()
    assert re.findall(r"revision: ([0-9a-f]{40})", pinned) and "revision: main" not in pinned
    assert pinned.count("@sha256:") == 3 and NEWER in pinned  # each image keeps its tag beside the digest
    assert [line for line in pinned.splitlines() if "#" in line and "revision" not in line] == [
        line for line in text.splitlines() if "#" in line
    ]
    assert _spark_state(workdir, "pin", str(path), "--check").returncode == 0

    # same commits, same bits: deploying the pinned file changes nothing anywhere
    marks = [host_clock(fleet, i) for i in range(3)]
    units = [unit_files(fleet, i) for i in range(3)]
    proc = deploy(workdir, pinned)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert [events(fleet, i, marks[i]) for i in range(3)] == [[], [], []]
    assert [unit_files(fleet, i) for i in range(3)] == units
    code, report = drift(workdir, pinned)
    assert (code, drifted(report)) == (0, set())

    # the tag is re-pushed and someone pulls it on beta: drift of the pinned state says so; a deploy restores it
    new_digest = sim("repush", f"nvcr.io/nvidia/{NEWER}").split()[-1]
    fleet.root(fleet.hosts[BETA], f"docker pull -q nvcr.io/nvidia/{NEWER}")
    code, report = drift(workdir, pinned)
    assert code == 2
    moved = [d for h in report["hosts"] for d in h["drift"] if h["host"] == "beta" and d["kind"] == "image"]
    assert moved and "re-pushed" in moved[0]["observed"] and new_digest in moved[0]["observed"]
    proc = deploy(workdir, pinned)
    assert proc.returncode == 0, proc.stdout[-4000:]
    code, report = drift(workdir, pinned)
    assert (code, drifted(report)) == (0, set())
