"""The stand-in NVIDIA CLIs take the flags the real ones define and refuse the rest, as the real ones do, so a
typo in build_args, extra_args or a NIM env var fails in rehearsal as it would on a Spark. Run as the images
run them (a subprocess), without the fleet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_STATE, REPO

from spark_rehearsal.standins import trtllm_build
from spark_state.desired.loader import load_state
from spark_state.plan.host_plan import plan_host

PLAN = plan_host(load_state(EXAMPLE_STATE).state, "spark-01")


def _standin(module: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = f"import sys; from spark_rehearsal.standins.{module} import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SPARK_SIM_GPU_FILE": "/nonexistent", **(env or {})},
    )


def test_trtllm_build_takes_every_flag_the_plan_passes_and_the_real_ones() -> None:
    for engine in PLAN.engines:
        argv = engine.build_command.split(" trtllm-build ", 1)[1].split()
        args = trtllm_build.parser().parse_args(argv)
        assert args.checkpoint_dir == "/work/trtllm-ckpt", engine.name
    real = [
        "--checkpoint_dir",
        "c",
        "--output_dir",
        "o",
        "--max_beam_width",
        "2",
        "--kv_cache_type",
        "paged",
        "--gpt_attention_plugin",
        "auto",
        "--multiple_profiles",
        "enable",
        "--tokens_per_block",
        "64",
        "--strip_plan",
        "--max_decoder_seq_len",
        "8192",
        "--workers",
        "2",
        "--reduce_fusion",
        "enable",
        "--log_level",
        "verbose",
        "--gather_all_token_logits",
    ]
    assert trtllm_build.parser().parse_args(real).max_seq_len == 8192


@pytest.mark.parametrize(
    "flags",
    [
        ["--no_such_flag"],
        ["--gemm_plugin", "fp4"],
        ["--use_paged_context_fmha", "yes"],
        ["--kv_cache_type", "ring"],
        ["--log_level", "loud"],
    ],
)
def test_trtllm_build_refuses_what_the_real_one_refuses(flags: list[str]) -> None:
    proc = _standin("trtllm_build", "--checkpoint_dir", "/c", "--output_dir", "/o", *flags)
    assert proc.returncode == 2 and "trtllm-build: error:" in proc.stderr, proc.stderr


def test_trtllm_serve_takes_the_plans_flags() -> None:
    from spark_rehearsal.standins import trtllm_serve

    for svc in PLAN.services:
        if svc.kind not in ("trtllm", "trtllm-engine"):
            continue
        argv = list(svc.run_argv[svc.run_argv.index("trtllm-serve") + 1 :])
        assert trtllm_serve.parser().parse_args(argv).command == "serve", svc.name


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--no_such_flag"], "Error: No such option: --no_such_flag"),
        (["--max_batch", "8"], "Error: No such option: --max_batch"),  # click takes no abbreviations
        (["--backend", "onnx"], "Error: argument --backend: invalid choice: 'onnx'"),
    ],
)
def test_trtllm_serve_refuses_as_click_does(flags: list[str], said: str) -> None:
    proc = _standin("trtllm_serve", "serve", "/engine", *flags)
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert "Usage: trtllm-serve serve [OPTIONS] MODEL" in proc.stderr


def test_a_nim_refuses_a_nim_variable_it_does_not_document(tmp_path: Path) -> None:
    proc = _standin("nim_server", env={"NGC_API_KEY": "k", "NIM_MAX_MODEL_LENGTH": "8192"})
    assert proc.returncode == 1 and "unknown NIM setting(s) NIM_MAX_MODEL_LENGTH" in proc.stderr
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps({"name": "NVIDIA GB10"}))
    proc = _standin(
        "nim_server",
        env={
            "NGC_API_KEY": "k",
            "NIM_MAX_MODEL_LEN": "8192",
            "SPARK_SIM_GPU_FILE": str(gpu),
            "NIM_CACHE_PATH": "/proc/no-cache-here",
        },
    )
    assert "unknown NIM setting" not in proc.stderr  # a documented one passes on to the next check


def test_llm_api_options_loader_refuses_what_trtllm_serve_refuses_with_its_message(tmp_path: Path) -> None:
    """tensorrt_llm/llmapi/llm_args.py: yaml.safe_load, a mapping at the root, pydantic models with extra="forbid"
    (the mapped sections such as kv_cache_config are built alone and name their own model)."""
    from spark_rehearsal.standins.llm_args import load_options

    def load(text: str) -> tuple[dict | None, str | None]:
        (tmp_path / "options.yaml").write_text(text)
        return load_options(str(tmp_path / "options.yaml"))

    assert load("kv_cache_config: {enable_block_reus: true}\n")[1] == (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for KvCacheConfig\nenable_block_reus\n"
        "  Extra inputs are not permitted [type=extra_forbidden, input_value=True, input_type=bool]\n"
        "    For further information visit https://errors.pydantic.dev/2.11/v/extra_forbidden"
    )
    assert "1 validation error for TorchLlmArgs\ncuda_graph_config.decode.batch_size\n" in str(
        load("cuda_graph_config: {batch_size: 8}\n")[1]
    )
    assert "for TorchLlmArgs\nenable_chunked_prefil\n" in str(load("enable_chunked_prefil: true\n")[1])
    assert load("- a\n") == (None, "ValueError: Configuration file root must be a mapping.")
    assert load("") == ({}, None)
    assert (
        load("enable_chunked_prefill: true\ncuda_graph_config: {enable_padding: true, max_batch_size: 8}\n")[1] is None
    )


def test_the_options_file_the_plan_writes_is_one_trtllm_serve_loads(tmp_path: Path) -> None:
    from spark_rehearsal.standins.llm_args import load_options
    from spark_state.stacks.trtllm import options_text

    options = {
        "enable_chunked_prefill": True,
        "kv_cache_config": {"enable_block_reuse": False, "dtype": "fp8"},
        "cuda_graph_config": {"enable_padding": True, "max_batch_size": 8},
        "speculative_config": {"decoding_type": "Eagle3", "max_draft_len": 3},
    }
    (tmp_path / "options.yaml").write_text(options_text(options))
    assert load_options(str(tmp_path / "options.yaml")) == (options, None)


VLLM_FLAGS = REPO / "spark_state" / "stacks" / "data" / "vllm-0.20.1.json"
VLLM_STATE = """
images:
  vllm: nvcr.io/nvidia/vllm:26.05-py3
checkpoints:
  fp8: {repo: nvidia/Llama-3.1-8B-Instruct-FP8}
services:
  chat:
    stack: vllm
    checkpoint: fp8
    tokenizer: fp8
    image: vllm
    port: 8000
    served_model_name: llama
    gpu_memory_utilization: 0.4
    max_model_len: 8192
    max_num_seqs: 8
    options: {enable-prefix-caching: true, enable-chunked-prefill: false, kv-cache-dtype: fp8,
              compilation-config: {cudagraph_mode: FULL_DECODE_ONLY}, max-num-batched-tokens: 4096}
hosts:
  spark-01: {address: 10.0.0.1, services: [chat]}
"""


def _flag_server(
    module: str, flags_env: str, flags: Path, *argv: str, gpu: dict | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """A flag-configured stand-in server run with its flag list and (when given) a GPU description."""
    gpu_file = tmp_path / "gpu.json"
    if gpu is not None:
        gpu_file.write_text(json.dumps(gpu))
    return _standin(module, *argv, env={flags_env: str(flags), "SPARK_SIM_GPU_FILE": str(gpu_file)})


def _vllm(*argv: str, gpu: dict | None = None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _flag_server("vllm_serve", "SPARK_SIM_VLLM_FLAGS", VLLM_FLAGS, *argv, gpu=gpu, tmp_path=tmp_path)


def test_vllm_serve_takes_every_flag_the_plan_passes(tmp_path: Path) -> None:
    from spark_rehearsal.standins import vllm_serve
    from spark_state.desired.loader import load_state_text

    plan = plan_host(load_state_text(VLLM_STATE, "state.yaml").state, "spark-01")
    argv = list(plan.services[0].run_argv)
    serve = argv[argv.index("vllm") + 1 :]
    assert serve[0] == "serve"
    os.environ["SPARK_SIM_VLLM_FLAGS"] = str(VLLM_FLAGS)
    try:
        args = vllm_serve.parser().parse_args(serve[1:])
    finally:
        del os.environ["SPARK_SIM_VLLM_FLAGS"]
    assert (args.enable_prefix_caching, args.enable_chunked_prefill, args.kv_cache_dtype) == (True, False, "fp8")
    assert json.loads(args.compilation_config) == {"cudagraph_mode": "FULL_DECODE_ONLY"}


def test_vllm_serve_refuses_a_flag_its_version_lacks_as_argparse_does(tmp_path: Path) -> None:
    proc = _vllm("serve", "/model", "--disable-log-requests", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "vllm serve: error: unrecognized arguments: --disable-log-requests"


def test_vllm_serve_refuses_to_start_when_its_share_is_not_free(tmp_path: Path) -> None:
    """vllm/v1/worker/utils.py request_memory: utilization × total must be free at start."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    gpu = {"memory_total_gib": 121.7, "memory_free_gib_at_start": 50.0}
    proc = _vllm("serve", str(model), "--gpu-memory-utilization", "0.5", gpu=gpu, tmp_path=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "ValueError: Free memory on device cuda:0 (50.0/121.7 GiB) on startup is less than desired GPU memory "
        "utilization (0.5, 60.85 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes."
    )


SGLANG_FLAGS = REPO / "spark_state" / "stacks" / "data" / "sglang-0.5.23.json"
SGLANG_STATE = """
images:
  sglang: lmsysorg/sglang:v0.5.23-cu130
checkpoints:
  fp8: {repo: nvidia/Llama-3.1-8B-Instruct-FP8}
services:
  chat:
    stack: sglang
    checkpoint: fp8
    tokenizer: fp8
    image: sglang
    served_model_name: llama
    mem_fraction_static: 0.5
    context_length: 8192
    max_running_requests: 8
    options: {attention-backend: flashinfer, trust-remote-code: true, chunked-prefill-size: 4096,
              enable-torch-compile: true}
hosts:
  spark-01: {address: 10.0.0.1, services: [chat]}
"""


def _sglang(*argv: str, gpu: dict | None = None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _flag_server("sglang_serve", "SPARK_SIM_SGLANG_FLAGS", SGLANG_FLAGS, *argv, gpu=gpu, tmp_path=tmp_path)


def test_sglang_takes_every_flag_the_plan_passes() -> None:
    from spark_rehearsal.standins import sglang_serve
    from spark_state.desired.loader import load_state_text

    plan = plan_host(load_state_text(SGLANG_STATE, "state.yaml").state, "spark-01")
    argv = list(plan.services[0].run_argv)
    launch = argv[argv.index("sglang.launch_server") + 1 :]
    os.environ["SPARK_SIM_SGLANG_FLAGS"] = str(SGLANG_FLAGS)
    try:
        args = sglang_serve.parser().parse_args(launch)
    finally:
        del os.environ["SPARK_SIM_SGLANG_FLAGS"]
    assert (args.model_path, args.port, args.mem_fraction_static, args.enable_metrics) == (
        "/model",
        "30000",
        "0.5",
        True,
    )
    assert (args.attention_backend, args.trust_remote_code, args.enable_torch_compile) == ("flashinfer", True, True)


def test_sglang_refuses_a_flag_it_lacks_as_argparse_does(tmp_path: Path) -> None:
    proc = _sglang("--model-path", "/model", "--gpu-memory-utilization", "0.5", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "sglang serve: error: unrecognized arguments: --gpu-memory-utilization 0.5"


def test_sglang_refuses_to_start_when_its_share_leaves_no_kv_cache(tmp_path: Path) -> None:
    """kv_cache_configurator.py _profile_available_bytes: the weights must fit in fraction × available."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "fp8"}}))
    gpu = {"memory_total_gib": 121.7, "memory_free_gib_at_start": 10.0}
    proc = _sglang("--model-path", str(model), "--mem-fraction-static", "0.5", gpu=gpu, tmp_path=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "ValueError: Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=0.5. Raise "
        "--mem-fraction-static above 0.801 (minimum viable = 1 - available/pre = 0.8009). If using speculative "
        "decoding, draft weights are now counted."
    )


LLAMA_FLAGS = REPO / "spark_state" / "stacks" / "data" / "llama.cpp-b11312.json"
LLAMA_STATE = """
images:
  llama: ghcr.io/ggml-org/llama.cpp:server-cuda-b11312
  vllm: nvcr.io/nvidia/vllm:26.05-py3
checkpoints:
  gguf:
    repo: bartowski/Meta-Llama-3.1-8B-Instruct-GGUF
    files: [Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf]
    fetch_image: vllm
services:
  chat:
    stack: llama.cpp
    checkpoint: gguf
    gguf: Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf
    image: llama
    served_model_name: llama
    ctx_size: 8192
    parallel: 4
    memory_gib: 7
    options: {flash-attn: "on", jinja: true, kv-offload: false, cache-type-k: q8_0}
hosts:
  spark-01: {address: 10.0.0.1, services: [chat]}
"""


def test_llama_server_takes_every_flag_the_plan_passes() -> None:
    from spark_rehearsal.standins.llama_server import parse
    from spark_state.desired.loader import load_state_text

    plan = plan_host(load_state_text(LLAMA_STATE, "state.yaml").state, "spark-01")
    argv = list(plan.services[0].run_argv)
    values = parse(argv[argv.index("ghcr.io/ggml-org/llama.cpp:server-cuda-b11312") + 1 :], _llama_flags())
    assert values["--model"] == "/model/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf" and values["--metrics"] is True
    assert (values["--flash-attn"], values["--jinja"], values["--kv-offload"]) == ("on", True, False)
    assert plan.checkpoints[0].files == ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",)
    assert plan.checkpoints[0].fetch_image_ref == "nvcr.io/nvidia/vllm:26.05-py3"
    assert [i.ref for i in plan.images] == [
        "ghcr.io/ggml-org/llama.cpp:server-cuda-b11312",
        "nvcr.io/nvidia/vllm:26.05-py3",
    ]


def _llama_flags() -> dict[str, str]:
    return json.loads(LLAMA_FLAGS.read_text())["flags"]


def _llama(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    gpu = {"memory_total_gib": 121.7}
    return _flag_server("llama_server", "SPARK_SIM_LLAMA_FLAGS", LLAMA_FLAGS, *argv, gpu=gpu, tmp_path=tmp_path)


def test_llama_server_refuses_an_argument_it_lacks_as_common_params_parse_does(tmp_path: Path) -> None:
    # --mmap went with --load-mode; a positional model path is not llama-server's
    for argv, said in (
        (["--model", "/m.gguf", "--mmap"], "error: invalid argument: --mmap"),
        (["/m.gguf"], "error: invalid argument: /m.gguf"),
        (["--model"], "expected value for argument"),
    ):
        proc = _llama(*argv, tmp_path=tmp_path)
        assert (proc.returncode, proc.stderr.strip()) == (1, said)


def test_llama_server_refuses_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"\x08\x00\x00\x00{}")  # a safetensors header, not a GGUF
    proc = _llama("--model", str(model), "--ctx_size", "4096", tmp_path=tmp_path)  # `_` reads as `-`
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "gguf_init_from_file_impl: invalid magic characters: '\x08\x00\x00\x00', expected 'GGUF'",
        f"srv    load_model: failed to load model, '{model}'",
    ]
