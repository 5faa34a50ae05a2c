"""TensorRT-LLM: which releases still build engines, and the LLM API options `trtllm-serve` takes in the YAML file
passed with `--extra_llm_api_options` (what its loader refuses, refused here first). Pure data and checks.

Sources:
- The TensorRT backend (`trtllm-build`, `convert_checkpoint.py`, `--backend tensorrt`) was removed upstream in
  July 2026 (PRs #15763, #15767, #15907, #15918; docs/source/legacy/tensorrt-backend-removal.md). v1.3.0rc20 is
  the last release candidate that still carries it; the migration guide is in the v1.3.0rc23 tag. The two
  candidates between (rc21, rc22) are read the stricter way: without `trtllm-build`.
- The options: `tensorrt_llm/llmapi/llm_args.py` (`BaseLlmArgs`, `TorchLlmArgs` and the config models, every one a
  pydantic model with extra="forbid") at commit 0004396 of TensorRT-LLM's main branch, after the removal.
  `update_llm_args_with_extra_dict` builds `kv_cache_config` and the other mapped sections as their own models,
  so an unknown key inside one is refused naming that model (`1 validation error for KvCacheConfig`).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, Field

from ..desired.fields import Name, Port, ServiceBase, Strict
from ..desired.names import service_options_file
from .base import Launch, LaunchInputs, Stack

FIRST_WITHOUT_TRTLLM_BUILD = Version("1.3.0rc21")
OPTIONS_KNOWN_FROM = FIRST_WITHOUT_TRTLLM_BUILD  # the field lists below are read after the removal
OPTIONS_SOURCE = "TensorRT-LLM llm_args.py at main 0004396"
OPTIONS_IN_CONTAINER = "/etc/spark-state/llm-api-options.yaml"
DEFAULT_PORT = 8355  # the dgx-spark-playbooks' trtllm-serve port

_BASE_LLM_ARGS = """
model tokenizer tokenizer_mode custom_tokenizer post_processor_hook skip_tokenizer_init trust_remote_code
tensor_parallel_size dtype revision tokenizer_revision model_kwargs pipeline_parallel_size context_parallel_size
gpus_per_node moe_cluster_parallel_size moe_tensor_parallel_size moe_expert_parallel_size enable_attention_dp
enable_lm_head_tp_in_adp pp_partition cp_config load_format enable_lora lora_config kv_cache_config
enable_chunked_prefill guided_decoding_backend batched_logits_processor iter_stats_max_iterations
request_stats_max_iterations peft_cache_config scheduler_config cache_transceiver_config sparse_attention_config
kv_cache_compression_config speculative_config max_batch_size max_input_len max_seq_len max_beam_width
max_num_tokens gather_generation_logits num_postprocess_workers postprocess_tokenizer_dir num_serve_frontends
reasoning_parser decoding_config otlp_traces_endpoint backend return_perf_metrics perf_metrics_output_dir
perf_metrics_max_requests prometheus_metrics_config enable_energy_metrics orchestrator_type env_overrides
telemetry_config
"""
_TORCH_LLM_ARGS = """
generation_config garbage_collection_gen0_threshold cuda_graph_config encoder_cuda_graph_config
enable_encoder_decoder_mixed_cuda_graph multimodal_config attention_dp_config disable_overlap_scheduler moe_config
nvfp4_gemm_config dwdp_config encoder_max_batch_size encoder_max_num_tokens attn_backend enable_mla_skip_correction
mla_skip_correction_threshold sampler_force_async_worker enable_in_graph_sampling enable_speculative_beam_history_d2h
enable_early_first_token_response enable_low_latency_host_dispatch enable_iter_perf_stats enable_iter_req_stats
print_iter_log batch_wait_timeout_ms batch_wait_timeout_iters batch_wait_max_tokens_ratio torch_compile_config
prefill_cuda_graph_backend prefill_capture_num_tokens enable_autotuner use_fine_grained_sync
enable_layerwise_nvtx_marker enable_min_latency stream_interval force_dynamic_quantization allreduce_strategy
checkpoint_loader checkpoint_format checkpoint_io_policy mx_config gms_config kv_connector_config mm_encoder_only
disable_mm_encoder encode_only ray_worker_extension_cls ray_placement_config ray_worker_nsight_options sleep_config
reorder_policy_config enable_resource_governor use_cute_dsl_blockscaling_mm use_cute_dsl_blockscaling_bmm
use_cute_dsl_bf16_bmm use_cute_dsl_bf16_gemm max_stats_len layer_wise_benchmarks_config
"""
# Still accepted on input though removed from the model (`_TORCH_LLMARGS_REMOVED_ARG_CHECKS`), and the loader's
# own rename (`hf_revision` → `revision`).
_ACCEPTED_ON_INPUT = "sampler_type hf_revision"


@dataclass(frozen=True)
class Section:
    """A config model inside the options: its class name (as the loader's error names it) and its fields."""

    model: str
    fields: frozenset[str]
    sections: Mapping[str, Section] | None = None


def _fields(text: str) -> frozenset[str]:
    return frozenset(text.split())


_KV_EVENTS = Section(
    "KVEventsConfig",
    _fields("enable_kv_cache_events publisher endpoint replay_endpoint buffer_steps hwm max_queue_size topic"),
)
_BLOCK_REUSE = Section("BlockReuseConfig", _fields("policy max_num_turns"))
_KV_CACHE = Section(
    "KvCacheConfig",
    _fields(
        """
        enable_block_reuse max_tokens max_attention_window sink_token_length free_gpu_memory_fraction host_cache_size
        disk_cache_size disk_cache_path cross_kv_cache_fraction secondary_offload_min_priority event_buffer_max_size
        attention_dp_events_gather_period_ms kv_events_config enable_partial_reuse copy_on_partial_reuse use_uvm
        max_gpu_total_bytes iteration_stats_interval dtype mamba_ssm_cache_dtype mamba_ssm_stochastic_rounding
        mamba_ssm_philox_rounds tokens_per_block mamba_state_cache_interval mamba_state_config use_kv_cache_manager_v2
        enable_swa_scratch_reuse kv_cache_event_hash_algo max_util_for_resume enable_kv_pool_rebalance
        kv_pool_rebalance_min_sampled_kv_caches kv_pool_rebalance_cooldown_secs
        kv_pool_rebalance_target_ratio_update_interval kv_pool_rebalance_ratio_threshold
        kv_pool_rebalance_moving_average_decay kv_pool_rebalance_check_interval disk_prefetch_num_reqs
        fp8_context_mla_kv_len_cap pool_ratio avg_seq_len block_reuse_config
        """
    ),
    {"kv_events_config": _KV_EVENTS, "block_reuse_config": _BLOCK_REUSE},
)
# `cuda_graph_config` is a union told apart by `mode` (TorchLlmArgs.infer_cuda_graph_config_mode): decode unless an
# encoder key is set. Both share BaseCudaGraphConfig's fields.
_CUDA_GRAPH = Section(
    "CudaGraphConfig", _fields("batch_sizes max_batch_size enable_padding mode num_tokens max_num_token seq_lens")
)
_TORCH_COMPILE = Section(
    "TorchCompileConfig",
    _fields(
        "enable_fullgraph enable_inductor enable_piecewise_cuda_graph capture_num_tokens enable_userbuffers "
        "max_num_streams"
    ),
)

LLM_API_OPTIONS = Section(
    "TorchLlmArgs",
    _fields(_BASE_LLM_ARGS + _TORCH_LLM_ARGS + _ACCEPTED_ON_INPUT),
    {"kv_cache_config": _KV_CACHE, "cuda_graph_config": _CUDA_GRAPH, "torch_compile_config": _TORCH_COMPILE},
)

# What spark-state itself sets on trtllm-serve's command line, from the service's own fields: a second value in the
# options file would be overridden by the flag (explicit CLI keys win) and the plan's memory budget would read the
# wrong one. Each maps to the service field to use instead.
OWNED_BY_SERVICE: dict[tuple[str, ...], str] = {
    ("model",): "set the service's checkpoint",
    ("tokenizer",): "set the service's tokenizer",
    ("backend",): "a checkpoint service runs the PyTorch backend",
    ("max_batch_size",): "set the service's max_batch_size",
    ("max_num_tokens",): "set the service's max_num_tokens",
    ("max_seq_len",): "set the service's max_seq_len",
    ("kv_cache_config", "free_gpu_memory_fraction"): "set the service's kv_cache_free_gpu_memory_fraction",
    ("tensor_parallel_size",): "a service runs on one Spark (world size 1)",
    ("pipeline_parallel_size",): "a service runs on one Spark (world size 1)",
}


def release(version: str | None) -> Version | None:
    try:
        return Version(version) if version else None
    except InvalidVersion:
        return None


def has_trtllm_build(version: str | None) -> bool | None:
    """Whether this TensorRT-LLM still ships `trtllm-build`; None when the version is unknown or unreadable."""
    found = release(version)
    return None if found is None else found < FIRST_WITHOUT_TRTLLM_BUILD


def no_trtllm_build_fix(image_ref: str, version: str | None, checkpoint: str) -> str:
    ships = f"ships TensorRT-LLM {version}, which has" if version else "has"
    return (
        f"image {image_ref} {ships} no trtllm-build (TensorRT-LLM removed its "
        f"TensorRT backend from {FIRST_WITHOUT_TRTLLM_BUILD} on; docs/source/legacy/tensorrt-backend-removal.md): "
        f"serve checkpoint {checkpoint!r} directly instead: a service with `stack: trtllm`, "
        f"`checkpoint: {checkpoint}` and this image (trtllm-serve's PyTorch backend)"
    )


@dataclass(frozen=True)
class OptionProblem:
    path: tuple[str, ...]  # keys from the options' top
    message: str


def option_problems(options: Mapping[str, Any], version: str | None) -> Iterator[OptionProblem]:
    """What trtllm-serve's loader would refuse in these options (for a TensorRT-LLM whose fields are known), and
    the keys spark-state sets itself."""
    for path, field in OWNED_BY_SERVICE.items():
        if _lookup(options, path):
            yield OptionProblem(path, f"spark-state passes {'.'.join(path)} itself: {field}")
    found = release(version)
    if found is None or found < OPTIONS_KNOWN_FROM:
        return  # fields unknown for this release: trtllm-serve checks them when the service starts
    yield from _unknown_keys(options, LLM_API_OPTIONS, (), str(found))


def _lookup(options: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    value: Any = options
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    return True


def _unknown_keys(options: Mapping[str, Any], section: Section, at: tuple[str, ...], version: str):
    for key, value in options.items():
        if key not in section.fields:
            close = difflib.get_close_matches(key, section.fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            yield OptionProblem(
                (*at, key),
                f"TensorRT-LLM {version}'s {section.model} has no field {key!r}{hint}: its loader refuses it "
                f"('Extra inputs are not permitted'; fields as of {OPTIONS_SOURCE})",
            )
        elif section.sections and key in section.sections and isinstance(value, Mapping):
            yield from _unknown_keys(value, section.sections[key], (*at, key), version)


class TrtllmServeFlags(Strict):
    """trtllm-serve's own flags a service sets (both TensorRT-LLM stacks)."""

    kv_cache_free_gpu_memory_fraction: float = Field(
        default=0.4,
        ge=0.01,
        le=1,
        description="Share of free unified memory the KV cache may take (at least 0.01: less holds no sequence).",
    )
    max_batch_size: int | None = Field(default=None, ge=1, le=2048, description="trtllm-serve --max_batch_size.")
    max_num_tokens: int | None = Field(default=None, ge=1, le=1048576, description="trtllm-serve --max_num_tokens.")
    max_seq_len: int | None = Field(default=None, ge=1, le=1048576, description="trtllm-serve --max_seq_len.")
    tokenizer: Name | None = Field(default=None, description="Checkpoint whose tokenizer to serve with.")


def _finite(value: Any) -> Any:
    """The options travel as JSON (YAML's .inf and .nan have no JSON spelling)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("an LLM API option cannot be infinite or NaN")
    for inner in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        _finite(inner)
    return value


class PytorchService(ServiceBase, TrtllmServeFlags):
    """trtllm-serve with the PyTorch backend, serving a checkpoint directly (no engine build)."""

    stack: Literal["trtllm"] = Field(
        default="trtllm", description="The serving stack: trtllm (trtllm-serve's PyTorch backend on a checkpoint)."
    )
    port: Port = Field(default=DEFAULT_PORT, description="Where it answers (default: the playbooks' 8355).")
    checkpoint: Name = Field(description="The checkpoint it serves.")
    backend: Literal["pytorch"] = Field(default="pytorch", description="The only backend TensorRT-LLM keeps.")
    image: Name = Field(description="The TensorRT-LLM image it runs in (its version checks llm_api_options).")
    llm_api_options: dict[str, Annotated[Any, AfterValidator(_finite)]] = Field(
        default_factory=dict,
        description="TensorRT-LLM LLM API options (kv_cache_config, cuda_graph_config, enable_chunked_prefill, "
        "speculative_config, ...), written to the YAML file trtllm-serve reads with --extra_llm_api_options; keys "
        "are checked against the image's TensorRT-LLM where its fields are known.",
    )


SERVE_LIMITS = ("max_batch_size", "max_num_tokens", "max_seq_len")


def serve_command(
    svc: TrtllmServeFlags, inputs: LaunchInputs, model_arg: str, backend: str, options_flag: list[str]
) -> list[str]:
    """`trtllm-serve serve` with the service's flags (an engine's build limits where the service sets none)."""
    argv = ["trtllm-serve", "serve", model_arg, "--tokenizer", "/tokenizer", "--backend", backend]
    argv += ["--host", "0.0.0.0", "--port", str(inputs.port)]
    for flag in SERVE_LIMITS:
        value = getattr(svc, flag) if getattr(svc, flag) is not None else inputs.limits.get(flag)
        if value is not None:
            argv += [f"--{flag}", str(value)]
    argv += ["--kv_cache_free_gpu_memory_fraction", f"{svc.kv_cache_free_gpu_memory_fraction:g}"]
    return argv + options_flag + list(svc.extra_args)  # type: ignore[attr-defined]


def options_text(options: Mapping[str, Any]) -> str:
    """LLM API options as the YAML trtllm-serve reads (JSON is YAML: one spelling, keys sorted)."""
    return json.dumps(options, indent=2, sort_keys=True) + "\n"


def served_options(svc: PytorchService, scraped: bool) -> dict[str, Any]:
    """The LLM API options trtllm-serve reads: the state's, and return_perf_metrics when Prometheus scrapes it
    (trtllm-serve mounts /prometheus/metrics only with it: serve/openai_server.py, mount_metrics), unless the
    state says otherwise."""
    options = dict(svc.llm_api_options)
    if scraped:
        options.setdefault("return_perf_metrics", True)
    return options


def launch(svc: PytorchService, inputs: LaunchInputs) -> Launch:
    docker = ["-p", f"{inputs.port}:{inputs.port}"]
    docker += ["-v", f"{inputs.model_dir}:/model:ro", "-v", f"{inputs.tokenizer_dir}:/tokenizer:ro"]
    config_files: dict[str, str] = {}
    options_flag: list[str] = []
    options = served_options(svc, inputs.scraped)
    if options:
        text = options_text(options)
        path = service_options_file(inputs.root, inputs.service, text)
        config_files[path] = text
        docker += ["-v", f"{path}:{OPTIONS_IN_CONTAINER}:ro"]
        options_flag = ["--extra_llm_api_options", OPTIONS_IN_CONTAINER]
    return Launch(
        docker=docker,
        command=serve_command(svc, inputs, "/model", "pytorch", options_flag),
        description=f"trtllm-serve checkpoint {svc.checkpoint} (pytorch) on :{inputs.port}",
        serves=f"{inputs.served} (pytorch) on {inputs.image_ref}",
        config_files=config_files,
    )


STACK = Stack(
    name="trtllm",
    service=PytorchService,
    default_port=DEFAULT_PORT,
    health_path="/health",
    # trtllm-serve's /metrics answers JSON iteration stats; Prometheus text is /prometheus/metrics, mounted only
    # with the LLM API option return_perf_metrics (tensorrt_llm/serve/openai_server.py, mount_metrics).
    metrics_path="/prometheus/metrics",
    health_timeout_s=600,
    launch=launch,
    takes_free_memory=True,
    secrets=frozenset({"HF_TOKEN"}),  # transformers and huggingface_hub in trtllm-serve, for gated tokenizers
)
