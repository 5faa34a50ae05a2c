"""Today's serving stacks side by side on one simulated Spark (gamma, `--limit gamma`, after the other fleet
modules): a checkpoint served by trtllm-serve's PyTorch backend from the TensorRT-LLM release image (no
trtllm-build in it) with LLM API options in the file it reads, one served by `vllm serve` from NGC's vLLM
image with its flags, one by SGLang from its own image on Docker Hub, and one GGUF file of a hub repo by
llama-server from ggml-org's image on ghcr.io (downloaded by the vLLM image: llama.cpp's has no Python); the plan's
memory budget holds all four. Prometheus runs on gamma (`monitoring:`) and scrapes each of them on its stack's
metrics path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import Fleet
from e2e_helpers import (
    GAMMA,
    answers,
    deploy,
    drift,
    drifted,
    events,
    host_clock,
    prometheus,
    series,
    spark_state_bin,
    started,
    state_text,
    targets_when_scraped,
)
from openai import OpenAI

from spark_state.stacks.trtllm import options_text

PORT = 8355  # the dgx-spark-playbooks' trtllm-serve port
VLLM_PORT = 8100
SGLANG_PORT = 30000  # SGLang's default: the service leaves its port out
LLAMA_PORT = 8080  # llama-server's default, likewise
GGUF = "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"


def trt_options(chunked: bool) -> str:
    """The options file trt-pt reads: the state's options, and return_perf_metrics (Prometheus scrapes it)."""
    return options_text(
        {
            "enable_chunked_prefill": chunked,
            "kv_cache_config": {"enable_block_reuse": True},
            "return_perf_metrics": True,
        }
    )


def stack_state(chunked: bool = True, prefix_caching: bool = True, sglang_chunk: int = 4096, flash: str = "on") -> str:
    options = {"enable_chunked_prefill": chunked, "kv_cache_config": {"enable_block_reuse": True}}
    vllm_options = {"enable-prefix-caching": prefix_caching, "kv-cache-dtype": "fp8"}
    sglang_options = {"attention-backend": "flashinfer", "chunked-prefill-size": sglang_chunk}
    return (
        state_text(nvfp4_batch=16)
        .replace(
            "images:\n",
            "images:\n  trtllm-rc: nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc23\n"
            "  vllm-26.05: nvcr.io/nvidia/vllm:26.05-py3\n  sglang: lmsysorg/sglang:v0.5.23-cu130\n"
            "  llamacpp: ghcr.io/ggml-org/llama.cpp:server-cuda-b11312\n",
            1,
        )
        .replace(
            "services:\n",
            "services:\n  trt-pt: {checkpoint: llama31-8b-nvfp4, backend: pytorch, image: trtllm-rc, "
            f"port: {PORT}, llm_api_options: {json.dumps(options)}}}\n"
            "  chat-vllm: {stack: vllm, checkpoint: llama31-8b-fp8, image: vllm-26.05, "
            f"port: {VLLM_PORT}, gpu_memory_utilization: 0.3, max_model_len: 4096, "
            f"options: {json.dumps(vllm_options)}}}\n"
            "  chat-sglang: {stack: sglang, checkpoint: llama31-8b-fp8, image: sglang, mem_fraction_static: 0.5, "
            f"context_length: 4096, options: {json.dumps(sglang_options)}}}\n"
            f"  chat-llama: {{stack: llama.cpp, checkpoint: llama31-8b-gguf, gguf: {GGUF}, image: llamacpp, "
            f"ctx_size: 4096, memory_gib: 6, options: {{flash-attn: '{flash}', jinja: true}}}}\n",
            1,
        )
        .replace(
            "checkpoints:\n",
            "checkpoints:\n  llama31-8b-gguf: {repo: bartowski/Meta-Llama-3.1-8B-Instruct-GGUF, "
            f"files: [{GGUF}], fetch_image: vllm-26.05}}\n",
            1,
        )
        .replace(
            "  gamma: {address: 10.9.0.3, groups: [nvfp4]}",
            "  gamma: {address: 10.9.0.3, services: [trt-pt, chat-vllm, chat-sglang, chat-llama]}",
        )
        + "monitoring: {host: gamma, scrape_interval_s: 5}\n"
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


def test_vllm_serves_with_its_flags_and_vllm_metrics(fleet: Fleet, served: str) -> None:
    assert answers(fleet, GAMMA, VLLM_PORT)
    args = json.loads(
        fleet.root(fleet.hosts[GAMMA], "docker inspect --format '{{json .Args}}' spark-state-chat-vllm").stdout
    )
    assert args[:3] == ["vllm", "serve", "/model"] and "--enable-prefix-caching" in args
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.3"
    base = f"http://{fleet.hosts[GAMMA].address}:{VLLM_PORT}"
    assert httpx.get(f"{base}/v1/models", timeout=5).json()["data"][0]["owned_by"] == "vllm"
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert "vllm:num_requests_running{" in metrics and "vllm:generation_tokens_total{" in metrics


def test_sglang_serves_from_docker_hub_with_its_flags_and_sglang_metrics(fleet: Fleet, served: str) -> None:
    assert answers(fleet, GAMMA, SGLANG_PORT)
    args = json.loads(
        fleet.root(fleet.hosts[GAMMA], "docker inspect --format '{{json .Args}}' spark-state-chat-sglang").stdout
    )
    assert args[:5] == ["python3", "-m", "sglang.launch_server", "--model-path", "/model"]
    assert args[args.index("--mem-fraction-static") + 1] == "0.5" and "--enable-metrics" in args
    assert args[args.index("--attention-backend") + 1] == "flashinfer"
    base = f"http://{fleet.hosts[GAMMA].address}:{SGLANG_PORT}"
    assert httpx.get(f"{base}/v1/models", timeout=5).json()["data"][0]["owned_by"] == "sglang"
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert "sglang:num_running_reqs{" in metrics and "sglang:generation_tokens_total{" in metrics
    # pulled as docker reads `lmsysorg/sglang`: from Docker Hub, trusted through the system's roots
    digests = fleet.root(
        fleet.hosts[GAMMA], "docker image inspect --format '{{json .RepoDigests}}' lmsysorg/sglang:v0.5.23-cu130"
    ).stdout
    assert json.loads(digests)[0].startswith("lmsysorg/sglang@sha256:")


def test_llama_server_serves_one_gguf_file_from_ghcr(fleet: Fleet, served: str) -> None:
    base = f"http://{fleet.hosts[GAMMA].address}:{LLAMA_PORT}"
    assert httpx.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
    assert httpx.get(f"{base}/v1/models", timeout=5).json()["data"][0]["owned_by"] == "llamacpp"
    assert "llamacpp:tokens_predicted_total " in httpx.get(f"{base}/metrics", timeout=5).text
    args = json.loads(
        fleet.root(fleet.hosts[GAMMA], "docker inspect --format '{{json .Args}}' spark-state-chat-llama").stdout
    )
    assert args[:2] == ["--model", f"/model/{GGUF}"] and args[args.index("--flash-attn") + 1] == "on"
    # only the file served came down, not the repo's other quantization
    listing = fleet.root(fleet.hosts[GAMMA], "ls /var/lib/spark-state/checkpoints/llama31-8b-gguf/*/").stdout.split()
    assert GGUF in listing and not [name for name in listing if name.endswith("Q8_0.gguf")]


def test_the_official_openai_client_streams_from_each_stack(fleet: Fleet, served: str) -> None:
    for port in (PORT, VLLM_PORT, SGLANG_PORT, LLAMA_PORT):
        client = OpenAI(base_url=f"http://{fleet.hosts[GAMMA].address}:{port}/v1", api_key="unused", timeout=30)
        model = client.models.list().data[0].id
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text.strip(), port


# Each stack's count of what it served, as its server names it: vLLM's and SGLang's generated tokens, llama-server's
# predicted tokens; TensorRT-LLM's Prometheus metrics count requests, not tokens (tensorrt_llm/metrics/collector.py).
SERVED_COUNTERS = {
    "chat-vllm": "vllm:generation_tokens_total",
    "chat-sglang": "sglang:generation_tokens_total",
    "chat-llama": "llamacpp:tokens_predicted_total",
    "trt-pt": "request_success_total",
}


def test_prometheus_scrapes_each_stack_on_its_metrics_path_and_the_bench_results(fleet: Fleet, served: str) -> None:
    targets = targets_when_scraped(fleet, GAMMA)
    on_gamma = {
        (t["labels"]["job"], t["labels"].get("service", "")): (t["health"], t["lastError"], t["scrapeUrl"])
        for t in targets
        if t["labels"]["host"] == "gamma"
    }
    assert set(on_gamma) == {("prometheus", ""), ("node", "")} | {("llm", s) for s in SERVED_COUNTERS}, on_gamma
    assert all(health == "up" for health, _, _ in on_gamma.values()), on_gamma
    assert on_gamma["llm", "trt-pt"][2].endswith(f":{PORT}/prometheus/metrics")  # /metrics is JSON there
    for service, counter in SERVED_COUNTERS.items():
        counted = series(fleet, GAMMA, f'{counter}{{job="llm",service="{service}"}}')
        assert list(counted) == [("gamma", service)] and counted["gamma", service] > 0, (service, counted)
    # the deploy's bench, through gamma's node exporter: TTFT p50 in seconds, one series per service
    ttft = series(fleet, GAMMA, 'spark_state_bench_ttft_p50_seconds{host="gamma"}', wait_for=len(SERVED_COUNTERS))
    assert set(ttft) == {("gamma", s) for s in SERVED_COUNTERS} and all(0 < v < 5 for v in ttft.values()), ttft
    # the shipped Grafana dashboard: every panel's query is PromQL this Prometheus evaluates, and each finds data
    dashboard = json.loads(subprocess.run([spark_state_bin(), "dashboard"], capture_output=True, check=True).stdout)
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            query = target["expr"].replace("$__rate_interval", "1m")
            assert prometheus(fleet, GAMMA, "/api/v1/query", query=query)["result"], (panel["title"], query)


def test_serves_the_checkpoint_with_its_options_file(fleet: Fleet, served: str) -> None:
    assert answers(fleet, GAMMA, PORT)
    assert list(options_files(fleet).values()) == [trt_options(True)]
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


def test_a_changed_option_restarts_that_service_and_the_one_that_starts_after_it(
    fleet: Fleet, workdir: Path, served: str
) -> None:
    """trt-pt and chat-sglang both claim a fraction of the memory free when they start: chat-sglang starts after
    trt-pt (the plan's budget order), so a restart of trt-pt takes chat-sglang down first and up after it."""
    mark = host_clock(fleet, GAMMA)
    proc = deploy(workdir, stack_state(chunked=False), "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-3000:]
    starts = [e.split()[2] for e in events(fleet, GAMMA, mark) if e.startswith("container start ")]
    assert starts == ["spark-state-trt-pt", "spark-state-chat-sglang"]
    free_at_start = {
        name: json.loads(
            fleet.root(fleet.hosts[GAMMA], f"docker exec spark-state-{name} cat /etc/spark-sim/gpu.json").stdout
        )["memory_free_gib_at_start"]
        for name in ("trt-pt", "chat-sglang")
    }
    assert free_at_start["trt-pt"] - free_at_start["chat-sglang"] > 2  # what trt-pt holds was claimed first
    assert answers(fleet, GAMMA, PORT) and answers(fleet, GAMMA, SGLANG_PORT)
    assert trt_options(False) in options_files(fleet).values()  # the earlier file stays: a rollback's unit names it


def test_a_changed_vllm_flag_restarts_that_service_only(fleet: Fleet, workdir: Path, served: str) -> None:
    mark = host_clock(fleet, GAMMA)
    proc = deploy(workdir, stack_state(chunked=False, prefix_caching=False), "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert started(fleet, GAMMA, mark) == {"spark-state-chat-vllm"}
    args = json.loads(
        fleet.root(fleet.hosts[GAMMA], "docker inspect --format '{{json .Args}}' spark-state-chat-vllm").stdout
    )
    assert "--no-enable-prefix-caching" in args


def test_changed_sglang_and_llama_server_flags_restart_those_services_only(
    fleet: Fleet, workdir: Path, served: str
) -> None:
    mark = host_clock(fleet, GAMMA)
    text = stack_state(chunked=False, prefix_caching=False, sglang_chunk=2048, flash="off")
    proc = deploy(workdir, text, "--limit", "gamma")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert started(fleet, GAMMA, mark) == {"spark-state-chat-sglang", "spark-state-chat-llama"}
    for container, flag, value in (
        ("chat-sglang", "--chunked-prefill-size", "2048"),
        ("chat-llama", "--flash-attn", "off"),
    ):
        args = json.loads(
            fleet.root(
                fleet.hosts[GAMMA], f"docker inspect --format '{{{{json .Args}}}}' spark-state-{container}"
            ).stdout
        )
        assert args[args.index(flag) + 1] == value


def test_drift_names_a_hand_changed_option(fleet: Fleet, workdir: Path) -> None:
    text = stack_state(chunked=False, prefix_caching=False, sglang_chunk=2048, flash="off")
    path = next(p for p, t in options_files(fleet).items() if t == trt_options(False))
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


def test_an_engine_on_an_image_without_trtllm_build_is_refused_before_any_build(fleet: Fleet, workdir: Path) -> None:
    """The image named by digest alone: its tag cannot tell its TensorRT-LLM, so validate lets it pass; the host
    refuses it (what the image holds, read in it) before anything is built, with the fix, and nothing that
    serves is touched."""
    digest_ref = fleet.root(
        fleet.hosts[GAMMA],
        "docker image inspect --format '{{index .RepoDigests 0}}' nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc23",
    ).stdout.strip()
    assert "@sha256:" in digest_ref and ":1.3.0rc23" not in digest_ref
    text = (
        stack_state(chunked=False, prefix_caching=False, sglang_chunk=2048, flash="off")
        .replace("images:\n", f"images:\n  by-digest: {digest_ref}\n", 1)
        .replace(
            "engines:\n",
            "engines:\n  nvfp4-rel: {checkpoint: llama31-8b-nvfp4, image: by-digest, quantization: nvfp4}\n",
            1,
        )
        .replace("services:\n", "services:\n  eng-rel: {engine: nvfp4-rel, port: 8040}\n", 1)
        .replace(
            "services: [trt-pt, chat-vllm, chat-sglang, chat-llama]",
            "services: [trt-pt, chat-vllm, chat-sglang, chat-llama, eng-rel]",
        )
    )
    mark = host_clock(fleet, GAMMA)
    proc = deploy(workdir, text, "--limit", "gamma")
    assert proc.returncode != 0
    assert "no trtllm-build" in proc.stdout and "serve checkpoint 'llama31-8b-nvfp4' directly instead" in proc.stdout
    seen = events(fleet, GAMMA, mark)
    assert not [e for e in seen if "spark-state-build-" in e or "spark-state-convert-" in e], seen
    assert started(fleet, GAMMA, mark) == set()
