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


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="trtllm-build")
    p.add_argument("--checkpoint_dir", required=True)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--gemm_plugin", default="auto")
    p.add_argument("--max_batch_size", type=int, default=2048)
    p.add_argument("--max_input_len", type=int, default=1024)
    p.add_argument("--max_seq_len", type=int, default=None)
    p.add_argument("--max_num_tokens", type=int, default=8192)
    p.add_argument("--use_paged_context_fmha", choices=["enable", "disable"], default="enable")
    p.add_argument("--use_fp8_context_fmha", choices=["enable", "disable"], default="disable")
    p.add_argument("--log_level", default="info")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
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
    with open(os.path.join(args.output_dir, "config.json"), "w") as f:
        json.dump({"version": version, "pretrained_config": checkpoint, "build_config": flags}, f, indent=2)
    elapsed = int(time.time() - started)
    print(f"[TRT-LLM] [I] Total time of building all engines: 00:00:{elapsed:02d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
