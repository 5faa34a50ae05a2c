"""Runs inside a TensorRT-LLM image: convert a Hugging Face checkpoint (a ModelOpt FP8/NVFP4 export included)
into a TensorRT-LLM checkpoint for trtllm-build, through TensorRT-LLM's own library API — not an example
script, which the Triton images do not ship (the field report cloned TensorRT-LLM's ~400 MB source to get one).

TensorRT-LLM moved conversion into the core library (docs/source/architecture/workflow.md, "Conversion APIs"):
`LLaMAForCausalLM.from_hugging_face(dir, dtype, mapping, quant_config)` then `save_checkpoint(out)`. A ModelOpt
export says its quantization in hf_quant_config.json; it is turned into a QuantConfig as TensorRT-LLM's LLM API
does (llmapi/llm_utils.py, reading hf_quant_config.json), since from_hugging_face does not read that file.

    python3 convert_checkpoint.py --model_dir DIR --output_dir OUT [--dtype bfloat16]
"""

import argparse
import json
import os
import sys
import time

ARCHITECTURES = {"LlamaForCausalLM": "LLaMAForCausalLM"}  # HF architecture → TensorRT-LLM model class


def quant_config(model_dir):
    """The checkpoint's quantization as a TensorRT-LLM QuantConfig (no quantization: an empty one)."""
    from tensorrt_llm.models.modeling_utils import QuantConfig
    from tensorrt_llm.quantization import QuantAlgo

    config = QuantConfig()
    path = os.path.join(model_dir, "hf_quant_config.json")
    if not os.path.exists(path):
        return config
    with open(path) as f:
        quantization = json.load(f).get("quantization") or {}
    if quantization.get("quant_algo"):
        config.quant_algo = QuantAlgo(quantization["quant_algo"])
    if quantization.get("kv_cache_quant_algo"):
        config.kv_cache_quant_algo = QuantAlgo(quantization["kv_cache_quant_algo"])
    if quantization.get("group_size"):
        config.group_size = int(quantization["group_size"])
    if quantization.get("exclude_modules"):
        config.exclude_modules = list(quantization["exclude_modules"])
    return config


def main(argv):
    p = argparse.ArgumentParser(prog="convert_checkpoint.py")
    p.add_argument("--model_dir", required=True)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    args = p.parse_args(argv)
    started = time.monotonic()
    with open(os.path.join(args.model_dir, "config.json")) as f:
        architecture = (json.load(f).get("architectures") or ["?"])[0]
    if architecture not in ARCHITECTURES:
        sys.exit(f"convert_checkpoint.py: {args.model_dir} holds a {architecture}; spark-state's converter knows "
                 f"{', '.join(ARCHITECTURES)} (set the engine's convert_script for others)")  # fmt: skip
    import tensorrt_llm
    import tensorrt_llm.models
    from tensorrt_llm.mapping import Mapping

    print(f"[TensorRT-LLM] TensorRT-LLM version: {tensorrt_llm.__version__}", flush=True)
    model_class = getattr(tensorrt_llm.models, ARCHITECTURES[architecture])
    quant = quant_config(args.model_dir)
    model = model_class.from_hugging_face(args.model_dir, dtype=args.dtype, quant_config=quant,
                                          mapping=Mapping(world_size=1, rank=0, tp_size=1, pp_size=1))  # fmt: skip
    model.save_checkpoint(args.output_dir, save_config=True)
    elapsed = int(time.monotonic() - started)
    print(f"Total time of converting checkpoints: {elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}")


if __name__ == "__main__":
    main(sys.argv[1:])
