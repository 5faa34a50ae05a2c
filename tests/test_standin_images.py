"""The stand-in images' TensorRT-LLM, tried without the fleet: its files as the image carries them, the shipped
converter run against them on a rehearsal checkpoint, and what they refuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from spark_rehearsal import hub
from spark_rehearsal.images import IMAGES, standin_files
from spark_rehearsal.rootfs import PYTHON_SITE

CONVERTER = REPO / "spark_state" / "on_host" / "convert_checkpoint.py"
TRITON_2512 = next(i for i in IMAGES if i.tag.startswith("25.12"))


def test_no_image_carries_tensorrt_llms_examples() -> None:
    for image in IMAGES:
        assert not [path for path in standin_files(image) if "examples" in path], image.ref


def _image_site(tmp_path: Path) -> Path:
    """The 25.12 stand-in layer's Python packages and the stand-ins' GPU file, unpacked under tmp_path."""
    for path, (content, _mode) in standin_files(TRITON_2512).items():
        if path.startswith(PYTHON_SITE):
            target = tmp_path / "site" / path[len(PYTHON_SITE) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    (tmp_path / "gpu.json").write_text(json.dumps({"name": "NVIDIA GB10", "time_scale": 0.001}))
    return tmp_path / "site"


def _checkpoint(tmp_path: Path, quant: str) -> Path:
    directory = tmp_path / f"ckpt-{quant}"
    directory.mkdir()
    for name, content in hub._repo_files(quant, "main").items():
        (directory / name).write_bytes(content)
    return directory


def _run(tmp_path: Path, site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(site), "SPARK_SIM_GPU_FILE": str(tmp_path / "gpu.json"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-S", *argv], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(("quant", "kv"), [("NVFP4", "FP8"), ("FP8", None)])
def test_the_shipped_converter_converts_a_modelopt_export_through_the_library(
    tmp_path: Path, quant: str, kv: str | None
) -> None:
    site, ckpt = _image_site(tmp_path), _checkpoint(tmp_path, quant)
    out = tmp_path / "trtllm-ckpt"
    proc = _run(
        tmp_path, site, str(CONVERTER), "--model_dir", str(ckpt), "--output_dir", str(out), "--dtype", "bfloat16"
    )
    assert proc.returncode == 0, proc.stderr
    assert "[TensorRT-LLM] TensorRT-LLM version: 1.1.0" in proc.stdout and "Total time of converting" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"] == {"quant_algo": quant, "kv_cache_quant_algo": kv}
    assert config["dtype"] == "bfloat16" and config["producer"]["version"] == "1.1.0"
    assert (out / "rank0.safetensors").exists()


def test_the_converter_refuses_an_architecture_it_does_not_know(tmp_path: Path) -> None:
    site, ckpt = _image_site(tmp_path), _checkpoint(tmp_path, "FP8")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "architectures": ["Qwen2ForCausalLM"]}))
    proc = _run(tmp_path, site, str(CONVERTER), "--model_dir", str(ckpt), "--output_dir", str(tmp_path / "o"))
    assert proc.returncode != 0 and "holds a Qwen2ForCausalLM" in proc.stderr and "convert_script" in proc.stderr


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        (
            "from tensorrt_llm.models import LLaMAForCausalLM as L; L.from_hugging_face(CKPT, use_fp8_rowwise=True)",
            "unexpected keyword argument 'use_fp8_rowwise'",
        ),
        ("from tensorrt_llm.models import LLaMAForCausalLM as L; L.from_hugging_face(CKPT)", "is quantized (FP8"),
        ("from tensorrt_llm.models import GPTForCausalLM", "ImportError"),
        ("from tensorrt_llm.quantization import QuantAlgo; QuantAlgo('FP4')", "'FP4' is not a valid QuantAlgo"),
        ("from tensorrt_llm.mapping import Mapping; Mapping(world_size=2)", "world_size must equal to tp_size"),
        ("from tensorrt_llm.models.modeling_utils import QuantConfig; QuantConfig(algo='FP8')", "unexpected keyword"),
    ],
)
def test_the_stand_in_library_refuses_what_it_does_not_take(tmp_path: Path, code: str, refusal: str) -> None:
    site, ckpt = _image_site(tmp_path), _checkpoint(tmp_path, "FP8")
    proc = _run(tmp_path, site, "-c", code.replace("CKPT", repr(str(ckpt))))
    assert proc.returncode != 0 and refusal in proc.stderr, proc.stderr
