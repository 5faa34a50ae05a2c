"""Debian root filesystems for simulated hosts and stand-in images, built once with debootstrap and cached."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import SimError
from .layout import Layout

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PYTHON_SITE = "usr/local/lib/python3.11/dist-packages"  # bookworm's python3 is 3.11
HF_REQUIREMENT = "huggingface_hub>=1.0"
# DGX OS's first-boot setup creates the operator's account (UID 1000, in sudo); the field report works as nvidia.
OPERATOR = "nvidia"
OPERATOR_UID = 1000

PACKAGES = {
    # A Spark as far as the product can tell: systemd as PID 1, sshd, docker, sudo, python3 for pyinfra facts.
    "host": [
        "systemd",
        "systemd-sysv",
        "dbus",
        "openssh-server",
        "python3",
        "iproute2",
        "procps",
        "curl",
        "ca-certificates",
        "docker.io",
        "kmod",
        "sudo",
    ],
    # What the stand-in NVIDIA images are built on.
    # PyYAML: trtllm-serve reads its --extra_llm_api_options file with yaml.safe_load, as the real images do.
    "image": ["python3", "python3-yaml", "procps", "ca-certificates"],
}

HF_WRAPPER = """#!/usr/bin/python3
# The real Hugging Face CLI, installed by the rehearsal fleet.
import sys
from huggingface_hub.cli.hf import main
sys.exit(main())
"""


def recipe_digest(kind: str) -> str:
    recipe = f"{SUITE} {MIRROR} {sorted(PACKAGES[kind])} {HF_REQUIREMENT} {OPERATOR} v3"
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def rootfs_dir(layout: Layout, kind: str) -> Path:
    return layout.cache / f"rootfs-{kind}-{recipe_digest(kind)}"


def ensure_rootfs(layout: Layout, kind: str, log=print) -> Path:
    """The cached root filesystem of `kind` ('host' or 'image'), built on first use (about a minute)."""
    final = rootfs_dir(layout, kind)
    if (final / ".complete").exists():
        return final
    layout.cache.mkdir(parents=True, exist_ok=True)
    for stale in layout.cache.glob(f"rootfs-{kind}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f"rootfs-{kind}-", dir=layout.cache))
    log(f"building the {kind} root filesystem with debootstrap (first run only)")
    _debootstrap(kind, work)
    _install_hf_client(work)
    _trim(work)
    if kind == "host":
        _prepare_host(work)
    (work / ".complete").write_text(recipe_digest(kind))
    work.rename(final)
    return final


def _debootstrap(kind: str, work: Path, attempts: int = 3) -> None:
    """debootstrap into `work`, again from scratch when the mirror fails on the way (seen here: a run that
    stopped at "Checking component main" with exit 2, and the same command passing a minute later)."""
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES[kind])}", SUITE, str(work), MIRROR]
    for attempt in range(1, attempts + 1):
        try:
            _run(argv)
            return
        except SimError:
            if attempt == attempts:
                raise
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            time.sleep(10 * attempt)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SimError(f"{argv[0]} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")


def _install_hf_client(root: Path) -> None:
    """The real huggingface_hub (and its `hf` CLI) for the root's python3, installed from PyPI by our pip."""
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            "--target",
            str(root / PYTHON_SITE),
            HF_REQUIREMENT,
        ]
    )
    hf = root / "usr/local/bin/hf"
    hf.write_text(HF_WRAPPER)
    hf.chmod(0o755)


def _trim(root: Path) -> None:
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        target = root / junk
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def _prepare_host(root: Path) -> None:
    """What every simulated host shares: the operator account, SSH for it by key only and none for root (as DGX
    OS ships), no per-clone secrets in the shared layer."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _run(
        [
            "chroot",
            str(root),
            "useradd",
            "--create-home",
            "--uid",
            str(OPERATOR_UID),
            "--shell",
            "/bin/bash",
            "--groups",
            "sudo",
            OPERATOR,
        ]
    )
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/spark-sim.conf").write_text(
        "PermitRootLogin no\nPasswordAuthentication no\nUseDNS no\nMaxStartups 100:30:200\nMaxSessions 100\n"
    )
    (root / "etc/machine-id").write_text("")
    # No consoles to serve; a getty on the passive console only adds noise.
    for unit in ("getty@tty1.service", "console-getty.service"):
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
