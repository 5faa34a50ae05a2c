"""Stand-in for `tensorrt_llm.models` (TensorRT-LLM 1.1): only `LLaMAForCausalLM.from_hugging_face()` and
`save_checkpoint()`, the conversion API TensorRT-LLM moved out of its example scripts into the core library
(docs/source/architecture/workflow.md, "Conversion APIs"; tensorrt_llm/models/llama/model.py). Everything
else the real package has is absent here, so a converter that leans on more fails in rehearsal.

Refused as the real one refuses: keywords from_hugging_face does not take (TypeError); a ModelOpt-quantized
checkpoint converted without its quant_config, and a quant_config that would need calibration on an
unquantized checkpoint (ValueError: use `quantize()`); a non-Llama architecture; no GPU unless load_model_on_cpu.
"""

import json
import os
import time
from typing import Any

from spark_sim_standins.checkpoint_formats import quant_algo, write_trtllm_checkpoint
from spark_sim_standins.gpu import require_gpu, trtllm_version

from ..mapping import Mapping
from .modeling_utils import QuantConfig

CONVERT_SECONDS = 16  # the field report's conversion of the 8B checkpoint, scaled by the GPU's time_scale
_KWARGS = {"load_by_shard", "load_model_on_cpu", "quant_ckpt_path", "use_autoawq", "trust_remote_code"}


class LLaMAForCausalLM:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @classmethod
    def from_hugging_face(
        cls,
        hf_model_or_dir: str,
        dtype: str = "auto",
        mapping: Mapping | None = None,
        quant_config: QuantConfig | None = None,
        **kwargs: Any,
    ) -> "LLaMAForCausalLM":
        unknown = sorted(set(kwargs) - _KWARGS)
        if unknown:
            raise TypeError(f"from_hugging_face() got an unexpected keyword argument '{unknown[0]}'")
        gpu = require_gpu() if not kwargs.get("load_model_on_cpu") else {"time_scale": 0.1}
        with open(os.path.join(hf_model_or_dir, "config.json")) as f:
            hf_config = json.load(f)
        architecture = (hf_config.get("architectures") or ["?"])[0]
        if architecture != "LlamaForCausalLM":
            raise ValueError(f"{hf_model_or_dir} holds a {architecture}, not a LlamaForCausalLM")
        in_checkpoint, kv_in_checkpoint = quant_algo(hf_model_or_dir)
        asked = quant_config.quant_algo.value if quant_config and quant_config.quant_algo else None
        if in_checkpoint and asked != in_checkpoint:
            raise ValueError(
                f"{hf_model_or_dir} is quantized ({in_checkpoint}, hf_quant_config.json) but "
                f"quant_config.quant_algo is {asked}: its weights cannot be loaded as that"
            )
        if asked and not in_checkpoint:
            raise ValueError(f"The quant_config ({asked}) requires calibration, try LLaMAForCausalLM.quantize instead.")
        mapping = mapping or Mapping()
        if dtype == "auto":
            dtype = hf_config.get("torch_dtype", "bfloat16")
        time.sleep(CONVERT_SECONDS * float(gpu["time_scale"]))
        kv = quant_config.kv_cache_quant_algo.value if quant_config and quant_config.kv_cache_quant_algo else None
        return cls(
            {
                "architecture": architecture,
                "dtype": dtype,
                "vocab_size": hf_config.get("vocab_size"),
                "hidden_size": hf_config.get("hidden_size"),
                "num_hidden_layers": hf_config.get("num_hidden_layers"),
                "quantization": {"quant_algo": asked, "kv_cache_quant_algo": kv or kv_in_checkpoint},
                "mapping": mapping.to_dict(),
                "producer": {"name": "tensorrt_llm", "version": trtllm_version()},
            }
        )

    def save_checkpoint(self, output_dir: str, save_config: bool = True) -> None:
        write_trtllm_checkpoint(output_dir, self.config)


__all__ = ["LLaMAForCausalLM"]
