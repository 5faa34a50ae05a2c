"""Stand-in `trtllm-build`, traps included: TensorRT-LLM < 0.18 on SM 12.x dies with the real FP8 FMHA
assertion; newer ones warn about GB10's cluster info and write a sparse rank0.engine of the real size."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .gpu import ENGINE_BYTES, require_gpu, trtllm_version, version_tuple

ASSERTION = (
    "terminate called after throwing an instance of 'tensorrt_llm::common::TllmException'\n"
    "  what():  [TensorRT-LLM][ERROR] Assertion failed: FP8 FMHA cannot be enabled except on Ada or Hopper "
    "or Blackwell Arch. (/src/tensorrt_llm/cpp/tensorrt_llm/common/attentionOp.cpp:2187)"
)


# trtllm-build's flags as TensorRT-LLM 1.1 defines them: tensorrt_llm/commands/build.py parse_arguments() and the
# plugin/feature flags add_plugin_argument() adds from PluginConfig (tensorrt_llm/plugin/plugin.py, cli_plugin_args).
# Anything else is refused by argparse, as the real one refuses it ("unrecognized arguments").
DEFAULT_PLUGIN_DTYPES = ["auto", "float16", "float32", "bfloat16", "int32", "disable"]
PLUGIN_DTYPES = {  # plugin → (choices, default)
    "bert_attention_plugin": (DEFAULT_PLUGIN_DTYPES, "auto"),
    "gpt_attention_plugin": (DEFAULT_PLUGIN_DTYPES, "auto"),
    "gemm_plugin": (["auto", "float16", "float32", "bfloat16", "int32", "fp8", "nvfp4", "disable"], None),
    "gemm_swiglu_plugin": (["fp8", "disable"], "disable"),
    "fp8_rowwise_gemm_plugin": (DEFAULT_PLUGIN_DTYPES, "disable"),
    "lora_plugin": (DEFAULT_PLUGIN_DTYPES, "disable"),
    "moe_plugin": (DEFAULT_PLUGIN_DTYPES, "auto"),
    "mamba_conv1d_plugin": (DEFAULT_PLUGIN_DTYPES, "auto"),
    "nccl_plugin": (DEFAULT_PLUGIN_DTYPES, "auto"),
    "low_latency_gemm_plugin": (["fp8", "disable"], "disable"),
    "low_latency_gemm_swiglu_plugin": (["fp8", "disable"], "disable"),
    "gemm_allreduce_plugin": (["float16", "bfloat16", "disable"], "disable"),
}
FEATURES = {  # feature → default (enable/disable)
    "dora_plugin": False,
    "context_fmha": True,
    "bert_context_fmha_fp32_acc": False,
    "remove_input_padding": True,
    "use_paged_context_fmha": True,
    "use_fp8_context_fmha": True,
    "fuse_fp4_quant": False,
    "multiple_profiles": False,
    "paged_state": True,
    "streamingllm": False,
    "norm_quant_fusion": False,
    "reduce_fusion": False,
    "user_buffer": False,
    "use_fused_mlp": True,
    "pp_reduce_scatter": False,
}
LOG_LEVELS = ["internal_error", "error", "warning", "info", "verbose", "debug", "trace"]
LORA_MODULES = [
    "attn_qkv",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_dense",
    "mlp_h_to_4h",
    "mlp_4h_to_h",
    "mlp_gate",
    "cross_attn_qkv",
    "cross_attn_q",
    "cross_attn_k",
    "cross_attn_v",
    "cross_attn_dense",
    "moe_h_to_4h",
    "moe_4h_to_h",
    "moe_gate",
    "moe_router",
    "mlp_router",
    "mlp_gate_up",
]


def kv_cache_type(value: str) -> str:
    if value.upper() not in ("CONTINUOUS", "PAGED", "DISABLED"):
        raise argparse.ArgumentTypeError(
            f"Invalid value '{value}'. Expected one of ['continuous', 'paged', 'disabled']"
        )
    return value.lower()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trtllm-build", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint_dir", type=str, default=None)
    p.add_argument("--model_config", type=str, default=None)
    p.add_argument("--build_config", type=str, default=None)
    p.add_argument("--model_cls_file", type=str, default=None)
    p.add_argument("--model_cls_name", type=str, default=None)
    p.add_argument("--output_dir", type=str, default="engine_outputs")
    p.add_argument("--max_batch_size", type=int, default=2048)
    p.add_argument("--max_input_len", type=int, default=1024)
    p.add_argument("--max_seq_len", "--max_decoder_seq_len", dest="max_seq_len", type=int, default=None)
    p.add_argument("--max_beam_width", type=int, default=1)
    p.add_argument("--max_num_tokens", type=int, default=8192)
    p.add_argument("--opt_num_tokens", type=int, default=None)
    p.add_argument("--max_encoder_input_len", type=int, default=1024)
    p.add_argument("--max_prompt_embedding_table_size", "--max_multimodal_len", type=int, default=0)
    p.add_argument("--kv_cache_type", default=argparse.SUPPRESS, type=kv_cache_type)
    p.add_argument("--paged_kv_cache", type=str, default=argparse.SUPPRESS)
    p.add_argument("--input_timing_cache", type=str, default=None)
    p.add_argument("--output_timing_cache", type=str, default="model.cache")
    p.add_argument(
        "--profiling_verbosity", type=str, default="layer_names_only", choices=["layer_names_only", "detailed", "none"]
    )
    for flag in (
        "--strip_plan",
        "--weight_sparsity",
        "--weight_streaming",
        "--fast_build",
        "--enable_debug_output",
        "--dry_run",
        "--monitor_memory",
        "--gather_context_logits",
        "--gather_generation_logits",
        "--gather_all_token_logits",
    ):
        p.add_argument(flag, default=False, action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log_level", type=str, default="info", choices=LOG_LEVELS)
    p.add_argument("--visualize_network", type=str, default=None)
    p.add_argument("--logits_dtype", type=str, default=None, choices=["float16", "float32"])
    p.add_argument("--lora_dir", type=str, default=None, nargs="+")
    p.add_argument("--lora_ckpt_source", type=str, default="hf", choices=["hf", "nemo"])
    p.add_argument("--lora_target_modules", nargs="+", default=None, choices=LORA_MODULES)
    p.add_argument("--max_lora_rank", type=int, default=64)
    p.add_argument(
        "--speculative_decoding_mode",
        default=None,
        choices=["draft_tokens_external", "lookahead_decoding", "medusa", "explicit_draft_tokens", "eagle"],
    )
    p.add_argument("--max_draft_len", type=int, default=0)
    p.add_argument("--auto_parallel", type=int, default=1)
    p.add_argument("--gpus_per_node", type=int, default=8)
    p.add_argument("--cluster_key", type=str, default=None)
    for name, (choices, default) in PLUGIN_DTYPES.items():
        p.add_argument(f"--{name}", type=str, default=default, choices=choices)
    for name, enabled in FEATURES.items():
        p.add_argument(f"--{name}", type=str, default="enable" if enabled else "disable", choices=["enable", "disable"])
    p.add_argument("--tokens_per_block", type=int, default=32)
    return p


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.checkpoint_dir is None and args.model_config is None:
        p.error("either --checkpoint_dir or --model_config is required")
    gpu = require_gpu()
    version = trtllm_version()
    major, minor = (int(x) for x in str(gpu["compute_capability"]).split("."))
    print(f"[TensorRT-LLM] TensorRT-LLM version: {version}")
    try:
        with open(os.path.join(args.checkpoint_dir, "config.json")) as f:
            checkpoint = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"[TRT-LLM] [E] cannot read TensorRT-LLM checkpoint {args.checkpoint_dir}: {exc}", file=sys.stderr)
        return 1
    algo = (checkpoint.get("quantization") or {}).get("quant_algo") or "FP8"
    print(f"[TRT-LLM] [I] Compute capability: ({major}, {minor})")
    print(f"[TRT-LLM] [I] SM count: {gpu['sm_count']}")
    sys.stdout.flush()
    if version_tuple(version) < (0, 18) and major >= 12:
        time.sleep(60 * float(gpu["time_scale"]))  # a minute of graph construction, then the crash
        print(ASSERTION, file=sys.stderr)
        return 134
    print(f"[TRT-LLM] [W] Failed to infer cluster info for {gpu['name']}, treat it as a L40 node with 121 GB memory.")
    started = time.time()
    time.sleep(30 * float(gpu["time_scale"]))
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "rank0.engine"), "wb") as f:
        f.truncate(ENGINE_BYTES.get(algo, ENGINE_BYTES["FP8"]))  # sparse: the real size, no real blocks
    flags = {k: v for k, v in vars(args).items() if k not in ("checkpoint_dir", "output_dir", "workers")}
    if flags.get("max_seq_len") is None:
        flags["max_seq_len"] = flags["max_input_len"] + 1024  # deduced from the model config by the real one
    with open(os.path.join(args.output_dir, "config.json"), "w") as f:
        json.dump({"version": version, "pretrained_config": checkpoint, "build_config": flags}, f, indent=2)
    elapsed = int(time.time() - started)
    print(f"[TRT-LLM] [I] Total time of building all engines: 00:00:{elapsed:02d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
