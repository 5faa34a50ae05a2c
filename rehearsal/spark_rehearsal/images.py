"""Stand-in serving images, built as real Docker image layers and pushed to the fleet's registry under their
real names (nvcr.io/nvidia/tritonserver:TAG, the NIM image, lmsysorg/sglang on Docker Hub). No docker daemon is
needed to build them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import ssl
import subprocess
import tarfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

from .errors import SimError
from .layout import Layout
from .ngc_auth import registry_for
from .rootfs import PYTHON_SITE
from .standins.trtllm_serve import without_tensorrt_backend

STANDINS_DIR = Path(__file__).parent / "standins"
STANDIN_PACKAGE = "spark_sim_standins"
TRTLLM_PACKAGE = STANDINS_DIR / "tensorrt_llm"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class StandinImage:
    repository: str  # path in its registry
    tag: str
    release: str  # the container release it imitates
    trtllm_version: str | None  # None: a NIM, vLLM or SGLang image
    warns_on_gb10: bool
    vllm_version: str | None = None  # NGC's vLLM containers
    sglang_version: str | None = None  # SGLang's own images
    llamacpp_build: str | None = None  # ggml-org's llama.cpp server images
    registry: str = "nvcr.io"

    @property
    def is_nim(self) -> bool:
        versions = (self.trtllm_version, self.vllm_version, self.sglang_version, self.llamacpp_build)
        return all(v is None for v in versions)

    @property
    def ref(self) -> str:
        """As a state names it (Docker Hub's images without their registry, as docker reads them)."""
        registry = "" if self.registry == "docker.io" else f"{self.registry}/"
        return f"{registry}{self.repository}:{self.tag}"

    @property
    def backend_repository(self) -> str:
        return registry_for(self.registry).backend_prefix + self.repository


IMAGES = (
    StandinImage("nvidia/tritonserver", "25.01-trtllm-python-py3", "25.01", "0.17.0.post1", True),
    StandinImage("nvidia/tritonserver", "25.12-trtllm-python-py3", "25.12", "1.1.0", False),
    StandinImage("nvidia/tritonserver", "26.03-trtllm-python-py3", "26.03", "1.2.0", False),
    # NGC's TensorRT-LLM release image (the dgx-spark-playbooks serve from `tensorrt-llm/release:1.3.0rcN`), after
    # upstream removed the TensorRT backend: no trtllm-build, trtllm-serve serves checkpoints only.
    StandinImage("nvidia/tensorrt-llm/release", "1.3.0rc23", "1.3.0rc23", "1.3.0rc23", False),
    StandinImage("nim/meta/llama-3.1-8b-instruct-dgx-spark", "latest", "1.14.0", None, False),
    # NGC's vLLM container as the dgx-spark-playbooks serve from it (release notes: 26.05 ships vLLM 0.20.1).
    StandinImage("nvidia/vllm", "26.05-py3", "26.05", None, False, vllm_version="0.20.1"),
    # SGLang's own CUDA 13 image on Docker Hub (the dgx-spark-playbooks use lmsysorg/sglang:latest-cu130; a
    # versioned tag tells which flags it takes).
    StandinImage(
        "lmsysorg/sglang", "v0.5.23-cu130", "0.5.23", None, False, sglang_version="0.5.23", registry="docker.io"
    ),
    # ggml-org's llama.cpp server image (.devops/cuda.Dockerfile, target server), tagged by build.
    StandinImage(
        "ggml-org/llama.cpp", "server-cuda-b11312", "b11312", None, False, llamacpp_build="b11312", registry="ghcr.io"
    ),
)
LLAMA_SERVER = "app/llama-server"
# The flags each vLLM, SGLang and llama.cpp takes, as read from its source (spark-state checks options against them).
FLAG_LISTS = resources.files("spark_state.stacks").joinpath("data")


ENTRYPOINT = """#!/bin/sh
# Stand-in for NVIDIA's container entrypoint: the banner, and the GPU warning the field report learned to trust.
cat <<'EOF'

=============================
== {title} ==
=============================

NVIDIA Release {release} (spark-state rehearsal stand-in)

EOF
if [ -f /etc/spark-sim/gpu.json ]; then
  if [ "{warns}" = yes ] && grep -q '"NVIDIA GB10"' /etc/spark-sim/gpu.json; then
    echo "WARNING: Detected NVIDIA GB10 GPU, which may not yet be supported in this version of the container"
  fi
else
  echo "WARNING: The NVIDIA Driver was not detected.  GPU functionality will not be available."
  echo "   Use the NVIDIA Container Toolkit to start this container with GPU support; see"
  echo "   https://docs.nvidia.com/datacenter/cloud-native/ ."
fi
exec "$@"
"""

PY_WRAPPER = "#!/usr/bin/python3\nimport sys\nfrom {package}.{module} import main\nsys.exit(main(sys.argv[1:]))\n"


@dataclass(frozen=True)
class Layer:
    digest: str  # of the gzip blob
    diff_id: str  # of the uncompressed tar
    size: int
    path: Path


def standin_files(image: StandinImage) -> dict[str, tuple[bytes, int]]:
    """path in image → (content, mode) for the stand-in layer of `image`."""
    files: dict[str, tuple[bytes, int]] = {}
    for source in sorted([*STANDINS_DIR.glob("*.py"), *STANDINS_DIR.glob("*.json")]):
        files[f"{PYTHON_SITE}/{STANDIN_PACKAGE}/{source.name}"] = (source.read_bytes(), 0o644)
    title = "NVIDIA NIM"
    if image.sglang_version:
        title = "CUDA"  # SGLang's images are built on NVIDIA's CUDA images, whose entrypoint prints this banner
    elif image.vllm_version:
        title = "vLLM"
    elif image.trtllm_version:
        title = "TensorRT-LLM" if image.repository.endswith("/release") else "Triton Inference Server"
    entry = ENTRYPOINT.format(title=title, release=image.release, warns="yes" if image.warns_on_gb10 else "no")
    files["opt/nvidia/nvidia_entrypoint.sh"] = (entry.encode(), 0o755)
    if image.trtllm_version:
        v = image.trtllm_version
        # TensorRT-LLM's library with only the conversion API, and no examples/ directory: the real Triton
        # images ship the wheel, not TensorRT-LLM's source tree, so spark-state ships its own converter.
        for source in sorted(TRTLLM_PACKAGE.rglob("*.py")):
            files[f"{PYTHON_SITE}/tensorrt_llm/{source.relative_to(TRTLLM_PACKAGE)}"] = (source.read_bytes(), 0o644)
        files[f"{PYTHON_SITE}/tensorrt_llm/__init__.py"] = (
            f'"""TensorRT-LLM (rehearsal stand-in)."""\n__version__ = "{v}"\n'.encode(),
            0o644,
        )
        files[f"{PYTHON_SITE}/tensorrt_llm-{v}.dist-info/METADATA"] = (
            f"Metadata-Version: 2.1\nName: tensorrt_llm\nVersion: {v}\n".encode(),
            0o644,
        )
        files[f"{PYTHON_SITE}/tensorrt_llm-{v}.dist-info/INSTALLER"] = (b"pip\n", 0o644)
        # trtllm-build went with the TensorRT backend (its pyproject's console_scripts keep trtllm-serve)
        commands = [("trtllm-serve", "trtllm_serve")]
        if not without_tensorrt_backend(v):
            commands.append(("trtllm-build", "trtllm_build"))
        for command, module in commands:
            files[f"usr/local/bin/{command}"] = (
                PY_WRAPPER.format(package=STANDIN_PACKAGE, module=module).encode(),
                0o755,
            )
    elif image.vllm_version:
        v = image.vllm_version
        flags = FLAG_LISTS.joinpath(f"vllm-{v}.json").read_bytes()
        files[f"{PYTHON_SITE}/{STANDIN_PACKAGE}/vllm_flags.json"] = (flags, 0o644)
        files[f"{PYTHON_SITE}/vllm-{v}.dist-info/METADATA"] = (
            f"Metadata-Version: 2.1\nName: vllm\nVersion: {v}\n".encode(),
            0o644,
        )
        files["usr/local/bin/vllm"] = (PY_WRAPPER.format(package=STANDIN_PACKAGE, module="vllm_serve").encode(), 0o755)
    elif image.llamacpp_build:
        flags = FLAG_LISTS.joinpath(f"llama.cpp-{image.llamacpp_build}.json").read_bytes()
        files[f"{PYTHON_SITE}/{STANDIN_PACKAGE}/llama_server_flags.json"] = (flags, 0o644)
        files[LLAMA_SERVER] = (PY_WRAPPER.format(package=STANDIN_PACKAGE, module="llama_server").encode(), 0o755)
        # The real server image is CUDA's runtime image with llama.cpp's binaries: no Python, so nothing in it can
        # download a checkpoint. The stand-in needs an interpreter; the Hugging Face client is taken out (OCI
        # whiteouts), so a download attempted in it fails as it would on the real image.
        files[f"{PYTHON_SITE}/.wh.huggingface_hub"] = (b"", 0o644)
        files["usr/local/bin/.wh.hf"] = (b"", 0o755)
        del files["opt/nvidia/nvidia_entrypoint.sh"]
    elif image.sglang_version:
        v = image.sglang_version
        flags = FLAG_LISTS.joinpath(f"sglang-{v}.json").read_bytes()
        files[f"{PYTHON_SITE}/{STANDIN_PACKAGE}/sglang_flags.json"] = (flags, 0o644)
        files[f"{PYTHON_SITE}/sglang-{v}.dist-info/METADATA"] = (
            f"Metadata-Version: 2.1\nName: sglang\nVersion: {v}\n".encode(),
            0o644,
        )
        files[f"{PYTHON_SITE}/sglang/__init__.py"] = (f'__version__ = "{v}"\n'.encode(), 0o644)
        # `python3 -m sglang.launch_server`, as the playbooks start it
        files[f"{PYTHON_SITE}/sglang/launch_server.py"] = (
            PY_WRAPPER.format(package=STANDIN_PACKAGE, module="sglang_serve").encode(),
            0o644,
        )
    else:
        files["opt/nim/start_server.sh"] = (
            PY_WRAPPER.format(package=STANDIN_PACKAGE, module="nim_server").encode(),
            0o755,
        )
    return files


def image_config(image: StandinImage, diff_ids: list[str], note: str = "") -> bytes:
    env = [PATH_ENV, f"NVIDIA_PRODUCT_RELEASE={image.release}"]
    cmd: list[str] = ["/opt/nim/start_server.sh"] if image.is_nim else ["/bin/bash"]
    entrypoint = ["/opt/nvidia/nvidia_entrypoint.sh"]
    if image.llamacpp_build:  # .devops/cuda.Dockerfile, target server
        env, cmd, entrypoint = [PATH_ENV, "LLAMA_ARG_HOST=0.0.0.0"], [], [f"/{LLAMA_SERVER}"]
    if image.trtllm_version:
        env.append(f"TRTLLM_VERSION={image.trtllm_version}")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": env,
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "WorkingDir": "/",
            # NIM containers run as UID 1000 (NIM docs: the cache volume must be writable by it)
            **({"User": "1000"} if image.is_nim else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created_by": "spark-rehearsal: debian bookworm base"},
            {"created_by": f"stand-ins for {image.ref}{note}"},
        ],
    }
    return json.dumps(config, sort_keys=True).encode()


def _layer_from_tar_bytes(tar_bytes: bytes, cache: Path) -> Layer:
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    blob = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    path = cache / f"{digest.split(':')[1]}.tar.gz"
    if not path.exists():
        path.write_bytes(blob)
    return Layer(digest, diff_id, len(blob), path)


def standin_layer(image: StandinImage, cache: Path) -> Layer:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path, (content, mode) in sorted(standin_files(image).items()):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return _layer_from_tar_bytes(buf.getvalue(), cache)


def base_layer(rootfs: Path, cache: Path) -> Layer:
    """The Debian base layer, cached by the rootfs it was made from."""
    record = cache / f"base-{rootfs.name}.json"
    if record.exists():
        data = json.loads(record.read_text())
        layer = Layer(data["digest"], data["diff_id"], data["size"], Path(data["path"]))
        if layer.path.exists():
            return layer
    tar = subprocess.run(
        [
            "tar",
            "--numeric-owner",
            "--sort=name",
            "--mtime=@0",
            "-C",
            str(rootfs),
            "-cf",
            "-",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "--exclude=./.complete",
            ".",
        ],
        capture_output=True,
        check=False,
    )
    if tar.returncode != 0:
        raise SimError(f"tar of {rootfs} failed: {tar.stderr.decode()[-500:]}")
    layer = _layer_from_tar_bytes(tar.stdout, cache)
    record.write_text(
        json.dumps({"digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size, "path": str(layer.path)})
    )
    return layer


class RegistryClient:
    """Just enough of the Docker Registry HTTP API v2 to push an image."""

    def __init__(self, base_url: str, ca_file: Path) -> None:
        self.http = httpx.Client(base_url=base_url, verify=ssl.create_default_context(cafile=str(ca_file)), timeout=120)

    def close(self) -> None:
        self.http.close()

    def _push_blob(self, repository: str, digest: str, data: bytes) -> None:
        if self.http.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
            return
        start = self.http.post(f"/v2/{repository}/blobs/uploads/")
        if start.status_code != 202:
            raise SimError(f"registry refused an upload to {repository}: {start.status_code} {start.text[:200]}")
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = self.http.put(
            f"{location}{sep}digest={digest}", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        if done.status_code != 201:
            raise SimError(f"registry refused blob {digest} for {repository}: {done.status_code} {done.text[:200]}")

    def push(self, repository: str, tag: str, layers: list[Layer], config: bytes) -> str:
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        for layer in layers:
            self._push_blob(repository, layer.digest, layer.path.read_bytes())
        self._push_blob(repository, config_digest, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": config_digest},
                "layers": [{"mediaType": LAYER_TYPE, "size": layer.size, "digest": layer.digest} for layer in layers],
            }
        ).encode()
        r = self.http.put(
            f"/v2/{repository}/manifests/{tag}", content=manifest, headers={"Content-Type": MANIFEST_TYPE}
        )
        if r.status_code != 201:
            raise SimError(f"registry refused manifest {repository}:{tag}: {r.status_code} {r.text[:200]}")
        return "sha256:" + hashlib.sha256(manifest).hexdigest()


def publish_images(layout: Layout, rootfs: Path, registry_url: str, ca_file: Path, log=print) -> dict[str, str]:
    """Build (cached) and push every stand-in image; returns ref → manifest digest."""
    cache = layout.cache / "layers"
    cache.mkdir(parents=True, exist_ok=True)
    base = base_layer(rootfs, cache)
    client = RegistryClient(registry_url, ca_file)
    digests: dict[str, str] = {}
    try:
        for image in IMAGES:
            layer = standin_layer(image, cache)
            config = image_config(image, [base.diff_id, layer.diff_id])
            digests[image.ref] = client.push(image.backend_repository, image.tag, [base, layer], config)
    finally:
        client.close()
    log(f"registry holds {len(digests)} stand-in images")
    return digests


def repush(layout: Layout, rootfs: Path, registry_url: str, ca_file: Path, ref: str) -> str:
    """Push new bits under an existing tag, as a vendor re-pushing a tag does (same stand-ins, another config, so
    another manifest digest); returns the new digest."""
    image = next((i for i in IMAGES if i.ref == ref), None)
    if image is None:
        raise SimError(f"{ref} is not a rehearsal image (known: {', '.join(i.ref for i in IMAGES)})")
    cache = layout.cache / "layers"
    base, layer = base_layer(rootfs, cache), standin_layer(image, cache)
    config = image_config(image, [base.diff_id, layer.diff_id], note=f", re-pushed at {time.time():.0f}")
    client = RegistryClient(registry_url, ca_file)
    try:
        return client.push(image.backend_repository, image.tag, [base, layer], config)
    finally:
        client.close()
