"""The trtllm stack on the rehearsal fleet: a checkpoint served directly by trtllm-serve's PyTorch backend from the
TensorRT-LLM release image (no trtllm-build in it), with LLM API options in the file trtllm-serve reads. Runs on
gamma only (`--limit gamma`), after the other fleet modules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Fleet
from e2e_helpers import GAMMA, answers, deploy, drift, drifted, host_clock, started, state_text

from spark_state.stacks.trtllm import options_text

PORT = 8355  # the dgx-spark-playbooks' trtllm-serve port


def stack_state(chunked: bool = True) -> str:
    options = {"enable_chunked_prefill": chunked, "kv_cache_config": {"enable_block_reuse": True}}
    return (
        state_text(nvfp4_batch=16)
        .replace("images:\n", "images:\n  trtllm-rc: nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc23\n", 1)
        .replace(
            "services:\n",
            "services:\n  trt-pt: {checkpoint: llama31-8b-nvfp4, backend: pytorch, image: trtllm-rc, "
            f"port: {PORT}, llm_api_options: {json.dumps(options)}}}\n",
            1,
        )
        .replace("  gamma: {address: 10.9.0.3, groups: [nvfp4]}", "  gamma: {address: 10.9.0.3, services: [trt-pt]}")
    )


def options_files(fleet: Fleet) -> dict[str, str]:
    listing = fleet.root(
        fleet.hosts[GAMMA], 'for f in /var/lib/spark-state/services/trt-pt/*.yaml; do echo "== $f"; cat $f; done'
    ).stdout
    files = {}
    for chunk in listing.split("== ")[1:]:
        path, _, text = chunk.partition("\n")
        files[path] = text
    return files


@pytest.fixture(scope="module")
def served(fleet: Fleet, workdir: Path) -> str:
    text = stack_state()
    proc = deploy(workdir, text, "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-4000:]
    return text


def test_serves_the_checkpoint_with_its_options_file(fleet: Fleet, served: str) -> None:
    assert answers(fleet, GAMMA, PORT)
    want = options_text({"enable_chunked_prefill": True, "kv_cache_config": {"enable_block_reuse": True}})
    assert list(options_files(fleet).values()) == [want]
    argv = fleet.root(fleet.hosts[GAMMA], "docker inspect --format '{{json .Args}}' spark-state-trt-pt").stdout
    args = json.loads(argv)
    assert args[args.index("--backend") + 1] == "pytorch"
    assert "--extra_llm_api_options" in args
    assert (
        fleet.root(
            fleet.hosts[GAMMA],
            "docker run --rm --entrypoint sh nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc23 -c 'command -v trtllm-build'",
            check=False,
        ).returncode
        != 0
    )


def test_second_run_changes_nothing(fleet: Fleet, workdir: Path, served: str) -> None:
    mark = host_clock(fleet, GAMMA)
    proc = deploy(workdir, served, "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert started(fleet, GAMMA, mark) == set()
    assert "spark-state: gamma" not in proc.stdout  # nothing changed: no bench


def test_a_changed_option_restarts_that_service_only(fleet: Fleet, workdir: Path, served: str) -> None:
    mark = host_clock(fleet, GAMMA)
    proc = deploy(workdir, stack_state(chunked=False), "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert started(fleet, GAMMA, mark) == {"spark-state-trt-pt"}
    assert answers(fleet, GAMMA, PORT)
    want = options_text({"enable_chunked_prefill": False, "kv_cache_config": {"enable_block_reuse": True}})
    assert want in options_files(fleet).values()  # the earlier file stays: a rollback's unit names it


def test_drift_names_a_hand_changed_option(fleet: Fleet, workdir: Path) -> None:
    text = stack_state(chunked=False)
    want = options_text({"enable_chunked_prefill": False, "kv_cache_config": {"enable_block_reuse": True}})
    path = next(p for p, t in options_files(fleet).items() if t == want)
    fleet.root(fleet.hosts[GAMMA], f"cp {path} /root/options.bak && sed -i 's/false/true/' {path}")
    try:
        _, report = drift(workdir, text)
        # the file differs, and so does what the bench verified (the service now reads other options)
        assert {d for d in drifted(report) if d[0] == "gamma"} == {
            ("gamma", "options", path),
            ("gamma", "host", "service trt-pt as benched"),
        }
    finally:
        fleet.root(fleet.hosts[GAMMA], f"mv /root/options.bak {path}")
    _, report = drift(workdir, text)
    assert {d for d in drifted(report) if d[0] == "gamma"} == set()
