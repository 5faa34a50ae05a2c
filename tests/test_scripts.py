"""Host scripts rendered from the plan: valid POSIX sh, and the resident-memory parser."""

from __future__ import annotations

import subprocess

import pytest
from conftest import EXAMPLE_STATE

from spark_state.deploy.operations import build_script, fetch_command, trtllm_version_command, wait_healthy_command
from spark_state.desired.loader import load_state
from spark_state.desired.model import Paths
from spark_state.plan.host_plan import plan_host
from spark_state.plan.quoting import sh_join, sh_word
from spark_state.remote import parse_resident, resident_command

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
    assert "progress" in lines[build] and build < next(
        i for i, line in enumerate(lines) if line.startswith("rm -rf " + engine.dir + " ")
    )


def test_other_host_commands_are_valid_sh() -> None:
    for ckpt in PLAN.checkpoints:
        _sh_syntax_ok(fetch_command(PLAN, ckpt))
    _sh_syntax_ok(wait_healthy_command(PLAN, PLAN.services[0]))
    _sh_syntax_ok(resident_command("docker", "spark-state-nim-fp8"))


def test_resident_memory_from_docker_stats_or_process_rss() -> None:
    assert parse_resident("stats 2.535GiB / 121.7GiB\nPID RSS\n") == pytest.approx(2.535)
    assert parse_resident("stats 512MiB / 121.7GiB") == pytest.approx(0.5)
    # no cgroup accounting: docker stats says 0B, the processes' RSS (KiB) is summed instead
    assert parse_resident("stats 0B / 0B\nPID RSS\n1147 40960\n1200 1024\n") == pytest.approx(41984 / 2**20)
    assert parse_resident("stats\n") is None


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        ("printf '0.17.0.post1\\n'", "ships TensorRT-LLM 0.17.0.post1, known to fail on this GPU"),
        ("false", "cannot read the TensorRT-LLM version inside image"),
        ("printf 'Traceback (most recent call last):\\nModuleNotFoundError\\n'", "answered 'ModuleNotFoundError'"),
        ("printf ''", "answered ''"),
        ("printf '1.2.0\\n'", "the plan expects 1.1.0"),
        ("printf '1.1.0\\n'", None),
    ],
)
def test_the_in_image_version_check_refuses_whatever_the_tag_said(tmp_path, answer: str, refusal: str | None) -> None:
    """The check before a build: an unreadable answer or a version below GB10's minimum stops the build before
    anything else runs, even when the plan expected nothing (a retagged or digest-named 25.01)."""
    state = load_state(EXAMPLE_STATE).state
    plan = plan_host(state.model_copy(update={"paths": Paths(root=str(tmp_path))}), "spark-01")
    engine = plan.engines[0]
    script = build_script(plan, engine).replace(trtllm_version_command(plan, engine.image_ref), answer)
    script = script.replace(_has_build_command(plan, engine.image_ref), "true")
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0  # the helper is not installed under tmp_path: a build that starts fails there
    if refusal is None:
        assert "not building" not in proc.stderr and "spark_host.py" in proc.stderr, proc.stderr
    else:
        assert refusal in proc.stderr, proc.stderr
        assert "spark_host.py" not in proc.stderr  # nothing after the check ran


def _has_build_command(plan, image_ref: str) -> str:
    return sh_join([plan.docker, "run", "--rm", "--entrypoint", "sh", image_ref, "-c", "command -v trtllm-build"])


def test_an_image_without_trtllm_build_is_refused_before_any_conversion(tmp_path) -> None:
    """A tag that does not tell (a retag, a digest) of a TensorRT-LLM without trtllm-build: the in-image check
    stops the build with the fix before the converter runs."""
    state = load_state(EXAMPLE_STATE).state
    plan = plan_host(state.model_copy(update={"paths": Paths(root=str(tmp_path))}), "spark-01")
    engine = plan.engines[0]
    script = build_script(plan, engine).replace(trtllm_version_command(plan, engine.image_ref), "printf '1.1.0\\n'")
    script = script.replace(_has_build_command(plan, engine.image_ref), "false")
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "has no trtllm-build" in proc.stderr and "`stack: trtllm`" in proc.stderr, proc.stderr
    assert "spark_host.py" not in proc.stderr  # the converter never started
