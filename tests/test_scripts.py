"""Host scripts rendered from the plan: valid POSIX sh, and the resident-memory parser."""

from __future__ import annotations

import subprocess

import pytest
from conftest import EXAMPLE_STATE

from spark_state.plan.host_plan import plan_host
from spark_state.plan.quoting import sh_word
from spark_state.plan.scripts import (
    build_script,
    fetch_command,
    parse_resident,
    resident_command,
    wait_healthy_command,
)
from spark_state.state.loader import load_state

PLAN = plan_host(load_state(EXAMPLE_STATE).state, "spark-01")


def _sh_syntax_ok(script: str) -> None:
    proc = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + "\n" + script


@pytest.mark.parametrize("engine", PLAN.engines, ids=[e.name for e in PLAN.engines])
def test_build_script_is_valid_sh_and_swaps_only_after_success(engine) -> None:
    script = build_script(PLAN, engine)
    _sh_syntax_ok(script)
    lines = script.splitlines()
    assert lines[0] == "set -e"
    build = next(i for i, line in enumerate(lines) if sh_word(engine.build_command) in line)
    assert "progress" in lines[build] and build < next(i for i, line in enumerate(lines) if line.startswith("rm -rf " + engine.dir + " "))


def test_other_host_commands_are_valid_sh() -> None:
    for ckpt in PLAN.checkpoints:
        _sh_syntax_ok(fetch_command(PLAN, ckpt))
    _sh_syntax_ok(wait_healthy_command(PLAN, 8004, 60))
    _sh_syntax_ok(resident_command("docker", "spark-state-nim-fp8"))


def test_resident_memory_from_docker_stats_or_process_rss() -> None:
    assert parse_resident("stats 2.535GiB / 121.7GiB\nPID RSS\n") == pytest.approx(2.535)
    assert parse_resident("stats 512MiB / 121.7GiB") == pytest.approx(0.5)
    # no cgroup accounting: docker stats says 0B, the processes' RSS (KiB) is summed instead
    assert parse_resident("stats 0B / 0B\nPID RSS\n1147 40960\n1200 1024\n") == pytest.approx(41984 / 2**20)
    assert parse_resident("stats\n") is None
