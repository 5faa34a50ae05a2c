"""End to end on the rehearsal fleet: `pyinfra inventory/sim.py deploys/serve.py` from bare hosts to serving,
idempotent, minimal on change, per-host preflight, and honest --dry. Evidence comes from the hosts themselves
(docker events, units, files), not from pyinfra's own report alone.

The tests run in order and build on each other, like an operator's week.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import REPO, Fleet
from e2e_helpers import (
    ALPHA,
    BETA,
    ENGINE_ROOT,
    GAMMA,
    answers,
    deploy,
    deploy_in_background,
    events,
    host_clock,
    started,
    state_text,
    unit_files,
)

from spark_rehearsal.registry import NGC_KEY
from spark_state.on_host import program
from spark_state.writer_lock import LOCK_PATH


def test_bare_hosts_converge_and_serve(fleet: Fleet, workdir: Path) -> None:
    proc = deploy(workdir, state_text())
    assert proc.returncode == 0, proc.stdout[-6000:]
    for index, ports in ((ALPHA, [8000, 8003, 8004]), (BETA, [8004]), (GAMMA, [8004])):
        for port in ports:
            assert answers(fleet, index, port), f"host {index} port {port}"
    # placement: beta and gamma serve only NVFP4
    assert not answers(fleet, BETA, 8000) and not answers(fleet, BETA, 8003)
    assert "spark-state-nim-fp8.service" not in unit_files(fleet, BETA)
    # the verification bench ran for every service and passed
    history = sorted(p.parent.name + "@" + p.parent.parent.name for p in (workdir / "home" / "bench").rglob("*.json"))
    assert history == sorted(
        ["nim-fp8@alpha", "trtllm-fp8@alpha", "trtllm-nvfp4@alpha", "trtllm-nvfp4@beta", "trtllm-nvfp4@gamma"]
    )
    for path in (workdir / "home" / "bench").rglob("*.json"):
        (verdict,) = json.loads(path.read_text())["verdicts"]
        assert verdict["passed"] and verdict["checks"], path
    # beta and gamma serve NVFP4 only: of the FP8 checkpoint they hold the tokenizer, not its 9 GB of weights;
    # alpha builds from it and holds all of it
    fp8 = "/var/lib/spark-state/checkpoints/llama31-8b-fp8/main"
    for index, scope in ((ALPHA, "full"), (BETA, "tokenizer"), (GAMMA, "tokenizer")):
        listing = fleet.root(fleet.hosts[index], f"ls {fp8}").stdout.split()
        manifest = json.loads(fleet.root(fleet.hosts[index], f"cat {fp8}/.spark-state.json").stdout)
        assert manifest["scope"] == scope and "tokenizer.json" in listing and "tokenizer_config.json" in listing
        assert any(n.endswith(".safetensors") for n in listing) == (scope == "full"), (index, listing)
    # the NVFP4 engine is served with the FP8 checkpoint's tokenizer (it has the chat template)
    r = httpx.post(
        f"http://{fleet.hosts[BETA].address}:8004/v1/chat/completions",
        timeout=30,
        json={"model": "/engine", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    # a captured log reads whole: service names uncut, progress for each pull, download and build
    log = proc.stdout
    assert "…" not in log
    for name in ("trtllm-nvfp4", "trtllm-fp8", "nim-fp8"):
        assert f"│ {name} " in log, name
    assert "pull nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3: done in" in log
    assert "download nvidia/Llama-3.1-8B-Instruct-NVFP4@main:" in log
    assert "build llama31-8b-nvfp4: done in" in log and "convert llama31-8b-nvfp4: done in" in log
    assert "port 8004: healthy after" in log
    assert "[alpha] " in log and not any(f"[{h.address}]" in log for h in fleet.hosts)
    # secrets arrive as a 0600 file and never in the unit
    out = fleet.root(
        fleet.hosts[ALPHA],
        "stat -c %a /etc/spark-state/secrets/nim-fp8.env; "
        "grep -c rehearsal-key /etc/systemd/system/spark-state-nim-fp8.service; true",
    ).stdout
    assert out.split() == ["600", "0"]


def test_second_run_changes_nothing(fleet: Fleet, workdir: Path) -> None:
    marks = [host_clock(fleet, i) for i in range(3)]
    units_before = [unit_files(fleet, i) for i in range(3)]
    engines_before = fleet.root(fleet.hosts[ALPHA], f"ls -la --time-style=full-iso {ENGINE_ROOT}/*/").stdout
    proc = deploy(workdir, state_text())
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Grand total" in proc.stdout
    total = next(line for line in proc.stdout.splitlines() if "Grand total" in line).split()
    assert total[-3:] == ["-", "-", total[-4]], f"changes reported: {total}"  # success '-' error '-' = no change
    for i in range(3):
        assert events(fleet, i, marks[i]) == [], f"host {i} saw docker activity"
        assert unit_files(fleet, i) == units_before[i]
    assert fleet.root(fleet.hosts[ALPHA], f"ls -la --time-style=full-iso {ENGINE_ROOT}/*/").stdout == engines_before
    assert "spark-state: alpha" not in proc.stdout  # nothing changed: no bench, no summary table


def test_one_build_flag_rebuilds_one_engine_and_restarts_its_services(fleet: Fleet, workdir: Path) -> None:
    marks = [host_clock(fleet, i) for i in range(3)]
    proc = deploy(workdir, state_text(nvfp4_batch=16))
    assert proc.returncode == 0, proc.stdout[-3000:]
    for i in (ALPHA, BETA, GAMMA):
        seen = events(fleet, i, marks[i])
        builds = {e.split()[2] for e in seen if e.startswith("container create spark-state-build-")}
        assert builds == {"spark-state-build-llama31-8b-nvfp4"}, seen
        assert not any(" pull " in e or "fetch" in e for e in seen), seen
        services = {
            n
            for n in started(fleet, i, marks[i])
            if n.startswith("spark-state-")
            and not n.startswith(("spark-state-build-", "spark-state-convert-", "spark-state-fetch-"))
        }
        # on alpha trtllm-fp8 starts after trtllm-nvfp4 (both take a fraction of the free memory): it restarts with it
        follows = {"spark-state-trtllm-fp8"} if i == ALPHA else set()
        assert services == {"spark-state-trtllm-nvfp4", *follows}, seen
    assert answers(fleet, ALPHA, 8004) and answers(fleet, ALPHA, 8003) and answers(fleet, ALPHA, 8000)
    # the old engine build is kept (artifacts are never pruned implicitly)
    assert len(fleet.root(fleet.hosts[BETA], f"ls -d {ENGINE_ROOT}/llama31-8b-nvfp4/*/").stdout.split()) == 2


def test_known_bad_image_fails_preflight_on_that_host_only(fleet: Fleet, workdir: Path) -> None:
    mark = host_clock(fleet, GAMMA)
    units_before = unit_files(fleet, GAMMA)
    proc = deploy(workdir, state_text(nvfp4_batch=16, gamma="old-image"))
    assert proc.returncode != 0
    out = proc.stdout
    assert "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3 ships TensorRT-LLM 0.17.0.post1" in out
    assert "NVIDIA GB10" in out and "25.12-trtllm-python-py3" in out
    assert events(fleet, GAMMA, mark) == [] and unit_files(fleet, GAMMA) == units_before
    assert answers(fleet, GAMMA, 8004)  # what it served, it still serves
    assert not answers(fleet, GAMMA, 8013)
    # the other hosts went through the whole run without an error
    for name in ("alpha", "beta"):
        assert not re.search(rf"\[{name}\]\s+Error", out)
        assert re.search(rf"\[{name}\]\s+No changes", out)  # pyinfra pads names to one width


def test_checkpoint_without_chat_template_is_refused_before_start(fleet: Fleet, workdir: Path) -> None:
    proc = deploy(workdir, state_text(nvfp4_batch=16, gamma="no-template"))
    assert proc.returncode != 0
    assert "raw-nvfp4" in proc.stdout and "has no chat_template" in proc.stdout
    assert "spark-state-raw-nvfp4.service" not in unit_files(fleet, GAMMA)
    assert not answers(fleet, GAMMA, 8020)
    assert answers(fleet, GAMMA, 8004)


def test_dry_run_lists_pending_changes_and_changes_nothing(fleet: Fleet, workdir: Path) -> None:
    before = [unit_files(fleet, i) for i in range(3)]
    marks = [host_clock(fleet, i) for i in range(3)]
    proc = deploy(workdir, state_text(nvfp4_batch=16, kv=0.35), "--dry")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "unit spark-state-trtllm-nvfp4.service" in proc.stdout
    # what the verification decides is listed too: a rollback per service, the baseline, the verdict
    for step in (
        "trtllm-nvfp4: rolled back if its verification failed",
        "baseline: recorded when every service passed",
        "verification verdict",
    ):
        assert step in proc.stdout, step
    assert [unit_files(fleet, i) for i in range(3)] == before
    assert all(events(fleet, i, marks[i]) == [] for i in range(3))


def test_limit_by_the_state_names_of_hosts_and_groups(fleet: Fleet, workdir: Path) -> None:
    marks = [host_clock(fleet, i) for i in range(3)]
    proc = deploy(workdir, state_text(nvfp4_batch=16, kv=0.35), "--dry", "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "[gamma]" in proc.stdout and "[alpha]" not in proc.stdout and "[beta]" not in proc.stdout
    assert not any(f"[{h.address}]" in proc.stdout for h in fleet.hosts)  # hosts by name, never by address
    proc = deploy(workdir, state_text(nvfp4_batch=16, kv=0.35), "--dry", "--limit", "nvfp4")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all(f"[{name}]" in proc.stdout for name in ("alpha", "beta", "gamma"))
    assert all(events(fleet, i, marks[i]) == [] for i in range(3))


def test_removed_service_loses_its_unit_but_keeps_artifacts(fleet: Fleet, workdir: Path) -> None:
    proc = deploy(workdir, state_text(nvfp4_batch=16, alpha_fp8=False))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "spark-state-trtllm-fp8.service" not in unit_files(fleet, ALPHA)
    assert not answers(fleet, ALPHA, 8003) and answers(fleet, ALPHA, 8004)
    assert fleet.root(fleet.hosts[ALPHA], f"ls {ENGINE_ROOT}/llama31-8b-fp8/*/engine/rank0.engine").returncode == 0
    # and it comes back when declared again
    proc = deploy(workdir, state_text(nvfp4_batch=16))
    assert proc.returncode == 0 and answers(fleet, ALPHA, 8003)


def _hold_writer_lock(fleet: Fleet, index: int) -> subprocess.Popen[str]:
    """Another operator's run holding host `index`'s writer lock, over its own SSH channel (as a deploy holds
    it); it holds until its stdin closes or it is killed."""
    holder = json.dumps(
        {
            "operator": "tester",
            "control_machine": "other-laptop",
            "command": "pyinfra",
            "pid": 7,
            "since": "2026-12-03T08:00:00+00:00",
        }
    )
    command = shlex.join(["python3", "-c", program("lock.py"), LOCK_PATH, "stop", holder])
    proc = subprocess.Popen(
        fleet.ssh_argv(fleet.hosts[index], command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_one_writer_per_spark_a_second_stops_or_waits_and_a_killed_one_leaves_no_lock(
    fleet: Fleet, workdir: Path
) -> None:
    text = state_text(nvfp4_batch=16)  # what the fleet serves now: each run below changes nothing
    holder = _hold_writer_lock(fleet, ALPHA)
    try:
        # two hosts held: pyinfra prepares every host at once, and each must ask for its own lock (they once
        # shared one key, pyinfra's greenlet-local `host`, and only the first to ask was locked)
        second = _hold_writer_lock(fleet, BETA)
        try:
            proc = deploy(workdir, text)
        finally:
            second.stdin.close()  # type: ignore[union-attr]
            second.wait(timeout=60)
        assert proc.returncode != 0
        for name in ("alpha", "beta"):
            said = f"another spark-state writer holds {name}: tester on other-laptop since 2026-12-03T08:00:00"
            assert said in proc.stdout, proc.stdout[-3000:]
        assert "another spark-state writer holds gamma" not in proc.stdout  # the other went ahead
        assert "[gamma] No changes" in proc.stdout  # converged: it went ahead and found nothing to do

        # two deploys asked to wait: the second starts once the first waits for alpha (holding whatever it took
        # before); they wait for the holder, then for each other, and neither waits for ever for the other
        runs = [deploy_in_background(workdir, "run-0", text, "--data", "spark_lock=wait")]
        deadline = time.monotonic() + 120
        waiting = f"pgrep -fc '[/]{LOCK_PATH[1:]} wait'"  # lock programs waiting (the bracket: not this shell)
        while fleet.root(fleet.hosts[ALPHA], waiting, check=False).stdout.strip() != "1":
            assert time.monotonic() < deadline and runs[0].poll() is None, "run-0 never waited for alpha"
            time.sleep(0.5)
        runs.append(deploy_in_background(workdir, "run-1", text, "--data", "spark_lock=wait"))
        time.sleep(5)
        assert all(run.poll() is None for run in runs), "both wait while the lock is held"
    finally:
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(timeout=60)
    logs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "alpha: waiting for the writer lock, held by tester on other-laptop" in logs[0]
    assert ": waiting for the writer lock, held by " in logs[1]  # the tester's, or the first run's on a host

    # a holder killed mid-run (SIGKILL on its control machine) leaves no lock: the next writer takes it at once
    killed = _hold_writer_lock(fleet, ALPHA)
    killed.kill()
    killed.wait(timeout=60)
    proc = deploy(workdir, text)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "writer lock" not in proc.stdout


def test_the_installed_tool_inits_validates_and_applies_without_a_checkout(
    fleet: Fleet, workdir: Path, tmp_path: Path
) -> None:
    """The built wheel in an empty venv is the whole tool: `init`, `validate`, `apply --dry` and `apply` from a
    folder outside any checkout, with the rehearsal package's own inventory (what a user installs; nothing of
    this repository on the path)."""
    wheels, venv, outside = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    outside.mkdir()
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
            str(REPO / "rehearsal"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *map(str, sorted(wheels.glob("*.whl")))],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "SPARK_STATE_FILE")
    }
    env |= {"NGC_API_KEY": NGC_KEY, "SPARK_STATE_HOME": str(workdir / "home"), "XDG_DATA_HOME": str(tmp_path)}

    def tool(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / argv[0]), *argv[1:]], cwd=outside, env=env, capture_output=True, text=True, timeout=900
        )

    assert tool("spark-state", "--version").stdout.startswith("spark-state ")
    assert tool("spark-state", "init", "--hosts", "3").returncode == 0
    first = (outside / "state.yaml").read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={(tmp_path / 'spark-state' / 'spark-state.schema.json').as_uri()}"
    assert tool("spark-state", "validate", "state.yaml").returncode == 0
    inventory = tool("spark-rehearsal", "inventory").stdout.strip()
    assert inventory.startswith(str(venv)), inventory  # the installed package's, not the checkout's
    marks = [host_clock(fleet, i) for i in range(3)]
    units = [unit_files(fleet, i) for i in range(3)]
    dry = tool("spark-state", "apply", "state.yaml", "--inventory", inventory, "--dry")
    said = dry.stdout + dry.stderr  # pyinfra's own output, as it prints it
    assert dry.returncode == 0 and "unit spark-state-vllm-fp8.service" in said, said[-3000:]
    assert [unit_files(fleet, i) for i in range(3)] == units and all(events(fleet, i, marks[i]) == [] for i in range(3))
    # the fleet's own state, converged by the tests before: apply changes nothing, in pyinfra's words and code
    (outside / "fleet.yaml").write_text(state_text(nvfp4_batch=16))
    proc = tool("spark-state", "apply", "fleet.yaml", "--inventory", inventory, "-y")
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said[-3000:]
    total = next(line for line in said.splitlines() if "Grand total" in line).split()
    assert total[-3:] == ["-", "-", total[-4]], f"changes reported: {total}"
    assert all(events(fleet, i, marks[i]) == [] for i in range(3))
