"""Shared by the end-to-end tests: a three-host state, a pyinfra runner, and evidence read from the hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import REPO, Fleet

from spark_rehearsal.registry import NGC_KEY

ALPHA, BETA, GAMMA = 0, 1, 2  # state hosts alpha, beta, gamma → sim hosts spark-01..03, in order
ENGINE_ROOT = "/var/lib/spark-state/engines"


def state_text(nvfp4_batch: int = 8, gamma: str = "nvfp4", alpha_fp8: bool = True, kv: float = 0.4) -> str:
    """The seed's three stacks on three hosts, with a quick bench. `gamma` picks what the third host serves."""
    alpha_services = ["nim-fp8", "trtllm-fp8"] if alpha_fp8 else ["nim-fp8"]
    gamma_host = {
        "nvfp4": "  gamma: {address: 10.9.0.3, groups: [nvfp4]}",
        "old-image": "  gamma: {address: 10.9.0.3, gpu: detect, groups: [nvfp4], services: [old-fp8]}",
        "no-template": "  gamma: {address: 10.9.0.3, groups: [nvfp4], services: [raw-nvfp4]}",
    }[gamma]
    old = (
        "  old-fp8: {checkpoint: llama31-8b-fp8, image: triton-25.01, quantization: fp8}\n"
        if gamma == "old-image"
        else ""
    )
    old_service = "  old-fp8: {engine: old-fp8, port: 8013}\n" if gamma == "old-image" else ""
    return f"""
images:
  triton-25.12: nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3
  triton-25.01: nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3
  nim-llama-8b: nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest
checkpoints:
  llama31-8b-fp8: {{repo: nvidia/Llama-3.1-8B-Instruct-FP8, revision: main, size_gb: 9.08}}
  llama31-8b-nvfp4: {{repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, revision: main, tokenizer_from: llama31-8b-fp8, size_gb: 6.03}}
  nvfp4-own-tokenizer: {{repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, revision: main}}
engines:
  llama31-8b-fp8: {{checkpoint: llama31-8b-fp8, image: triton-25.12, quantization: fp8}}
  llama31-8b-nvfp4: {{checkpoint: llama31-8b-nvfp4, image: triton-25.12, quantization: nvfp4, max_batch_size: {nvfp4_batch}}}
{old}services:
  nim-fp8: {{container: nim-llama-8b, port: 8000, secrets: [NGC_API_KEY], expect: {{decode_tok_s: 18}}}}
  trtllm-fp8: {{engine: llama31-8b-fp8, port: 8003, expect: {{decode_tok_s: 20}}}}
  trtllm-nvfp4: {{engine: llama31-8b-nvfp4, port: 8004, kv_cache_free_gpu_memory_fraction: {kv},
                 expect: {{ttft_p50_ms: 60, decode_tok_s: 32, aggregate_tok_s: {{4: 100}}, resident_gib: 20}}}}
{old_service}  raw-nvfp4: {{checkpoint: nvfp4-own-tokenizer, backend: pytorch, image: triton-25.12, port: 8020}}
bench: {{max_tokens: 20, serial_requests: 2, warmup_requests: 1, concurrency: [1, 4]}}
groups:
  nvfp4: {{services: [trtllm-nvfp4]}}
hosts:
  alpha: {{address: 10.9.0.1, groups: [nvfp4], services: {json.dumps(alpha_services)}}}
  beta: {{address: 10.9.0.2, groups: [nvfp4]}}
{gamma_host}
"""


def deploy(
    workdir: Path, text: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    state = workdir / "state.yaml"
    state.write_text(text)
    env = {
        **os.environ,
        "SPARK_STATE_FILE": str(state),
        "NGC_API_KEY": NGC_KEY,
        "SPARK_STATE_HOME": str(workdir / "home"),
        **(env or {}),
    }
    confirm = [] if "--dry" in extra else ["-y"]  # -y would skip the change detection --dry is for
    argv = [str(Path(sys.executable).parent / "pyinfra"), *confirm, "inventory/sim.py", "deploys/serve.py", *extra]
    proc = subprocess.run(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200
    )
    (workdir / "last-deploy.log").write_text(proc.stdout)
    return proc


def deploy_in_background(workdir: Path, name: str, text: str, *extra: str) -> subprocess.Popen[str]:
    """A deploy of `text` from its own folder, running while the test goes on; in a process group of its own, so
    the test can kill it as a control machine dies (os.killpg: pyinfra and the bench it started)."""
    folder = workdir / name
    folder.mkdir(exist_ok=True)
    (folder / "state.yaml").write_text(text)
    env = {
        **os.environ,
        "SPARK_STATE_FILE": str(folder / "state.yaml"),
        "NGC_API_KEY": NGC_KEY,
        "SPARK_STATE_HOME": str(workdir / "home"),
    }
    argv = [str(Path(sys.executable).parent / "pyinfra"), "-y", "inventory/sim.py", "deploys/serve.py", *extra]
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def spark_state_bin() -> str:
    """The `spark-state` command of this environment."""
    return str(Path(sys.executable).parent / "spark-state")


def drift(workdir: Path, text: str, *extra: str) -> tuple[int, dict]:
    return read_fleet("drift", workdir, text, *extra)


def read_fleet(command: str, workdir: Path, text: str, *extra: str) -> tuple[int, dict]:
    """`spark-state drift|status|prune STATE --inventory inventory/sim.py --json` with this state text: (exit
    code, report)."""
    state = workdir / f"{command}-state.yaml"
    state.write_text(text)
    env = {
        **os.environ,
        "SPARK_STATE_FILE": str(state),
        "NGC_API_KEY": NGC_KEY,
        "SPARK_STATE_HOME": str(workdir / "home"),
    }
    proc = subprocess.run(
        [spark_state_bin(), command, str(state), "--inventory", "inventory/sim.py", "--json", *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def drifted(report: dict) -> set[tuple[str, str, str]]:
    return {(h["host"], d["kind"], d["name"]) for h in report["hosts"] for d in h["drift"]}


def prometheus(fleet: Fleet, index: int, path: str, **params: str) -> Any:
    """The `data` of an answer of the Prometheus HTTP API on host `index` (:9090)."""
    answer = httpx.get(f"http://{fleet.hosts[index].address}:9090{path}", params=params, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]


def targets_when_scraped(fleet: Fleet, index: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Prometheus' active targets once each has been scraped (health no longer "unknown"), or as they stand at
    the timeout. None at all: Prometheus has just (re)started and not yet synced its targets (every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        active = prometheus(fleet, index, "/api/v1/targets")["activeTargets"]
        if (active and all(t["health"] != "unknown" for t in active)) or time.monotonic() > deadline:
            return active
        time.sleep(2)


def series(
    fleet: Fleet, index: int, query: str, wait_for: int = 0, timeout: float = 60
) -> dict[tuple[str, ...], float]:
    """A PromQL instant query's result: (host, service) of each series → its value; asked again until it has
    `wait_for` series (what a deploy wrote last shows at the next scrape), or as it stands at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus(fleet, index, "/api/v1/query", query=query)["result"]
        if len(result) >= wait_for or time.monotonic() > deadline:
            return {(r["metric"].get("host", ""), r["metric"].get("service", "")): float(r["value"][1]) for r in result}
        time.sleep(2)


def host_clock(fleet: Fleet, index: int) -> str:
    return fleet.root(fleet.hosts[index], "date +%s.%N").stdout.strip()


def events(fleet: Fleet, index: int, since: str) -> list[str]:
    """Docker events on a host since `since`: 'image pull NAME', 'container start NAME', ..."""
    out = fleet.root(
        fleet.hosts[index],
        f"docker events --since {since} --until $(date +%s.%N) "
        "--format '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'",
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def started(fleet: Fleet, index: int, since: str) -> set[str]:
    return {e.split()[2] for e in events(fleet, index, since) if e.startswith("container start ")}


NIM_PORT = 8000  # the state's NIM; it answers on NIM's documented readiness path, not /health


def answers(fleet: Fleet, index: int, port: int) -> bool:
    ready = "/v1/health/ready" if port == NIM_PORT else "/health"
    try:
        base = f"http://{fleet.hosts[index].address}:{port}"
        return all(httpx.get(base + path, timeout=3).status_code == 200 for path in (ready, "/v1/models"))
    except httpx.HTTPError:
        return False


def unit_files(fleet: Fleet, index: int) -> str:
    return fleet.root(
        fleet.hosts[index], "cd /etc/systemd/system && sha256sum spark-state-*.service 2>/dev/null; true"
    ).stdout


def sim(*argv: str) -> str:
    """`spark-rehearsal ...` (as the user runs it); its output."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "spark-rehearsal"), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
