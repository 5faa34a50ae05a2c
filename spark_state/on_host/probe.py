"""Runs ON a Spark (python3, stdlib only), as one SSH command: everything spark-state needs to know about the
host, as one JSON document. A spec (JSON, argv[1]) says which sections to gather.

Sections: gpu, memory, disk, docker, host, baseline, images, manifests, engine_dirs, checkpoint_dirs, chat_templates,
files, units,
rollback, artifacts, ports, health, containers.
The TensorRT-LLM version inside an image is probed once per image id and cached in the spec's `trtllm_cache`
directory (HostPlan.trtllm_versions_dir), one file per image id, shared with the helper's trtllm-version.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

TRTLLM_PROBE = "import importlib.metadata as m; print(m.version('tensorrt_llm'))"


def run(argv, timeout=120):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)


def gpu():
    if not shutil.which("nvidia-smi"):
        return None
    rc, out, _ = run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"])
    if rc != 0 or not out.strip():
        return None
    name, cc, driver = [x.strip() for x in out.strip().splitlines()[0].split(",")]
    return {"name": name, "compute_capability": cc, "driver_version": driver}


def host_versions():
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


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def memory():
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0])
    return {"total_gib": values["MemTotal"] / 2**20, "available_gib": values.get("MemAvailable", 0) / 2**20}


def disk(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    return {
        "path": path,
        "free_gb": st.f_bavail * st.f_frsize / 1e9,
        "total_gb": st.f_blocks * st.f_frsize / 1e9,
        "device": os.stat(path or "/").st_dev,
    }  # which file system: two paths may share one


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


def docker():
    if not shutil.which("docker"):
        return {"present": False}
    hook = shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-ctk")
    try:
        status, info = docker_api("/version")
        running, version, error = status == 200, (info or {}).get("Version"), None if status == 200 else str(info)
    except OSError as exc:
        running, version, error = False, None, str(exc)
    return {"present": True, "running": running, "version": version, "error": error, "nvidia_runtime": bool(hook)}


def images(refs, probe, cache_dir, cached_only=False):
    found = {}
    for ref in refs:
        try:
            status, info = docker_api(f"/images/{quote(ref, safe='/:@')}/json")
        except OSError:
            status, info = 0, None
        if status != 200:
            found[ref] = None
            continue
        entry = {"id": info["Id"], "digests": info.get("RepoDigests") or [], "trtllm_version": None}
        if ref in probe:
            entry["trtllm_version"] = trtllm_version(ref, info["Id"], cache_dir, cached_only)
        found[ref] = entry
    return found


ARCHITECTURES = {"aarch64": "arm64", "x86_64": "amd64"}  # uname -m → the OCI platform architecture


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


def download_sizes(refs):
    """Download sizes of the images in `refs` that are not on the host (those present need no pull)."""
    absent = []
    for ref in refs:
        try:
            status, _ = docker_api(f"/images/{quote(ref, safe='/:@')}/json")
        except OSError:
            return {}  # docker down: preflight says so; nothing is pulled
        if status != 200:
            absent.append(ref)
    return {ref: download_size(ref) for ref in absent}


def docker_root_disk():
    """Free and total GB where docker keeps images (`docker info`'s DockerRootDir)."""
    try:
        status, info = docker_api("/info")
    except OSError:
        return None
    return disk(info.get("DockerRootDir") or "/var/lib/docker") if status == 200 else None


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


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


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


def engine_builds(directory):
    """Manifests of every finished build of one engine, oldest first."""
    found = []
    if os.path.isdir(directory):
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry, ".spark-state.json")
            manifest = read_json(path)
            if manifest is not None:
                found.append((os.path.getmtime(path), manifest))
    return [m for _, m in sorted(found, key=lambda pair: pair[0])]


def checkpoint_copies(directory):
    """Each finished download of one checkpoint: the directory (its revision as written when downloaded), repo,
    revision and commit sha from its manifest."""
    found = []
    for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        manifest = read_json(os.path.join(directory, entry, ".spark-state.json"))
        if isinstance(manifest, dict):
            found.append({"dir": entry, **{k: manifest.get(k) for k in ("repo", "revision", "sha")}})
    return found


def chat_template(directory):
    if os.path.exists(os.path.join(directory, "chat_template.jinja")):
        return True
    config = read_json(os.path.join(directory, "tokenizer_config.json"))
    if config is None:
        return None
    return bool(config.get("chat_template"))


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


def owner(path):
    """[uid, gid] of a path, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_uid, st.st_gid]


def mode(path):
    """A path's permission bits as '0o700', or None when it does not exist."""
    try:
        return oct(os.stat(path).st_mode & 0o777)
    except OSError:
        return None


def env_files(directory):
    """Names of the env files in the secrets directory (names only: their contents are secrets)."""
    try:
        return sorted(
            n for n in os.listdir(directory) if n.endswith(".env") and os.path.isfile(os.path.join(directory, n))
        )
    except OSError:
        return []


def units(directory, prefix):
    names = (
        sorted(n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".service"))
        if os.path.isdir(directory)
        else []
    )
    result = {n: {"file": file_info(os.path.join(directory, n), with_text=True)} for n in names}
    if names:
        for field, verb in (("active", "is-active"), ("enabled", "is-enabled")):
            _, out, _ = run(["systemctl", verb, *names], 30)
            for name, state in zip(names, out.split(), strict=False):
                result[name][field] = state
    return result


def rollback(directory):
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
            found["markers"][name[: -len(".json")]] = read_json(path)
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


def artifacts(root, secrets_dir):
    """Everything spark-state keeps on the host, with sizes (for `spark-state prune`): engine builds and
    checkpoint downloads (with what their manifests say), env files and kept units, and docker's images."""
    found = {"engines": [], "checkpoints": [], "files": [], "images": []}
    for kind in ("engines", "checkpoints"):
        base = os.path.join(root, kind)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            for entry in (
                sorted(os.listdir(os.path.join(base, name))) if os.path.isdir(os.path.join(base, name)) else []
            ):
                path = os.path.join(base, name, entry)
                if os.path.islink(path) or not os.path.isdir(path):
                    continue
                manifest = read_json(os.path.join(path, ".spark-state.json"))
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


def listening_ports():
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
    return ports


def containers(prefix):
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


def health(port, ready_path="/health"):
    """What the service answers on its readiness path (trtllm-serve: /health; NIM: /v1/health/ready)."""
    result = {}
    for path in (ready_path, "/v1/models"):
        try:
            result[path] = http_get(path, port=port, timeout=3)[0]
        except (OSError, ValueError, IndexError) as exc:
            result[path] = str(exc)[:120] or type(exc).__name__
    return result


def main():
    spec = json.loads(sys.argv[1])
    # Sections that wait on docker, systemctl or HTTP run side by side: one probe should cost one round trip.
    jobs = {}
    if spec.get("gpu"):
        jobs["gpu"] = (gpu,)
    if spec.get("memory"):
        jobs["memory"] = (memory,)
    if spec.get("disk"):
        jobs["disk"] = (disk, spec["disk"])
    if spec.get("docker"):
        jobs["docker"] = (docker,)
    if spec.get("host"):
        jobs["host"] = (host_versions,)
    if spec.get("baseline"):
        jobs["baseline"] = (read_json, spec["baseline"])
    if spec.get("images") is not None:
        jobs["images"] = (
            images,
            spec["images"],
            set(spec.get("probe") or []),
            spec.get("trtllm_cache"),
            bool(spec.get("read_only")),
        )
    if spec.get("manifests") is not None:
        jobs["manifests"] = (lambda paths: {p: artifact(p) for p in paths}, spec["manifests"])
    if spec.get("engine_dirs") is not None:
        jobs["engine_builds"] = (
            lambda dirs: {os.path.basename(d): engine_builds(d) for d in dirs},
            spec["engine_dirs"],
        )
    if spec.get("checkpoint_dirs") is not None:
        jobs["checkpoint_copies"] = (
            lambda dirs: {os.path.basename(d): checkpoint_copies(d) for d in dirs},
            spec["checkpoint_dirs"],
        )
    if spec.get("chat_templates") is not None:
        jobs["chat_templates"] = (lambda dirs: {d: chat_template(d) for d in dirs}, spec["chat_templates"])
    if spec.get("owners") is not None:
        jobs["owners"] = (lambda paths: {p: owner(p) for p in paths}, spec["owners"])
    if spec.get("download_sizes"):
        jobs["download_sizes"] = (download_sizes, spec["download_sizes"])
        jobs["docker_disk"] = (docker_root_disk,)
    if spec.get("modes") is not None:
        jobs["modes"] = (lambda paths: {p: mode(p) for p in paths}, spec["modes"])
    if spec.get("env_files_dir"):
        jobs["env_files"] = (env_files, spec["env_files_dir"])
    if spec.get("files") is not None:  # hashes only: these may hold secrets
        jobs["files"] = (lambda paths: {p: file_info(p) for p in paths}, spec["files"])
    if spec.get("units_dir"):
        jobs["units"] = (units, spec["units_dir"], spec["units_prefix"])
    if spec.get("artifacts"):
        jobs["artifacts"] = (artifacts, spec["artifacts"][0], spec["artifacts"][1])
    if spec.get("rollback_dir"):
        jobs["rollback"] = (rollback, spec["rollback_dir"])
    if spec.get("ports"):
        jobs["listening"] = (lambda: sorted(listening_ports()),)
    if spec.get("containers"):
        jobs["containers"] = (containers, spec["containers"])
    for port, ready_path in spec.get("health") or []:
        jobs[f"health:{port}"] = (health, port, ready_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {key: pool.submit(job[0], *job[1:]) for key, job in jobs.items()}
        results, errors = {}, {}
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except Exception as exc:  # one unreadable section: said by name, not a traceback
                errors[key.split(":", 1)[0]] = f"{type(exc).__name__}: {exc}"
    out = {key: value for key, value in results.items() if not key.startswith("health:")}
    if spec.get("health") is not None:
        out["health"] = {key.split(":", 1)[1]: value for key, value in results.items() if key.startswith("health:")}
    if errors:
        out["errors"] = errors
    print(json.dumps(out))


if __name__ == "__main__":
    main()
