"""The rehearsal fleet behaves like a fleet of Sparks: real SSH, systemd, docker pulls under nvcr.io names,
the real HF client, and stand-ins with the field report's traps.

These share the session fleet with the end-to-end tests, whose services hold ports 8000-8020: the containers
started here use 18004-18006 and /srv."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
from conftest import REPO, Fleet

from spark_rehearsal.registry import NGC_KEY
from spark_state.bench.runner import BenchSettings, run_measured, run_serial

TRITON = "nvcr.io/nvidia/tritonserver:{}-trtllm-python-py3"
NIM = "nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest"
CONVERTER = REPO / "spark_state" / "on_host" / "convert_checkpoint.py"
IMAGES = [TRITON.format("25.01"), TRITON.format("25.12"), TRITON.format("26.03"), NIM]


def test_each_host_has_ssh_systemd_docker_and_its_identity(fleet: Fleet) -> None:
    for index, host in enumerate(fleet.hosts):
        out = fleet.root(host, "hostname; systemctl is-active ssh docker; cat /proc/1/comm").stdout.split()
        assert out == [host.name, "active", "active", "systemd"]
        assert host.address == fleet.layout.host_address(index)


def test_root_has_no_ssh_the_operator_logs_in_by_key_and_sudo_is_as_each_host_says(fleet: Fleet) -> None:
    for host in fleet.hosts:
        refused = fleet.ssh(host, "true", user="root", check=False)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
        assert fleet.ssh(host, "id -un").stdout.strip() == fleet.record.operator
        sudo = fleet.ssh(host, "sudo -n id -u", check=False)
        if host.name in fleet.record.password_hosts:
            assert sudo.returncode == 1 and "a password is required" in sudo.stderr
            # the password comes on stdin here (sudo -S), as pyinfra's askpass gives it: never in argv
            given = fleet.ssh(host, "sudo -S -p '' id -u <<'EOF'\n" + fleet.record.sudo_password + "\nEOF")
            assert given.stdout.strip() == "0"
        else:
            assert sudo.stdout.strip() == "0"
        docker = fleet.ssh(host, "docker info --format '{{.ServerVersion}}'", check=False)
        assert (docker.returncode == 0) == (host.name in fleet.record.docker_hosts), docker.stderr
    assert fleet.record.password_hosts and len(fleet.record.password_hosts) < len(fleet.hosts)


def test_hosts_have_separate_disks(fleet: Fleet) -> None:
    first, second = fleet.hosts[:2]
    fleet.root(first, "echo only-here > /root/isolation-marker")
    assert fleet.root(first, "cat /root/isolation-marker").stdout.strip() == "only-here"
    assert fleet.root(second, "test -e /root/isolation-marker", check=False).returncode == 1
    fleet.root(first, "rm /root/isolation-marker")


def test_hosts_report_the_sparks_unified_memory(fleet: Fleet) -> None:
    line = fleet.root(fleet.hosts[0], "grep MemTotal /proc/meminfo").stdout.split()
    assert round(int(line[1]) / 2**20, 1) == 121.7


def test_nvidia_smi_on_the_host_reports_gb10(fleet: Fleet) -> None:
    out = fleet.root(fleet.hosts[0], "nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader")
    assert out.stdout.strip() == "NVIDIA GB10, 12.1, [N/A]"


@pytest.mark.parametrize("image", IMAGES)
def test_docker_pull_of_real_image_names(fleet: Fleet, image: str) -> None:
    host = fleet.hosts[-1]
    if image == NIM:
        _ngc_login(fleet, host)
    fleet.root(host, f"docker pull -q {image}")
    digest = fleet.root(host, f"docker image inspect --format '{{{{index .RepoDigests 0}}}}' {image}").stdout
    assert digest.startswith(image.rsplit(":", 1)[0] + "@sha256:")


def _ngc_login(fleet: Fleet, host, key: str = NGC_KEY) -> subprocess.CompletedProcess[str]:
    return fleet.root(
        host, f"printf '%s' {key} | docker login nvcr.io --username '$oauthtoken' --password-stdin", check=False
    )


def test_nvcr_io_serves_nvidia_images_anonymously_and_nim_images_only_with_the_ngc_key(fleet: Fleet) -> None:
    host = fleet.hosts[-1]  # serves no NIM in the end-to-end tests
    fleet.root(host, "docker logout nvcr.io >/dev/null 2>&1; docker rmi -f " + NIM + " >/dev/null 2>&1; true")
    anonymous = fleet.root(host, f"docker pull -q {NIM}", check=False)
    assert anonymous.returncode != 0 and "unauthorized" in (anonymous.stdout + anonymous.stderr).lower(), anonymous
    wrong = _ngc_login(fleet, host, "not-the-key")
    assert wrong.returncode != 0 and "unauthorized" in (wrong.stdout + wrong.stderr).lower(), wrong
    assert fleet.root(host, f"docker pull -q {TRITON.format('25.12')}").returncode == 0  # public: no login
    assert _ngc_login(fleet, host).returncode == 0
    assert fleet.root(host, f"docker pull -q {NIM}").returncode == 0
    fleet.root(host, "docker logout nvcr.io")


def test_gpus_all_gives_containers_the_gpu(fleet: Fleet) -> None:
    host = fleet.hosts[0]
    image = TRITON.format("25.12")
    fleet.root(host, f"docker pull -q {image}")
    out = fleet.root(host, f"docker run --rm --gpus all {image} nvidia-smi").stdout
    assert "NVIDIA GB10" in out and "WARNING: Detected NVIDIA GB10" not in out
    # Without --gpus the runtime hook injects nothing: no driver, no nvidia-smi, as on a real machine.
    out = fleet.root(host, f"docker run --rm {image} nvidia-smi", check=False)
    assert out.returncode == 127 and "The NVIDIA Driver was not detected" in out.stdout


def test_old_container_warns_about_gb10_and_reports_its_trtllm(fleet: Fleet) -> None:
    host = fleet.hosts[0]
    image = TRITON.format("25.01")
    fleet.root(host, f"docker pull -q {image}")
    out = fleet.root(
        host, f"docker run --rm --gpus all {image} python3 -c 'import tensorrt_llm; print(tensorrt_llm.__version__)'"
    )
    assert "WARNING: Detected NVIDIA GB10 GPU, which may not yet be supported" in out.stdout
    assert out.stdout.strip().endswith("0.17.0.post1")


def _download(fleet: Fleet, host, repo: str, target: str) -> None:
    fleet.root(host, f"hf download {repo} --local-dir {target} --quiet")


def test_hf_download_of_both_checkpoints_with_the_real_client(fleet: Fleet) -> None:
    host = fleet.hosts[1]
    _download(fleet, host, "nvidia/Llama-3.1-8B-Instruct-FP8", "/srv/ckpt/fp8")
    _download(fleet, host, "nvidia/Llama-3.1-8B-Instruct-NVFP4", "/srv/ckpt/nvfp4")
    files = fleet.root(host, "ls /srv/ckpt/nvfp4").stdout.split()
    assert {"config.json", "hf_quant_config.json", "tokenizer_config.json", "model-00001-of-00002.safetensors"} <= set(
        files
    )
    fp8_tok = json.loads(fleet.root(host, "cat /srv/ckpt/fp8/tokenizer_config.json").stdout)
    nvfp4_tok = json.loads(fleet.root(host, "cat /srv/ckpt/nvfp4/tokenizer_config.json").stdout)
    assert "chat_template" in fp8_tok and "chat_template" not in nvfp4_tok
    quant = json.loads(fleet.root(host, "cat /srv/ckpt/nvfp4/hf_quant_config.json").stdout)["quantization"]
    assert quant["quant_algo"] == "NVFP4" and quant["group_size"] == 16 and quant["kv_cache_quant_algo"] == "FP8"


def _install_converter(fleet: Fleet, host) -> None:
    """spark-state's shipped converter, put where the test mounts it from (the deploy uploads it the same way)."""
    text = CONVERTER.read_text()
    assert "\nEOF\n" not in text
    fleet.root(host, f"mkdir -p /srv/lib && cat > /srv/lib/convert_checkpoint.py <<'EOF'\n{text}\nEOF")


def test_images_ship_tensorrt_llms_library_but_no_examples(fleet: Fleet) -> None:
    """The real Triton images carry the TensorRT-LLM wheel, not its source tree: no examples/ to convert with.
    The stand-in library has the conversion API and refuses what it does not take."""
    host = fleet.hosts[1]
    image = TRITON.format("25.12")
    fleet.root(host, f"docker pull -q {image}")
    probe = fleet.root(
        host,
        f"docker run --rm {image} sh -c 'ls -d /app/tensorrt_llm/examples "
        "/usr/local/lib/python3*/dist-packages/tensorrt_llm/examples 2>&1; true'",
    ).stdout
    assert probe.count("No such file or directory") == 2, probe
    _download(fleet, host, "nvidia/Llama-3.1-8B-Instruct-FP8", "/srv/ckpt/fp8")
    script = (
        "from tensorrt_llm.models import LLaMAForCausalLM\n"
        "LLaMAForCausalLM.from_hugging_face('/ckpt', dtype='bfloat16', use_fp8_rowwise=True)"
    )
    refused = fleet.root(
        host, f'docker run --rm --gpus all -v /srv/ckpt/fp8:/ckpt:ro {image} python3 -c "{script}" 2>&1', check=False
    )
    assert refused.returncode != 0 and "unexpected keyword argument 'use_fp8_rowwise'" in refused.stdout
    unquantized = fleet.root(
        host,
        f"docker run --rm --gpus all -v /srv/ckpt/fp8:/ckpt:ro {image} python3 -c "
        '"from tensorrt_llm.models import LLaMAForCausalLM; '
        "LLaMAForCausalLM.from_hugging_face('/ckpt')\" 2>&1",
        check=False,
    )
    assert unquantized.returncode != 0 and "is quantized (FP8" in unquantized.stdout
    other = fleet.root(
        host, f"docker run --rm {image} python3 -c 'from tensorrt_llm.models import GPTForCausalLM' 2>&1", check=False
    )
    assert other.returncode != 0 and "ImportError" in other.stdout


def _convert_and_build(fleet: Fleet, host, tag: str, workdir: str) -> tuple[int, str]:
    image = TRITON.format(tag)
    fleet.root(host, f"docker pull -q {image}; mkdir -p {workdir}")
    _download(fleet, host, "nvidia/Llama-3.1-8B-Instruct-NVFP4", "/srv/ckpt/nvfp4")
    _install_converter(fleet, host)
    fleet.root(
        host,
        f"docker run --rm --gpus all -v /srv/ckpt/nvfp4:/ckpt:ro -v {workdir}:/work "
        f"-v /srv/lib/convert_checkpoint.py:/opt/spark-state/convert_checkpoint.py:ro {image} "
        "python3 /opt/spark-state/convert_checkpoint.py "
        "--model_dir /ckpt --output_dir /work/trtllm-ckpt --dtype bfloat16",
    )
    build = fleet.root(
        host,
        f"docker run --rm --gpus all -v {workdir}:/work {image} trtllm-build "
        "--checkpoint_dir /work/trtllm-ckpt --output_dir /work/engine --gemm_plugin nvfp4 "
        "--max_batch_size 8 --max_input_len 2048 --max_seq_len 4096 --max_num_tokens 4096 "
        "--use_paged_context_fmha enable 2>&1",
        check=False,
    )
    return build.returncode, build.stdout


def test_build_in_the_2501_image_dies_with_the_fp8_fmha_assertion(fleet: Fleet) -> None:
    rc, log = _convert_and_build(fleet, fleet.hosts[0], "25.01", "/srv/build-2501")
    assert rc != 0
    assert "Compute capability: (12, 1)" in log
    assert "Assertion failed: FP8 FMHA cannot be enabled except on Ada or Hopper or Blackwell Arch." in log
    assert fleet.root(fleet.hosts[0], "test -e /srv/build-2501/engine/rank0.engine", check=False).returncode == 1


def test_build_in_the_2512_image_writes_a_sparse_engine_of_real_size(fleet: Fleet) -> None:
    host = fleet.hosts[0]
    rc, log = _convert_and_build(fleet, host, "25.12", "/srv/build-2512")
    assert rc == 0, log
    assert "Failed to infer cluster info for NVIDIA GB10, treat it as a L40 node" in log
    size, blocks = fleet.root(host, "stat -c '%s %b' /srv/build-2512/engine/rank0.engine").stdout.split()
    assert int(size) == 5_700_000_000 and int(blocks) < 16
    config = json.loads(fleet.root(host, "cat /srv/build-2512/engine/config.json").stdout)
    assert config["version"] == "1.1.0" and config["build_config"]["gemm_plugin"] == "nvfp4"


def _serve(fleet: Fleet, host, name: str, port: int, tokenizer: str, engine_dir: str) -> str:
    image = TRITON.format("25.12")
    fleet.root(
        host,
        f"docker rm -f {name} >/dev/null 2>&1; docker run -d --name {name} --gpus all -p {port}:{port} "
        f"-v {engine_dir}:/engine:ro -v {tokenizer}:/tokenizer:ro {image} trtllm-serve serve /engine "
        f"--tokenizer /tokenizer --backend tensorrt --host 0.0.0.0 --port {port} --max_batch_size 8 "
        "--max_num_tokens 4096 --max_seq_len 4096 --kv_cache_free_gpu_memory_fraction 0.4",
    )
    url = f"http://{host.address}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(fleet.root(host, f"docker logs {name}", check=False).stdout)


def _stream_median(url: str, runs: int = 3) -> tuple[float, float, int]:
    """(TTFT s, decode tok/s, tokens) as p50s of `runs` streamed 200-token chat completions, measured as the
    product's bench measures them: TTFT from the request on the wire, over one connection, so connection setup
    on a loaded 2-core machine is not taken for the stand-in's prefill."""
    settings = BenchSettings(
        prompt="What is RAG?", max_tokens=200, serial_requests=runs, warmup_requests=0, concurrency=[], timeout_s=60
    )
    serial = run_measured(run_serial(url, "/engine", settings))
    ttft, decode, tokens = serial.ttft_ms["p50"], serial.decode_tok_s["p50"], serial.completion_tokens_p50
    assert ttft is not None and decode is not None and tokens is not None, serial
    return ttft / 1000, decode, int(tokens)


def test_served_standin_streams_at_the_seed_rate_and_refuses_chat_without_template(fleet: Fleet) -> None:
    host = fleet.hosts[0]
    rc, log = _convert_and_build(fleet, host, "25.12", "/srv/build-serve")
    assert rc == 0, log
    _download(fleet, host, "nvidia/Llama-3.1-8B-Instruct-FP8", "/srv/ckpt/fp8")
    url = _serve(fleet, host, "nvfp4-fp8tok", 18004, "/srv/ckpt/fp8", "/srv/build-serve/engine")
    ttft, decode, tokens = _stream_median(url)
    assert tokens == 200
    assert 0.020 < ttft < 0.080  # seed: 30.8 ms
    assert 38.82 * 0.85 < decode < 38.82 * 1.10  # seed: 38.82 tok/s

    bad = _serve(fleet, host, "nvfp4-owntok", 18005, "/srv/ckpt/nvfp4", "/srv/build-serve/engine")
    r = httpx.post(
        f"{bad}/v1/chat/completions",
        json={"model": "/engine", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["message"] == "No chat template found for the given tokenizer and tools."
    fleet.root(host, "docker rm -f nvfp4-fp8tok nvfp4-owntok")


def test_pacing_is_configurable_per_host(fleet: Fleet) -> None:
    host = fleet.hosts[0]
    rc, _ = _convert_and_build(fleet, host, "25.12", "/srv/build-slow")
    assert rc == 0
    _download(fleet, host, "nvidia/Llama-3.1-8B-Instruct-FP8", "/srv/ckpt/fp8")
    fleet.root(
        host,
        "cp /etc/spark-sim/gpu.json /root/gpu.json.bak && python3 -c \"import json; p='/etc/spark-sim/gpu.json'; "
        "d=json.load(open(p)); d['slowdown']=1.3; json.dump(d, open(p, 'w'))\"",
    )
    try:
        url = _serve(fleet, host, "nvfp4-slow", 18006, "/srv/ckpt/fp8", "/srv/build-slow/engine")
        _, decode, _ = _stream_median(url)
        assert 38.82 / 1.3 * 0.85 < decode < 38.82 / 1.3 * 1.10
    finally:
        fleet.root(host, "mv /root/gpu.json.bak /etc/spark-sim/gpu.json; docker rm -f nvfp4-slow")


def _status(url: str) -> int | str:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def test_nim_runs_as_uid_1000_on_its_documented_health_paths_and_caches_its_profile(fleet: Fleet) -> None:
    host = fleet.hosts[-1]
    _ngc_login(fleet, host)
    run = (
        "docker rm -f nim-probe >/dev/null 2>&1; docker run -d --name nim-probe --gpus all -e NGC_API_KEY=k "
        f"-p 18008:8000 -v /srv/nim-cache:/opt/nim/.cache {NIM}"
    )
    # a cache that only root may write: the NIM (UID 1000) exits with a permission error
    fleet.root(host, "rm -rf /srv/nim-cache && install -d -o 0 -g 0 -m 0755 /srv/nim-cache && " + run)
    deadline = time.monotonic() + 30
    while fleet.root(host, "docker inspect -f '{{.State.Running}}' nim-probe").stdout.strip() == "true":
        assert time.monotonic() < deadline, "the NIM kept running with a cache it cannot write"
        time.sleep(0.3)
    logs = fleet.root(host, "docker logs nim-probe 2>&1").stdout
    assert "PermissionError" in logs and "writable by UID 1000" in logs

    url = f"http://{host.address}:18008"
    for start, message in (("first", "Downloading model profile"), ("second", "Using cached model profile")):
        if start == "first":
            fleet.root(host, "chown 1000:1000 /srv/nim-cache && " + run)
        else:
            fleet.root(host, "docker restart nim-probe >/dev/null")
        began = time.monotonic()
        while _status(url + "/v1/health/live") != 200:  # the server is up before the model is
            assert time.monotonic() - began < 30
            time.sleep(0.2)
        if start == "first":
            assert _status(url + "/v1/health/ready") == 503
        while _status(url + "/v1/health/ready") != 200:
            assert time.monotonic() - began < 120
            time.sleep(0.2)
        took = time.monotonic() - began
        assert message in fleet.root(host, "docker logs nim-probe 2>&1").stdout
        if start == "first":
            first_took = took
        else:
            assert took < first_took / 2, (took, first_took)  # the profile came from the cache
    assert _status(url + "/v1/models") == 200 and _status(url + "/v1/metrics") == 200
    assert _status(url + "/health") == 404  # NIM documents no /health
    assert fleet.root(host, "docker exec nim-probe id -u").stdout.strip() == "1000"
    owner = fleet.root(host, "stat -c %u /srv/nim-cache/ngc/hub/*/profile.json").stdout.strip()
    assert owner == "1000"
    fleet.root(host, "docker rm -f nim-probe >/dev/null")


def test_the_probe_reads_an_absent_images_download_size_from_the_registry(fleet: Fleet) -> None:
    """Before any pull, preflight knows what the pull downloads: the registry manifest's layer sizes."""
    from spark_rehearsal import images, rootfs
    from spark_rehearsal.layout import Layout
    from spark_state.on_host.probe import ProbeRequest, probe_command

    host, ref = fleet.hosts[2], TRITON.format("25.01")
    fleet.root(host, f"docker rmi -f {ref} >/dev/null 2>&1; true")
    out = fleet.root(host, probe_command(ProbeRequest(download_sizes=(ref, NIM)))).stdout
    sizes = json.loads(out)["download_sizes"]
    layout = Layout.default()
    cache = layout.cache / "layers"
    image = next(i for i in images.IMAGES if i.ref == ref)
    expected = (
        images.base_layer(rootfs.rootfs_dir(layout, "image"), cache).size + images.standin_layer(image, cache).size
    )
    assert sizes[ref] == {"bytes": expected}
    if NIM in sizes:  # absent and not logged in: the registry does not say, and the probe says why
        assert "error" in sizes[NIM]
