"""The probe, declared once: what spark-state asks a Spark, how the Spark reads it, and the typed answer.

Each section has one name and three aligned entries in this module, in the same order:
    1. its field in `ProbeRequest`  — what the plan asks (None / False: not asked);
    2. its reader in `READERS`      — the function that reads it ON the host (python3 and the standard library);
    3. its field in `Snapshot`      — the pydantic model of its answer, parsed once at `Snapshot.from_output`.
Adding a section is those three entries; a test holds the three lists equal.

On a Spark the part of this file up to its typed answer runs as `python3 -I -S -c SOURCE REQUEST_JSON`
(`probe_command`) and prints one JSON document keyed by section name; sections run side by side (`writer`, when
asked, first and alone: nothing is read before the deploy holds the writer lock), and one that cannot be read is
said by name in `errors`. The models below are never built there (pydantic is not imported on a host: the probe
should start fast). What only a reboot or a package change can change (`gpu`, `host`) is kept on the host
(KeptAsked); the TensorRT-LLM version inside an image is read once per image id and cached in `images.cache_dir`
(HostPlan.trtllm_versions_dir), one file per image id, shared with the helper's trtllm-version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote

TYPE_CHECKING = False  # typing.TYPE_CHECKING as type checkers read it, without importing typing on every probe
ON_HOST = __name__ == "__main__"
if TYPE_CHECKING or not ON_HOST:
    from typing import Any

    from pydantic import BaseModel, ConfigDict, ValidationError
else:  # on a Spark: class statements below need a base, and nothing builds them

    class BaseModel:
        pass

    def ConfigDict(**settings):  # pydantic's name
        return settings


TRTLLM_PROBE = "import importlib.metadata as m; print(m.version('tensorrt_llm'))"
MANIFEST_NAME = ".spark-state.json"  # written into a checkpoint or engine directory once it is complete
# Written into the secrets directory by the helper that created it: spark-state chmods, writes into and cleans only
# a directory that holds it (spark_host.write_private keeps the same name).
OWNED_MARKER = ".spark-state-owned"


# 1. What the plan asks ----------------------------------------------------------------------------------------------
# Frozen and hashable: pyinfra passes the request to its fact as an argument.


class _Asked(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImagesAsked(_Asked):
    refs: tuple[str, ...]
    trtllm: tuple[str, ...] = ()  # images whose TensorRT-LLM version is read from inside them
    cache_dir: str | None = None  # where those versions are cached, by image id
    cached_only: bool = False  # read-only (drift): start no container, write no cache


class UnitsAsked(_Asked):
    directory: str
    prefix: str


class ArtifactsAsked(_Asked):
    root: str
    secrets_dir: str


class HealthAsked(_Asked):
    port: int
    ready_path: str


class KeptAsked(_Asked):
    """A section only a reboot or a package change can change (the GPU and its driver; CUDA, the kernel, the OS
    release and the container toolkit): read once, its answer kept in `directory` under a key of what would
    change it (`kept_key`), read again when the key differs. A kept answer is still a host's answer: it enters
    at Snapshot.from_output like any other."""

    directory: str
    write: bool = True  # off for read-only looks (drift, status): they use a kept answer but keep none


class WriterAsked(_Asked):
    holder: str  # the file beside the writer lock naming who holds it (writer_lock.HOLDER_PATH)
    token: str  # this run's token, written there by its lock program once it holds the lock
    wait_s: float = 3.0


class ProbeRequest(_Asked):
    """The sections one probe gathers; each field is one section (see READERS and Snapshot)."""

    writer: WriterAsked | None = None  # read first, alone: the others only while this run holds the lock
    gpu: KeptAsked | bool = False  # True: read now, keep nothing
    memory: bool = False
    disk: str | None = None  # the path whose file system is measured
    docker: bool = False
    host: KeptAsked | bool = False
    baseline: str | None = None  # the baseline file
    images: ImagesAsked | None = None
    manifests: tuple[str, ...] | None = None  # completion manifests of artifact directories
    engine_builds: tuple[str, ...] | None = None  # each engine's directory of builds
    checkpoint_copies: tuple[str, ...] | None = None  # each checkpoint's directory of downloads
    chat_templates: tuple[str, ...] | None = None  # checkpoint directories
    owners: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None  # permission bits of these paths (the secrets directory)
    download_sizes: tuple[str, ...] | None = None  # images whose download size the registry tells, when absent
    docker_disk: tuple[str, ...] | None = None  # the file system docker keeps images on, when one of these is to pull
    env_files: str | None = None  # the secrets directory: names of the env files kept there
    files: tuple[str, ...] | None = None  # hashes and modes only: these may hold secrets
    units: UnitsAsked | None = None
    rollback: str | None = None  # the rollback directory
    artifacts: ArtifactsAsked | None = None  # everything kept, with sizes (prune)
    listening: bool = False  # TCP ports listening
    containers: str | None = None  # name prefix of our containers
    health: tuple[HealthAsked, ...] | None = None
    secrets_dir: str | None = None  # the secrets directory: whose it is, what it holds, what lies above it
    system_units: tuple[str, ...] | None = None  # units of daemons from packages (earlyoom.service)


ANSWER_MODELS = "\n# 3. The answer, typed"  # where the part a host runs ends


def probe_command(request: ProbeRequest) -> str:
    """The shell command that runs this probe on a host (python3 and the standard library only). The typed answer
    is left out of what is shipped: a host never builds it, and python3 compiles the source at every probe."""
    from spark_state.on_host import program
    from spark_state.plan.quoting import sh_word

    source = program("probe.py")
    shipped = source[: source.index(ANSWER_MODELS)] + "\nmain()\n"
    # -I -S: the standard library only (no site-packages to scan, no PYTHON* variables): faster, and the same
    # on every host whatever is installed there.
    return f"python3 -I -S -c {sh_word(shipped)} {sh_word(request.model_dump_json(exclude_defaults=True))}"


# 2. How a Spark reads each section (runs ON the host) ----------------------------------------------------------------


def run(argv, timeout=120):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)


def read_writer(asked):
    """Whether this run holds the writer lock: its lock program, asked for over another channel at the same time
    as this probe (writer_lock.ask), writes the run's token into the holder file once it holds the lock. Waits
    for it up to `wait_s`; False then (another writer holds the lock, or the lock program is slow to start): the
    deploy settles the lock and probes again."""
    deadline = time.monotonic() + asked.get("wait_s", 3.0)
    while True:
        found = read_json(asked["holder"])
        if isinstance(found, dict) and found.get("token") == asked["token"]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def read_gpu(asked):
    return kept("gpu", asked, gpu_now)


def gpu_now():
    if not shutil.which("nvidia-smi"):
        return None
    rc, out, _ = run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"])
    if rc != 0 or not out.strip():
        return None
    name, cc, driver = [x.strip() for x in out.strip().splitlines()[0].split(",")]
    return {"name": name, "compute_capability": cc, "driver_version": driver}


def read_memory(_):
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0])
    return {"total_gib": values["MemTotal"] / 2**20, "available_gib": values.get("MemAvailable", 0) / 2**20}


def read_disk(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    return {
        "path": path,
        "free_gb": st.f_bavail * st.f_frsize / 1e9,
        "total_gb": st.f_blocks * st.f_frsize / 1e9,
        "device": os.stat(path or "/").st_dev,  # which file system: two paths may share one
    }


def read_docker(_):
    if not shutil.which("docker"):
        return {"present": False}
    hook = shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-ctk")
    try:
        status, info = docker_api("/version")
        running, version, error = status == 200, (info or {}).get("Version"), None if status == 200 else str(info)
    except OSError as exc:
        running, version, error = False, None, str(exc)
    return {"present": True, "running": running, "version": version, "error": error, "nvidia_runtime": bool(hook)}


def read_host(asked):
    return kept("host", asked, host_now)


def host_now():
    """What a DGX OS upgrade changes under the services: CUDA (as nvidia-smi reports it), kernel, OS release and
    the NVIDIA container toolkit. The driver comes with `gpu`, docker's version with `docker`."""
    cuda = None
    if shutil.which("nvidia-smi"):
        rc, out, _ = run(["nvidia-smi"], 30)
        marker = "CUDA Version:"
        if rc == 0 and marker in out:
            cuda = out.split(marker, 1)[1].split()[0].strip("|") or None
    kernel = read_text("/proc/sys/kernel/osrelease")  # what `uname -r` prints
    release = {}
    for line in (read_text("/etc/os-release") or "").splitlines():
        key, _, value = line.partition("=")
        release[key] = value.strip().strip('"')
    toolkit = None
    for tool in ("nvidia-container-toolkit", "nvidia-container-runtime-hook"):
        if shutil.which(tool):  # prints "NVIDIA Container Runtime Hook version 1.17.8" then "commit: ..."
            rc, out, _ = run([tool, "--version"], 30)
            words = out.strip().splitlines()[0].split() if rc == 0 and out.strip() else []
            toolkit = words[-1] if words else None
            break
    return {
        "cuda": cuda,
        "kernel": kernel,
        "os": release.get("PRETTY_NAME") or release.get("VERSION_ID"),
        "container_toolkit": toolkit,
    }


# What a reboot or a package change alters, read in microseconds: the kernel's boot id (new at every boot); the
# kernel release and the loaded NVIDIA module's version (/proc/driver/nvidia/version, absent without one); dpkg's
# database, rewritten by every apt or dpkg run (DGX OS is Ubuntu); the OS release file; and each tool the
# readers run, as PATH finds it (a package upgrade replaces the file: new inode, size or times).
KEPT_KEY_TEXTS = ("/proc/sys/kernel/random/boot_id", "/proc/sys/kernel/osrelease", "/proc/driver/nvidia/version")
KEPT_KEY_FILES = ("/var/lib/dpkg/status", "/etc/os-release")
KEPT_KEY_TOOLS = ("nvidia-smi", "nvidia-container-toolkit", "nvidia-container-runtime-hook", "nvidia-ctk")


@functools.cache  # once per probe: gpu and host both ask
def kept_key():
    def stat(path):
        try:
            st = os.stat(path)
        except (OSError, TypeError):
            return None
        return [path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]

    parts = [read_text(path) for path in KEPT_KEY_TEXTS]
    parts += [stat(path) for path in KEPT_KEY_FILES]
    parts += [stat(shutil.which(tool)) for tool in KEPT_KEY_TOOLS]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def kept(name, asked, read_now):
    """`read_now()`, or the answer kept for `name` under the same key. Only a complete answer (every field read)
    is kept: a tool that failed once is asked again next time."""
    if not isinstance(asked, dict):
        return read_now()
    key = kept_key()
    path = os.path.join(asked["directory"], f"{name}.json")
    found = read_json(path)
    if isinstance(found, dict) and found.get("key") == key and "answer" in found:
        return found["answer"]
    answer = read_now()
    if asked.get("write", True) and isinstance(answer, dict) and None not in answer.values():
        os.makedirs(asked["directory"], mode=0o755, exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        with open(partial, "w") as f:
            json.dump({"key": key, "answer": answer}, f)
        os.replace(partial, path)
    return answer


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def http_get(path, port=None, unix=None, timeout=30):
    """(status, body) of a plain HTTP/1.0 GET — no urllib/http.client import: the probe should start fast."""
    family = socket.AF_UNIX if unix else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(unix or ("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def docker_api(path):
    """(status, JSON) from the Docker Engine API — far cheaper than one docker CLI process per question."""
    target = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not target.startswith("unix://"):
        raise OSError(f"DOCKER_HOST {target} is not a unix socket")
    status, body = http_get(path, unix=target[len("unix://") :])
    return status, (json.loads(body) if body.strip() else None)


def read_images(asked):
    found = {}
    for ref in asked["refs"]:
        try:
            status, info = docker_api(f"/images/{quote(ref, safe='/:@')}/json")
        except OSError:
            status, info = 0, None
        if status != 200:
            found[ref] = None
            continue
        entry = {"id": info["Id"], "digests": info.get("RepoDigests") or [], "trtllm_version": None}
        if ref in asked.get("trtllm", ()):
            entry["trtllm_version"] = trtllm_version(
                ref, info["Id"], asked.get("cache_dir"), asked.get("cached_only", False)
            )
        found[ref] = entry
    return found


def trtllm_version(ref, image_id, cache_dir, cached_only=False):
    cache = os.path.join(cache_dir, image_id.replace(":", "-"))
    try:
        with open(cache) as f:
            return f.read().strip() or None
    except OSError:
        if cached_only:  # a read-only look (drift) starts no container and writes no cache
            return None
    rc, out, _ = run(["docker", "run", "--rm", "--entrypoint", "python3", ref, "-c", TRTLLM_PROBE], 300)
    version = out.strip().splitlines()[-1] if rc == 0 and out.strip() else ""
    os.makedirs(cache_dir, exist_ok=True)
    with open(cache, "w") as f:
        f.write(version)
    return version or None


def read_manifests(paths):
    return {path: artifact(path) for path in paths}


def artifact(manifest_path):
    """The manifest spark-state wrote into an artifact directory, and which of its files are gone or changed."""
    manifest = read_json(manifest_path)
    if manifest is None and os.path.exists(manifest_path):
        raise ValueError(f"{manifest_path} is not JSON: remove it, and the directory is built or fetched again")
    if manifest is None:
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(manifest, dict)
        or not isinstance(files or {}, dict)
        or not all(isinstance(size, int) for size in (files or {}).values())
    ):
        raise ValueError(
            f"{manifest_path} is not a spark-state manifest: remove it, and the directory is built or fetched again"
        )
    base = os.path.dirname(manifest_path)
    missing = []
    for rel, size in sorted((files or {}).items()):
        try:
            if os.path.getsize(os.path.join(base, rel)) != size:
                missing.append(rel)
        except OSError:
            missing.append(rel)
    return {"manifest": manifest, "missing": missing}


def read_engine_builds(directories):
    """engine name → the manifests of its finished builds, oldest first."""
    return {os.path.basename(d): engine_builds(d) for d in directories}


def engine_builds(directory):
    found = []
    if os.path.isdir(directory):
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry, MANIFEST_NAME)
            manifest = read_json(path)
            if isinstance(manifest, dict):
                found.append((os.path.getmtime(path), manifest))
    return [m for _, m in sorted(found, key=lambda pair: pair[0])]


def read_checkpoint_copies(directories):
    """checkpoint name → each finished download: the directory (its revision as written when downloaded), repo,
    revision and commit sha from its manifest."""
    found = {}
    for directory in directories:
        copies = found[os.path.basename(directory)] = []
        for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            manifest = read_json(os.path.join(directory, entry, MANIFEST_NAME))
            if isinstance(manifest, dict):
                copies.append({"dir": entry, **{k: manifest.get(k) for k in ("repo", "revision", "sha")}})
    return found


def read_chat_templates(directories):
    return {d: chat_template(d) for d in directories}


def chat_template(directory):
    if os.path.exists(os.path.join(directory, "chat_template.jinja")):
        return True
    config = read_json(os.path.join(directory, "tokenizer_config.json"))
    if not isinstance(config, dict):
        return None
    return bool(config.get("chat_template"))


def read_owners(paths):
    """path → [uid, gid], or None when it does not exist."""
    found = {}
    for path in paths:
        try:
            st = os.stat(path)
            found[path] = [st.st_uid, st.st_gid]
        except OSError:
            found[path] = None
    return found


def read_modes(paths):
    """path → its permission bits as '0o700', or None when it does not exist."""
    found = {}
    for path in paths:
        try:
            found[path] = oct(os.stat(path).st_mode & 0o777)
        except OSError:
            found[path] = None
    return found


ARCHITECTURES = {"aarch64": "arm64", "x86_64": "amd64"}  # uname -m → the OCI platform architecture


def read_download_sizes(refs):
    """Download sizes of the images in `refs` that are not on the host (those present need no pull)."""
    return {ref: download_size(ref) for ref in absent_images(refs)}


def absent_images(refs):
    """The images in `refs` docker does not have (none when docker does not answer: preflight says so)."""
    absent = []
    for ref in refs:
        try:
            status, _ = docker_api(f"/images/{quote(ref, safe='/:@')}/json")
        except OSError:
            return []
        if status != 200:
            absent.append(ref)
    return absent


def download_size(ref):
    """Bytes a pull of `ref` downloads, from its registry manifest (`docker manifest inspect`, with docker's own
    credentials), for this host's platform: {"bytes": N}, or {"error": why} (e.g. a NIM before `docker login`)."""
    rc, out, err = run(["docker", "manifest", "inspect", ref], 60)
    if rc != 0:
        return {"error": (err or out).strip().splitlines()[-1:][0] if (err or out).strip() else f"exit {rc}"}
    manifest = json.loads(out)
    if "manifests" in manifest:  # a list: the entry for this host's platform, then its own manifest
        arch = ARCHITECTURES.get(os.uname().machine, os.uname().machine)
        entry = next((m for m in manifest["manifests"] if (m.get("platform") or {}).get("architecture") == arch), None)
        if entry is None:
            return {"error": f"no {arch} image in the manifest list"}
        return download_size(ref.split("@")[0].rsplit(":", 1)[0] + "@" + entry["digest"])
    return {"bytes": sum(int(layer.get("size") or 0) for layer in manifest.get("layers") or [])}


def read_docker_disk(refs):
    """Free and total GB where docker keeps images (`docker info`'s DockerRootDir), when one of `refs` is to be
    pulled there (`docker info` is the slowest question the probe asks docker)."""
    if not absent_images(refs):
        return None
    try:
        status, info = docker_api("/info")
    except OSError:
        return None
    return read_disk(info.get("DockerRootDir") or "/var/lib/docker") if status == 200 else None


def read_env_files(directory):
    """Names of the env files in the secrets directory (names only: their contents are secrets)."""
    try:
        return sorted(
            n for n in os.listdir(directory) if n.endswith(".env") and os.path.isfile(os.path.join(directory, n))
        )
    except OSError:
        return []


def read_files(paths):
    return {path: file_info(path) for path in paths}


def file_info(path, with_text=False):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    st = os.stat(path)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "mode": oct(st.st_mode & 0o777),
        "text": data.decode("utf-8", "replace") if with_text and len(data) < 65536 else None,
    }


def read_units(asked):
    directory, prefix = asked["directory"], asked["prefix"]
    names = (
        sorted(n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".service"))
        if os.path.isdir(directory)
        else []
    )
    result = {n: {"file": file_info(os.path.join(directory, n), with_text=True)} for n in names}
    if names:  # both questions at once: each is a systemctl process waiting on systemd
        verbs = {"active": "is-active", "enabled": "is-enabled"}
        asked = side_by_side({field: (run, (["systemctl", verb, *names], 30)) for field, verb in verbs.items()})
        for field, (said, exc) in asked.items():
            if exc is not None:
                raise exc
            for name, state in zip(names, said[1].split(), strict=False):
                result[name][field] = state
    return result


def read_rollback(directory):
    """What a rollback would restore: the units replaced by the last change (with their text), the env files
    kept beside them (hashes only: secrets) and the markers of rollbacks that happened (HostPlan.rollback_dir)."""
    found = {"units": {}, "env_files": {}, "markers": {}}
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(".service"):
            found["units"][name] = file_info(path, with_text=True)
        elif name.endswith(".env"):
            found["env_files"][name] = file_info(path)
        elif name.endswith(".service.json"):
            marker = read_json(path)
            if isinstance(marker, dict):
                found["markers"][name[: -len(".json")]] = marker
    return found


def tree_bytes(path):
    total = 0
    for base, _, names in os.walk(path):
        for entry in names:
            try:
                total += os.lstat(os.path.join(base, entry)).st_size
            except OSError:
                pass
    return total


def read_artifacts(asked):
    """Everything spark-state keeps on the host, with sizes (for `spark-state prune`): engine builds and
    checkpoint downloads (with what their manifests say), env files and kept units, and docker's images."""
    root, secrets_dir = asked["root"], asked["secrets_dir"]
    found = {"engines": [], "checkpoints": [], "files": [], "images": []}
    for kind in ("engines", "checkpoints"):
        base = os.path.join(root, kind)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            builds = os.path.join(base, name)
            for entry in sorted(os.listdir(builds)) if os.path.isdir(builds) else []:
                path = os.path.join(builds, entry)
                if os.path.islink(path) or not os.path.isdir(path):
                    continue
                manifest = read_json(os.path.join(path, MANIFEST_NAME))
                summary = None
                if isinstance(manifest, dict):
                    inputs = manifest.get("inputs") or {}
                    summary = {
                        "fingerprint": manifest.get("fingerprint"),
                        "trtllm_version": manifest.get("trtllm_version"),
                        "image": inputs.get("image") if isinstance(inputs, dict) else None,
                        "repo": manifest.get("repo"),
                        "revision": manifest.get("revision"),
                        "sha": manifest.get("sha"),
                    }
                found[kind].append(
                    {
                        "name": name,
                        "path": path,
                        "bytes": tree_bytes(path),
                        "mtime": os.path.getmtime(path),
                        "manifest": summary,
                    }
                )
    for directory in (secrets_dir, os.path.join(root, "rollback")):
        for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            path = os.path.join(directory, entry)
            if entry.endswith((".env", ".service")) and os.path.isfile(path):
                found["files"].append({"path": path, "bytes": os.path.getsize(path)})
    try:
        status, listing = docker_api("/images/json")
    except OSError:
        status, listing = 0, None
    for image in listing if status == 200 else []:
        found["images"].append(
            {
                "id": image.get("Id"),
                "tags": image.get("RepoTags") or [],
                "digests": image.get("RepoDigests") or [],
                "bytes": image.get("Size") or 0,
            }
        )
    return found


def read_listening(_):
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return sorted(ports)


def read_containers(prefix):
    """Our containers: name → state, image, the host ports they publish and the identity label of the unit
    that started them (plan.IDENTITY_LABEL)."""
    query = quote(json.dumps({"name": [prefix]}))
    try:
        status, listing = docker_api(f"/containers/json?all=1&filters={query}")
    except OSError:
        return {}
    found = {}
    for c in listing if status == 200 else []:
        name = (c.get("Names") or ["/"])[0].lstrip("/")
        published = sorted({p["PublicPort"] for p in c.get("Ports") or [] if p.get("PublicPort")})
        found[name] = {
            "state": c.get("State"),
            "image": c.get("Image"),
            "published": published,
            "identity": (c.get("Labels") or {}).get("spark-state.identity"),
            "status": c.get("Status"),
            "created": c.get("Created"),
            "mounts": sorted({m.get("Source") for m in c.get("Mounts") or [] if m.get("Source")}),
        }
    return found


def read_health(asked):
    """port → what the service answers on its readiness path (trtllm-serve: /health; NIM: /v1/health/ready) and
    on /v1/models; the ports side by side."""
    answers = side_by_side({str(a["port"]): (health, (a["port"], a["ready_path"])) for a in asked})
    for _, exc in answers.values():
        if exc is not None:
            raise exc
    return {port: answer for port, (answer, _) in answers.items()}


def health(port, ready_path):
    result = {}
    for path in (ready_path, "/v1/models"):
        try:
            result[path] = http_get(path, port=port, timeout=3)[0]
        except (OSError, ValueError, IndexError) as exc:
            result[path] = str(exc)[:120] or type(exc).__name__
    return result


def read_secrets_dir(path):
    """Whether spark-state may write its env files into `path`: the directory as the host resolves it (a link
    anywhere on the way shows), whether spark-state made it (its marker), what else it holds (names only), and
    every existing directory above it that anyone may write to."""
    resolved = os.path.realpath(path)
    found = {"path": path, "resolved": resolved, "exists": os.path.isdir(resolved), "owned": False, "mode": None}
    found["foreign"], found["writable_parents"] = [], []
    if found["exists"]:
        found["mode"] = oct(os.stat(resolved).st_mode & 0o777)
        found["owned"] = os.path.isfile(os.path.join(resolved, OWNED_MARKER))
        for name in sorted(os.listdir(resolved)):
            ours = name == OWNED_MARKER or (name.endswith(".env") and os.path.isfile(os.path.join(resolved, name)))
            if not ours and not (name.startswith(".spark-state-") and name.endswith(".tmp")):
                found["foreign"].append(name)
    parent = os.path.dirname(resolved)
    while parent and parent != os.path.dirname(parent):
        if os.path.isdir(parent) and os.stat(parent).st_mode & 0o002:
            found["writable_parents"].append(parent)
        parent = os.path.dirname(parent)
    return found


def read_system_units(names):
    """unit → whether systemd knows it (LoadState "not-found": its package is not installed), and its
    active and enabled states, in one `systemctl show` (it answers for units it does not know too)."""
    rc, out, err = run(["systemctl", "show", "--property=Id,LoadState,ActiveState,UnitFileState", "--", *names], 30)
    if rc != 0:
        raise OSError(f"systemctl show exited {rc}: {err.strip()[:200]}")
    result = {}
    for block, name in zip(out.strip().split("\n\n"), names, strict=False):
        said = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        result[name] = {
            "load": said.get("LoadState") or None,
            "active": said.get("ActiveState") or None,
            "enabled": said.get("UnitFileState") or None,
        }
    return result


READERS = {
    "writer": read_writer,
    "gpu": read_gpu,
    "memory": read_memory,
    "disk": read_disk,
    "docker": read_docker,
    "host": read_host,
    "baseline": read_json,
    "images": read_images,
    "manifests": read_manifests,
    "engine_builds": read_engine_builds,
    "checkpoint_copies": read_checkpoint_copies,
    "chat_templates": read_chat_templates,
    "owners": read_owners,
    "modes": read_modes,
    "download_sizes": read_download_sizes,
    "docker_disk": read_docker_disk,
    "env_files": read_env_files,
    "files": read_files,
    "units": read_units,
    "rollback": read_rollback,
    "artifacts": read_artifacts,
    "listening": read_listening,
    "containers": read_containers,
    "health": read_health,
    "secrets_dir": read_secrets_dir,
    "system_units": read_system_units,
}


def side_by_side(calls):
    """name → (result, None) or (None, the exception), each call `(function, args)` in a thread of its own: they
    wait on docker, systemctl or HTTP, not on the CPU (plain threads: concurrent.futures costs the probe ~5 ms of
    imports at every start)."""
    done = {}

    def call(name, function, args):
        try:
            done[name] = (function(*args), None)
        except Exception as exc:
            done[name] = (None, exc)

    threads = [threading.Thread(target=call, args=(name, f, args)) for name, (f, args) in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: done[name] for name in calls}


def main():
    request = json.loads(sys.argv[1])
    asked = {name: request[name] for name in READERS if request.get(name) not in (None, False)}
    answer, errors = {}, {}
    if "writer" in asked:  # first and alone: nothing is read before this run holds the lock
        answer["writer"] = read_writer(asked.pop("writer"))
        if not answer["writer"]:
            print(json.dumps(answer))
            return
    # Sections run side by side: one probe should cost one round trip, not the sum of its waits.
    for name, (value, exc) in side_by_side({n: (READERS[n], (v,)) for n, v in asked.items()}).items():
        if exc is None:
            answer[name] = value
        else:  # one unreadable section: said by name, not a traceback
            errors[name] = f"{type(exc).__name__}: {exc}"
    if errors:
        answer["errors"] = errors
    print(json.dumps(answer))


# 3. The answer, typed (never built on a host) -------------------------------------------------------------------------

MAX_ANSWER_BYTES = 32 * 2**20  # a probe's answer is kilobytes; a host that sends more is not answering as a probe


class _Fact(BaseModel):
    # No NaN or infinity in a budget; frozen and hashable (a DiskFact keys the disk budget).
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)


class GpuFact(_Fact):
    name: str
    compute_capability: str
    driver_version: str


class MemoryFact(_Fact):
    total_gib: float
    available_gib: float


class DiskFact(_Fact):
    path: str
    free_gb: float
    total_gb: float
    device: int | None = None  # st_dev of the path: paths on one file system share its free space

    def same_file_system(self, other: DiskFact) -> bool:
        return self.path == other.path or (self.device is not None and self.device == other.device)


class DockerFact(_Fact):
    present: bool
    running: bool = False
    version: str | None = None
    error: str | None = None
    nvidia_runtime: bool = False


class HostVersions(_Fact):
    """What a DGX OS upgrade changes under the services (the driver is in GpuFact, docker in DockerFact)."""

    cuda: str | None = None
    kernel: str | None = None
    os: str | None = None
    container_toolkit: str | None = None


class ImageFact(_Fact):
    id: str
    digests: tuple[str, ...] = ()
    trtllm_version: str | None = None


class Manifest(_Fact):
    """A completion manifest spark-state wrote into a checkpoint download or an engine build."""

    kind: str | None = None  # checkpoint, engine
    repo: str | None = None
    revision: str | None = None
    sha: str | None = None
    scope: str | None = None  # checkpoints: full, or tokenizer (its tokenizer files only)
    fingerprint: str | None = None
    trtllm_version: str | None = None
    inputs: dict[str, Any] = {}
    files: dict[str, int] = {}  # relative path → size in bytes


class Artifact(_Fact):
    """A completion manifest, and the files it lists that are gone or changed size."""

    manifest: Manifest
    missing: tuple[str, ...] = ()


class CheckpointCopy(_Fact):
    dir: str  # the directory's name: the revision as it was written when downloaded
    repo: str | None = None
    revision: str | None = None
    sha: str | None = None


class FileFact(_Fact):
    sha256: str
    mode: str  # "0o600"
    text: str | None = None  # units only; never secrets


class UnitFact(_Fact):
    file: FileFact | None = None
    active: str | None = None
    enabled: str | None = None

    @property
    def status(self) -> str:
        return f"{self.enabled or 'absent'}/{self.active or 'absent'}"


class SystemUnitFact(_Fact):
    load: str | None = None  # "loaded"; "not-found" when its package is not installed
    active: str | None = None
    enabled: str | None = None

    @property
    def status(self) -> str:
        if self.load != "loaded":
            return "not installed"
        return f"{self.enabled or 'absent'}/{self.active or 'absent'}"


class RollbackMarker(_Fact):
    """What a deploy wanted, what serves instead, why and when (written by deploy.operations.service_rolled_back)."""

    service: str | None = None
    desired: str | None = None
    desired_identity: str | None = None
    serving: str | None = None
    reason: str | None = None
    at: str | None = None


class RollbackFact(_Fact):
    """What a rollback restores (unit files by name, env files by file name, hashes only) and the rollbacks that
    happened (unit name → marker)."""

    units: dict[str, FileFact | None] = {}
    env_files: dict[str, FileFact | None] = {}
    markers: dict[str, RollbackMarker] = {}


class DownloadSize(_Fact):
    bytes: int | None = None  # what a pull downloads, from the registry manifest
    error: str | None = None  # why it is not known (e.g. a NIM before `docker login`)


class ContainerFact(_Fact):
    state: str | None = None
    image: str | None = None
    published: tuple[int, ...] = ()
    identity: str | None = None
    status: str | None = None  # docker's own words: "Up 2 hours", "Exited (1) 3 minutes ago"
    created: int | None = None  # unix time the container was created (started from its unit)
    mounts: tuple[str, ...] = ()  # host paths mounted into it


class KeptManifest(_Fact):
    fingerprint: str | None = None
    trtllm_version: str | None = None
    image: str | None = None
    repo: str | None = None
    revision: str | None = None
    sha: str | None = None


class KeptDir(_Fact):
    """An engine build or checkpoint download under paths.root, finished (with its manifest) or not."""

    name: str
    path: str
    bytes: int
    mtime: float
    manifest: KeptManifest | None = None


class KeptFile(_Fact):
    path: str
    bytes: int


class LocalImage(_Fact):
    id: str | None = None
    tags: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    bytes: int = 0


class ArtifactsFact(_Fact):
    engines: tuple[KeptDir, ...] = ()
    checkpoints: tuple[KeptDir, ...] = ()
    files: tuple[KeptFile, ...] = ()
    images: tuple[LocalImage, ...] = ()


class SecretsDirFact(_Fact):
    path: str
    resolved: str  # as the host resolves it: another path when a link stands on the way
    exists: bool
    owned: bool  # spark-state created it (OWNED_MARKER inside)
    mode: str | None = None
    foreign: tuple[str, ...] = ()  # entries spark-state does not write there (not an env file, not its marker)
    writable_parents: tuple[str, ...] = ()  # existing directories above it that anyone may write to

    def refusal(self) -> str | None:
        """Why spark-state must not write its env files here (None: it may). A directory it did not create is
        taken over only when nothing else could be using it: 0700, holding env files and nothing else (an older
        spark-state's)."""
        if self.resolved != self.path:
            return f"paths.secrets {self.path} is {self.resolved} on this host (a link on the way): name that"
        if self.writable_parents:
            return (
                f"paths.secrets {self.path} lies under {', '.join(self.writable_parents)}, which anyone on the host "
                "may write to: choose a directory under root-only ones"
            )
        if self.exists and not self.owned and (self.foreign or self.mode != "0o700"):
            held = f" and holds {', '.join(self.foreign[:5])}" if self.foreign else f" (mode {self.mode})"
            return (
                f"paths.secrets {self.path} exists, spark-state did not create it{held}: it is not changed, "
                "chmodded or cleaned; choose a directory of spark-state's own"
            )
        return None


class Snapshot(_Fact):
    """What a host is, one field per section; a section the probe was not asked for is empty (or None)."""

    writer: bool | None = None  # False: not held yet when the probe gave up waiting, and nothing else was read
    gpu: GpuFact | None = None
    memory: MemoryFact | None = None
    disk: DiskFact | None = None
    docker: DockerFact | None = None
    host: HostVersions = HostVersions()
    baseline: Any = None  # the document as the host keeps it; observe.baseline.valid() decides whether it is one
    images: dict[str, ImageFact | None] = {}
    manifests: dict[str, Artifact | None] = {}
    engine_builds: dict[str, tuple[Manifest, ...]] = {}
    checkpoint_copies: dict[str, tuple[CheckpointCopy, ...]] = {}
    chat_templates: dict[str, bool | None] = {}
    owners: dict[str, tuple[int, int] | None] = {}
    modes: dict[str, str | None] = {}
    download_sizes: dict[str, DownloadSize] = {}  # absent image ref → its download
    docker_disk: DiskFact | None = None
    env_files: tuple[str, ...] = ()
    files: dict[str, FileFact | None] = {}
    units: dict[str, UnitFact] = {}
    rollback: RollbackFact = RollbackFact()
    artifacts: ArtifactsFact = ArtifactsFact()
    listening: frozenset[int] = frozenset()
    containers: dict[str, ContainerFact] = {}
    health: dict[int, dict[str, int | str]] = {}
    secrets_dir: SecretsDirFact | None = None
    system_units: dict[str, SystemUnitFact] = {}

    @classmethod
    def from_output(cls, output: str) -> Snapshot:
        """The probe's printed answer as a Snapshot — the one boundary where a host's answer enters. ProbeError
        (naming the sections) when it is not what the probe writes, or when the probe could not read part of
        the host: never another exception, never a NaN or an infinity."""
        from spark_state.errors import ProbeError

        if len(output) > MAX_ANSWER_BYTES:
            raise ProbeError(f"the host's probe answered {len(output)} bytes (at most {MAX_ANSWER_BYTES} expected)")
        try:
            document = json.loads(output, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise ProbeError(f"the host's probe answered something that is not its JSON ({_brief(exc)})") from None
        return cls.parse(document)

    @classmethod
    def parse(cls, document: Any) -> Snapshot:
        """A probe's decoded JSON document as a Snapshot (see from_output)."""
        from spark_state.errors import ProbeError

        if not isinstance(document, dict):
            raise ProbeError(f"the host's probe answered a {type(document).__name__}, not a JSON object")
        errors = document.get("errors")
        if errors:
            said = (
                "; ".join(f"{section}: {why}" for section, why in sorted(errors.items()))
                if isinstance(errors, dict)
                else str(errors)
            )
            raise ProbeError(f"the probe could not read this host: {said}"[:2000])
        try:
            return cls.model_validate({k: v for k, v in document.items() if k != "errors"})
        except (ValidationError, RecursionError, OverflowError) as exc:
            sections = sorted({str(e["loc"][0]) for e in exc.errors()}) if isinstance(exc, ValidationError) else []
            raise ProbeError(
                f"the host's probe answered something unexpected in {', '.join(sections) or 'its answer'} "
                f"({_brief(exc)})"
            ) from None


def manifest_path(directory: str) -> str:
    """Where an artifact directory's completion manifest is."""
    return f"{directory}/{MANIFEST_NAME}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a probe writes")


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


if ON_HOST:
    main()
