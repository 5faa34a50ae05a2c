"""Stand-in for `tensorrt_llm.models.modeling_utils.QuantConfig` (TensorRT-LLM 1.1): the dataclass and its
fields; anything else is refused as a dataclass refuses it (TypeError)."""

from dataclasses import dataclass, field

from ..quantization import QuantAlgo


@dataclass
class QuantConfig:
    quant_algo: QuantAlgo | None = None
    kv_cache_quant_algo: QuantAlgo | None = None
    group_size: int = 128
    smoothquant_val: float = 0.5
    clamp_val: list[float] | None = None
    use_meta_recipe: bool = False
    has_zero_point: bool = False
    pre_quant_scale: bool = False
    exclude_modules: list[str] | None = field(default=None)
