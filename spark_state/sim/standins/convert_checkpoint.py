"""Stand-in for TensorRT-LLM's llama `convert_checkpoint.py`: HF (ModelOpt) checkpoint → TRT-LLM checkpoint."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .gpu import require_gpu, trtllm_version


def quant_algo(model_dir: str) -> tuple[str | None, str | None]:
    """(weights, kv cache) quantization of a ModelOpt export: hf_quant_config.json, else config.json."""
    path = os.path.join(model_dir, "hf_quant_config.json")
    if os.path.exists(path):
        with open(path) as f:
            q = json.load(f).get("quantization", {})
        return q.get("quant_algo"), q.get("kv_cache_quant_algo")
    with open(os.path.join(model_dir, "config.json")) as f:
        q = json.load(f).get("quantization_config") or {}
    algo = q.get("quant_algo") or ("FP8" if q.get("quant_method") in ("fp8", "modelopt") else None)
    return algo, q.get("kv_cache_quant_algo")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="convert_checkpoint.py")
    p.add_argument("--model_dir", required=True)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    p.add_argument("--tp_size", type=int, default=1)
    p.add_argument("--pp_size", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    gpu = require_gpu()
    version = trtllm_version()
    print(f"[TensorRT-LLM] TensorRT-LLM version: {version}")
    try:
        with open(os.path.join(args.model_dir, "config.json")) as f:
            hf_config = json.load(f)
        algo, kv_algo = quant_algo(args.model_dir)
    except (OSError, ValueError) as exc:
        print(f"Error: cannot read a Hugging Face checkpoint in {args.model_dir}: {exc}", file=sys.stderr)
        return 1
    time.sleep(16 * float(gpu["time_scale"]))
    os.makedirs(args.output_dir, exist_ok=True)
    config = {
        "architecture": (hf_config.get("architectures") or ["LlamaForCausalLM"])[0],
        "dtype": args.dtype if args.dtype != "auto" else hf_config.get("torch_dtype", "bfloat16"),
        "vocab_size": hf_config.get("vocab_size"),
        "hidden_size": hf_config.get("hidden_size"),
        "num_hidden_layers": hf_config.get("num_hidden_layers"),
        "quantization": {"quant_algo": algo, "kv_cache_quant_algo": kv_algo},
        "mapping": {"world_size": args.tp_size * args.pp_size, "tp_size": args.tp_size, "pp_size": args.pp_size},
        "producer": {"name": "tensorrt_llm", "version": version},
    }
    with open(os.path.join(args.output_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.output_dir, "rank0.safetensors"), "wb") as f:
        f.write(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    print(f"Total time of converting checkpoints: 00:00:{int(16 * float(gpu['time_scale'])):02d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
