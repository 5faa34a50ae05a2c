"""Stand-in for `tensorrt_llm.models.modeling_utils.QuantConfig` (TensorRT-LLM 1.1): the dataclass and its
fields; anything else is refused as a dataclass refuses it (TypeError)."""

from dataclasses import dataclass, field
from typing import List, Optional

from ..quantization import QuantAlgo


@dataclass
class QuantConfig:
    quant_algo: Optional[QuantAlgo] = None
    kv_cache_quant_algo: Optional[QuantAlgo] = None
    group_size: int = 128
    smoothquant_val: float = 0.5
    clamp_val: Optional[List[float]] = None
    use_meta_recipe: bool = False
    has_zero_point: bool = False
    pre_quant_scale: bool = False
    exclude_modules: Optional[List[str]] = field(default=None)
