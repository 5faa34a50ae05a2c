"""Stand-in for `tensorrt_llm.mapping` (TensorRT-LLM 1.1, tensorrt_llm/mapping.py): `Mapping` with the
arguments a one-GPU converter passes. The real class takes more keywords (attention/MoE parallelism); the
stand-in refuses those, the stricter reading, and checks world_size as the real one does."""


class Mapping:
    def __init__(
        self,
        world_size: int = 1,
        rank: int = 0,
        gpus_per_node: int = 8,
        *,
        cp_size: int = 1,
        tp_size: int = 1,
        pp_size: int = 1,
        moe_tp_size: int = -1,
        moe_ep_size: int = -1,
    ) -> None:
        if world_size != tp_size * pp_size * cp_size:
            raise ValueError(
                f"world_size must equal to tp_size * pp_size * cp_size, but got {world_size} != "
                f"{tp_size} * {pp_size} * {cp_size}"
            )
        self.world_size, self.rank, self.gpus_per_node = world_size, rank, gpus_per_node
        self.tp_size, self.pp_size, self.cp_size = tp_size, pp_size, cp_size
        self.moe_tp_size, self.moe_ep_size = moe_tp_size, moe_ep_size

    def to_dict(self) -> dict:
        return {
            "world_size": self.world_size,
            "tp_size": self.tp_size,
            "pp_size": self.pp_size,
            "cp_size": self.cp_size,
        }
