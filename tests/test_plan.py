"""Unit tests of the pure plan: fingerprints, tokenizer wiring, budgets, secrets."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from conftest import EXAMPLE_STATE

from spark_state.desired.compat import KNOWN_GPUS, Support, trtllm_support, trtllm_version_for_image, version_tuple
from spark_state.desired.loader import load_state, load_state_text
from spark_state.errors import MemoryBudgetError, StateFileError
from spark_state.plan.host_plan import plan_fleet, plan_host
from spark_state.stacks import STACKS

EXAMPLE_TEXT = EXAMPLE_STATE.read_text()
# A vLLM and a TensorRT-LLM release image with one checkpoint, for states with services of both stacks.
TWO_STACKS_IMAGES = """
images:
  vllm: nvcr.io/nvidia/vllm:26.05-py3
  rel: nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc23
checkpoints:
  fp8: {repo: nvidia/Llama-3.1-8B-Instruct-FP8, size_gb: 9.08}
"""


def _state(text: str = EXAMPLE_TEXT):
    return load_state_text(text, "t.yaml").state


def _engine(state, name: str):
    """The engine's plan on the first host that builds it."""
    return next(e for plan in plan_fleet(state) for e in plan.engines if e.name == name)


def test_every_build_input_changes_the_fingerprint() -> None:
    base = _engine(_state(), "llama31-8b-fp8").fingerprint
    variants = [
        EXAMPLE_TEXT.replace(
            "max_batch_size: 8\n    max_input_len: 2048\n    max_seq_len: 4096\n    max_num_tokens: 4096\n"
            "    use_paged_context_fmha: true\n  llama31-8b-nvfp4",
            "max_batch_size: 16\n    max_input_len: 2048\n    max_seq_len: 4096\n    max_num_tokens: 4096\n"
            "    use_paged_context_fmha: true\n  llama31-8b-nvfp4",
        ),
        EXAMPLE_TEXT.replace("tritonserver:25.12", "tritonserver:26.03"),
        EXAMPLE_TEXT.replace(
            "repo: nvidia/Llama-3.1-8B-Instruct-FP8\n    revision: main",
            "repo: nvidia/Llama-3.1-8B-Instruct-FP8\n    revision: 0123abc",
        ),
        EXAMPLE_TEXT.replace(
            "quantization: fp8             # --gemm_plugin fp8, --use_fp8_context_fmha enable",
            "quantization: fp8\n    use_fp8_context_fmha: false",
        ),
    ]
    prints = {_engine(_state(v), "llama31-8b-fp8").fingerprint for v in variants}
    assert base not in prints and len(prints) == len(variants)
    # ... and what does not feed the build does not.
    assert _engine(_state(EXAMPLE_TEXT.replace("port: 8003", "port: 8013")), "llama31-8b-fp8").fingerprint == base


def test_seed_build_flags() -> None:
    fp8 = _engine(_state(), "llama31-8b-fp8")
    nvfp4 = _engine(_state(), "llama31-8b-nvfp4")
    assert fp8.build_argv[fp8.build_argv.index("trtllm-build") :] == (
        "trtllm-build",
        "--checkpoint_dir",
        "/work/trtllm-ckpt",
        "--output_dir",
        "/work/engine",
        "--gemm_plugin",
        "fp8",
        "--max_batch_size",
        "8",
        "--max_input_len",
        "2048",
        "--max_seq_len",
        "4096",
        "--max_num_tokens",
        "4096",
        "--use_paged_context_fmha",
        "enable",
        "--use_fp8_context_fmha",
        "enable",
    )
    assert "--use_fp8_context_fmha" not in nvfp4.build_argv
    assert nvfp4.build_argv[nvfp4.build_argv.index("--gemm_plugin") :][:2] == ("--gemm_plugin", "nvfp4")
    # Builds write to a .partial directory; the unit points at the final one.
    assert nvfp4.build_dir == nvfp4.dir + ".partial"


def test_nvfp4_is_served_with_the_fp8_tokenizer() -> None:
    (plan,) = plan_fleet(_state(), "spark-02")
    svc = next(s for s in plan.services if s.name == "trtllm-nvfp4")
    assert svc.tokenizer_checkpoint == "llama31-8b-fp8"
    assert "/var/lib/spark-state/checkpoints/llama31-8b-fp8/main:/tokenizer:ro" in svc.run_argv
    # tokenizer_from on the checkpoint is enough without the explicit service setting.
    text = EXAMPLE_TEXT.replace(
        "    tokenizer: llama31-8b-fp8     # explicit; tokenizer_from on the checkpoint would choose the same\n", ""
    )
    (plan,) = plan_fleet(_state(text), "spark-02")
    nvfp4 = next(s for s in plan.services if s.name == "trtllm-nvfp4")
    assert nvfp4.tokenizer_checkpoint == "llama31-8b-fp8"
    assert [c.name for c in plan.checkpoints] == ["llama31-8b-nvfp4", "llama31-8b-fp8", "llama31-8b-gguf"]


def test_placement_per_host() -> None:
    plans = {p.host: p for p in plan_fleet(_state())}
    # fraction-of-free services start after the others (in the state's order: the group's, then the host's)
    assert [s.name for s in plans["spark-01"].services] == ["nim-fp8", "trtllm-nvfp4", "trtllm-fp8", "sglang-fp8"]
    assert [s.name for s in plans["spark-02"].services] == ["vllm-fp8", "llama-q4", "trtllm-nvfp4", "trtllm-pt-nvfp4"]
    assert [e.name for e in plans["spark-02"].engines] == ["llama31-8b-nvfp4"]
    assert [i.name for i in plans["spark-02"].images] == ["triton-25.12", "vllm-26.05", "llama.cpp", "trtllm-1.3"]


def test_revision_with_slash_stays_one_directory() -> None:
    text = EXAMPLE_TEXT.replace(
        "repo: nvidia/Llama-3.1-8B-Instruct-FP8\n    revision: main",
        "repo: nvidia/Llama-3.1-8B-Instruct-FP8\n    revision: refs/pr/1",
    )
    plan = plan_host(_state(text), "spark-01")
    ckpt = next(c for c in plan.checkpoints if c.name == "llama31-8b-fp8")
    assert PurePosixPath(ckpt.dir).parent == PurePosixPath("/var/lib/spark-state/checkpoints/llama31-8b-fp8")


def test_secrets_go_to_an_env_file_never_the_unit() -> None:
    text = EXAMPLE_TEXT.replace("    shm_size: 16GB\n", "    shm_size: 16GB\n    env: {NIM_LOG_LEVEL: info}\n")
    plan = plan_host(_state(text), "spark-01")
    nim = next(s for s in plan.services if s.name == "nim-fp8")
    assert nim.env_file == "/etc/spark-state/secrets/nim-fp8.env"
    assert ("--env-file", nim.env_file) == nim.run_argv[nim.run_argv.index("--env-file") :][:2]
    assert nim.secrets == ("NGC_API_KEY",) and "NGC_API_KEY" not in nim.unit_text and "info" not in nim.unit_text


def test_pytorch_backend_service_serves_the_checkpoint() -> None:
    text = EXAMPLE_TEXT.replace(
        "services: [nim-fp8, trtllm-fp8, sglang-fp8]", "services: [nim-fp8, trtllm-fp8, sglang-fp8, pt]"
    )
    text = text.replace(
        "# The verification bench",
        "  pt: {checkpoint: llama31-8b-nvfp4, backend: pytorch, image: triton-25.12, port: 8010}\n\n# The verification bench",
    )
    plan = plan_host(_state(text), "spark-01")
    pt = next(s for s in plan.services if s.name == "pt")
    i = pt.run_argv.index("trtllm-serve")
    assert pt.run_argv[i : i + 7] == (
        "trtllm-serve",
        "serve",
        "/model",
        "--tokenizer",
        "/tokenizer",
        "--backend",
        "pytorch",
    )
    assert pt.tokenizer_checkpoint == "llama31-8b-fp8" and pt.engine is None


def test_memory_budget_claims_kv_fraction_of_what_is_free() -> None:
    plan = plan_host(_state(), "spark-02")
    b = plan.budget
    weights = 6.03 * 0.95 * 1e9 / 2**30
    # vLLM's share of the total and llama.cpp's memory_gib are claimed first; the engine's KV cache takes its
    # fraction of what is left
    assert b.memory_items["vllm-fp8"] == pytest.approx(0.3 * 121.7, abs=0.01)
    free = 121.7 - 8 - 0.3 * 121.7 - 6 - weights
    assert b.memory_items["trtllm-nvfp4"] == pytest.approx(weights + 0.4 * free, abs=0.01)


def test_a_host_whose_services_do_not_fit_is_refused_naming_each_share() -> None:
    text = EXAMPLE_TEXT.replace("    shm_size: 16GB\n", "    shm_size: 16GB\n    memory_gib: 200\n")
    with pytest.raises(MemoryBudgetError) as refused:
        plan_host(_state(text), "spark-01")
    message = str(refused.value)
    assert (
        message.startswith("spark-01: its services need ") and "113.7 GiB is usable (121.7 less 8 reserved)" in message
    )
    assert "nim-fp8 200.0 GiB (its memory_gib)" in message
    assert "trtllm-nvfp4 " in message and "trtllm-fp8 " in message


def test_vllm_shares_are_of_total_memory_and_fraction_of_free_shares_follow_them() -> None:
    text = (
        TWO_STACKS_IMAGES
        + """services:
  a: {stack: vllm, checkpoint: fp8, image: vllm, port: 8000, gpu_memory_utilization: 0.5}
  c: {checkpoint: fp8, backend: pytorch, image: rel, port: 8355, kv_cache_free_gpu_memory_fraction: 0.5}
hosts:
  s1: {address: 10.0.0.5, services: [a, c]}
"""
    )
    budget = plan_host(_state(text), "s1").budget
    weights = 9.08e9 / 2**30
    assert budget.memory_items["a"] == round(0.5 * 121.7, 2)
    assert budget.memory_items["c"] == round(weights + 0.5 * (121.7 - 8 - 0.5 * 121.7 - weights), 2)
    with pytest.raises(MemoryBudgetError, match=r"a 97\.4 GiB \(vllm: 0\.8 of the 121\.7 GiB total\)"):
        plan_host(
            _state(
                text.replace("gpu_memory_utilization: 0.5", "gpu_memory_utilization: 0.8")
                .replace("fraction: 0.5", "fraction: 0.9")
                .replace("size_gb: 9.08", "size_gb: 30")
            ),
            "s1",
        )


def test_sglang_claims_its_fraction_of_what_is_free_when_it_starts() -> None:
    """kv_cache_configurator.py: weights and KV cache within mem_fraction_static × the memory available at start;
    the weights must leave room for the KV cache, or SGLang refuses to start."""
    text = TWO_STACKS_IMAGES.replace("images:\n", "images:\n  sgl: lmsysorg/sglang:v0.5.23-cu130\n") + (
        """services:
  a: {stack: vllm, checkpoint: fp8, image: vllm, port: 8000, gpu_memory_utilization: 0.5}
  s: {stack: sglang, checkpoint: fp8, image: sgl, mem_fraction_static: 0.5}
hosts:
  s1: {address: 10.0.0.5, services: [a, s]}
"""
    )
    plan = plan_host(_state(text), "s1")
    free = 121.7 - 8 - 0.5 * 121.7
    assert plan.budget.memory_items["s"] == round(0.5 * free, 2)
    argv = plan.services[1].run_argv
    assert plan.services[1].port == 30000 and argv[argv.index("--mem-fraction-static") + 1] == "0.5"
    assert argv[argv.index("lmsysorg/sglang:v0.5.23-cu130") + 1 :][:3] == ("python3", "-m", "sglang.launch_server")
    short = text.replace("mem_fraction_static: 0.5", "mem_fraction_static: 0.1")
    with pytest.raises(MemoryBudgetError, match=r"s: its mem_fraction_static 0\.1 of 52\.9 GiB is 5\.3 GiB, which "):
        plan_host(_state(short), "s1")


def test_fraction_of_free_services_start_last_each_after_the_one_before() -> None:
    """Whatever order the state lists them in, share-of-total services start first and fraction-of-free ones
    after them in one chain (After=/PartOf=, the leader counted started once it answers), as the budget reckons."""
    text = TWO_STACKS_IMAGES.replace("images:\n", "images:\n  sgl: lmsysorg/sglang:v0.5.23-cu130\n") + (
        """services:
  c: {checkpoint: fp8, backend: pytorch, image: rel, port: 8355, kv_cache_free_gpu_memory_fraction: 0.3}
  s: {stack: sglang, checkpoint: fp8, image: sgl, mem_fraction_static: 0.5}
  a: {stack: vllm, checkpoint: fp8, image: vllm, port: 8000, gpu_memory_utilization: 0.3}
hosts:
  s1: {address: 10.0.0.5, services: [c, s, a]}
"""
    )
    plan = plan_host(_state(text), "s1")
    assert [s.name for s in plan.services] == ["a", "c", "s"]
    assert list(plan.budget.memory_items) == ["a", "c", "s"]
    a, c, s = plan.services
    assert (a.after_unit, a.followers, c.after_unit, c.followers) == (None, (), None, ("spark-state-s.service",))
    assert s.after_unit == "spark-state-c.service" and s.followers == ()
    assert "After=docker.service network-online.target spark-state-c.service\n" in s.unit_text
    assert "PartOf=spark-state-c.service\n" in s.unit_text and "ExecStartPost" not in s.unit_text
    wait = (
        'ExecStartPost=/usr/bin/timeout 600 /bin/sh -c "until curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8355'
    )
    assert wait in c.unit_text and "TimeoutStartSec=660\n" in c.unit_text
    assert "PartOf" not in a.unit_text + c.unit_text


def test_compat_table_and_verdicts() -> None:
    gb10 = KNOWN_GPUS["GB10"]
    assert trtllm_version_for_image("nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3") == "0.17.0.post1"
    assert trtllm_version_for_image("nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3") == "1.1.0"
    assert trtllm_version_for_image("nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3") == "1.2.0"
    assert trtllm_version_for_image("nvcr.io/nvidia/tritonserver:25.12-py3") is None
    assert version_tuple("0.17.0.post1") == (0, 17, 0)
    assert trtllm_support("0.17.0.post1", gb10).support is Support.KNOWN_BAD
    assert trtllm_support("1.1.0", gb10).support is Support.VERIFIED
    assert trtllm_support("1.2.0", gb10).support is Support.UNVERIFIED
    assert trtllm_support("0.21.0", gb10).support is Support.UNVERIFIED
    assert trtllm_support(None, gb10).support is Support.UNKNOWN_VERSION


def test_unverified_image_is_a_warning_not_an_error() -> None:
    loaded = load_state_text(EXAMPLE_TEXT.replace("tritonserver:25.12", "tritonserver:26.03"), "w.yaml")
    assert any("unverified" in w.message and w.field == "engines.llama31-8b-fp8.image" for w in loaded.warnings)


def test_example_warns_only_that_the_release_image_is_unverified_on_gb10() -> None:
    (warning,) = load_state(EXAMPLE_STATE).warnings
    assert (
        warning.field == "services.trtllm-pt-nvfp4.image"
        and "1.3.0rc23 is unverified on NVIDIA GB10" in warning.message
    )


def test_a_service_without_a_port_answers_on_its_stacks_default() -> None:
    text = (
        TWO_STACKS_IMAGES
        + """services:
  chat: {stack: vllm, checkpoint: fp8, image: vllm, gpu_memory_utilization: 0.3}
  pt: {stack: trtllm, checkpoint: fp8, image: rel}
hosts:
  s1: {address: 10.0.0.5, services: [chat, pt]}
"""
    )
    ports = {s.name: s.port for s in plan_host(_state(text), "s1").services}
    assert (
        ports
        == {"chat": STACKS["vllm"].default_port, "pt": STACKS["trtllm"].default_port}
        == {"chat": 8000, "pt": 8355}
    )


def test_validate_and_plan_agree_on_who_downloads_a_gguf_checkpoint() -> None:
    """A GGUF checkpoint that is also the NVFP4 checkpoint's tokenizer_from is downloaded on spark-02 by the NVFP4
    engine's image: validate accepts it without fetch_image, as the plan has an image for it (one rule,
    desired.downloads)."""
    text = (
        EXAMPLE_TEXT.replace(
            "    fetch_image: vllm-26.05     # llama.cpp's image has no Python to download with; this one has "
            "huggingface_hub\n",
            "",
        )
        .replace("    tokenizer_from: llama31-8b-fp8\n", "    tokenizer_from: llama31-8b-gguf\n")
        .replace(
            "    tokenizer: llama31-8b-fp8     # explicit; tokenizer_from on the checkpoint would choose the same\n", ""
        )
    )
    assert "fetch_image" not in text and "tokenizer_from: llama31-8b-gguf" in text
    (plan,) = plan_fleet(_state(text), "spark-02")
    gguf = next(c for c in plan.checkpoints if c.name == "llama31-8b-gguf")
    assert gguf.fetch_image_ref == "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"
    with pytest.raises(StateFileError) as info:  # without that tokenizer use, nothing on spark-02 can download it
        _state(text.replace("    tokenizer_from: llama31-8b-gguf\n", ""))
    assert "only llama.cpp serves it" in str(info.value.problems[0])
