"""The simulated Sparks' package mirror: a signed APT repository served on the bridge's gateway, holding Debian's
own packages (and the dependencies they need beyond the host's root filesystem) for what spark-state installs
on a Spark with apt (earlyoom, the node exporter, Prometheus). A Spark installs from Ubuntu's signed archive;
the simulated ones have no route out, so they get a mirror that apt treats the same way: `apt-get update` checks
its InRelease signature against a key in /etc/apt/keyrings (signed-by), and a package missing from it fails the
install as a real mirror would.

Built once into the cache from deb.debian.org (apt on this machine, with the host root filesystem's dpkg status,
so exactly the missing packages are downloaded), then served read-only by a plain HTTP server.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

from .errors import SimError
from .layout import Layout
from .rootfs import MIRROR, SUITE

APT_PORT = 8091
# What spark-state installs with apt on a Spark (spark_state/plan/system_services.py): every package it names.
PACKAGES = ("earlyoom", "prometheus-node-exporter", "prometheus")
KEY_NAME = "spark-rehearsal-archive.gpg"  # /etc/apt/keyrings/ on each host (signed-by)
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def repo_dir(layout: Layout, host_root: Path) -> Path:
    recipe = f"{SUITE} {MIRROR} {sorted(PACKAGES)} {host_root.name} v1"
    return layout.cache / f"apt-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def ensure_repo(layout: Layout, host_root: Path, log=print) -> Path:
    """The signed repository for hosts built from `host_root`, built on first use."""
    final = repo_dir(layout, host_root)
    if (final / ".complete").exists():
        return final
    for stale in layout.cache.glob("apt-*"):
        shutil.rmtree(stale, ignore_errors=True)
    log(f"building the rehearsal package mirror ({', '.join(PACKAGES)}) from {MIRROR}")
    work = Path(tempfile.mkdtemp(prefix="apt-", dir=layout.cache))
    repo = work / "repo"
    repo.mkdir()
    _download(work, host_root, repo)
    _index(repo)
    _sign(work, repo)
    (work / ".complete").write_text("\n".join(p.name for p in sorted(repo.glob("*.deb"))) + "\n")
    work.rename(final)
    return final


def _apt(work: Path, host_root: Path, *argv: str) -> None:
    """apt-get on this machine, reading bookworm from Debian's archive (checked against Debian's keyring) and
    the host root filesystem's installed packages, keeping its lists and downloads in `work`."""
    options = {
        "Dir::Etc::SourceList": str(work / "sources.list"),
        "Dir::Etc::SourceParts": str(work / "sources.list.d"),
        "Dir::Etc::Preferences": str(work / "preferences"),
        "Dir::Etc::PreferencesParts": str(work / "preferences.d"),
        "Dir::State::Lists": str(work / "lists"),
        "Dir::State::status": str(host_root / "var/lib/dpkg/status"),
        "Dir::Cache": str(work / "cache"),
        "APT::Install-Recommends": "false",
        "Debug::NoLocking": "true",
    }
    words = [word for key, value in options.items() for word in ("-o", f"{key}={value}")]
    for attempt in range(1, 4):  # the mirror fails now and then (see rootfs._debootstrap)
        proc = subprocess.run(["apt-get", "-q", *words, *argv], capture_output=True, text=True)
        if proc.returncode == 0:
            return
        if attempt == 3:
            raise SimError(f"apt-get {argv[0]} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
        time.sleep(10 * attempt)


def _download(work: Path, host_root: Path, repo: Path) -> None:
    (work / "sources.list").write_text(f"deb [signed-by={DEBIAN_KEYRING}] {MIRROR} {SUITE} main\n")
    for directory in ("sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"):
        (work / directory).mkdir(parents=True, exist_ok=True)
    _apt(work, host_root, "update")
    _apt(work, host_root, "install", "--download-only", "--yes", *PACKAGES)
    debs = sorted((work / "cache/archives").glob("*.deb"))
    if not debs:
        raise SimError(f"apt downloaded nothing for {', '.join(PACKAGES)}")
    for deb in debs:
        shutil.copy(deb, repo / deb.name)


def _index(repo: Path) -> None:
    """A flat repository (`deb URL ./`): Packages, Packages.gz and a Release listing their hashes, as
    apt-ftparchive writes them (the fields apt checks: Date, and SHA256 per index)."""
    proc = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SimError(f"dpkg-scanpackages failed: {proc.stderr[-2000:]}")
    (repo / "Packages").write_text(proc.stdout)
    (repo / "Packages.gz").write_bytes(gzip.compress(proc.stdout.encode(), mtime=0))
    lines = [
        "Origin: spark-rehearsal",
        "Label: spark-rehearsal",
        f"Suite: {SUITE}",
        f"Codename: {SUITE}",
        f"Date: {formatdate(usegmt=True)}",
        "Architectures: amd64 arm64 all",
        "SHA256:",
    ]
    for name in ("Packages", "Packages.gz"):
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repo / "Release").write_text("\n".join(lines) + "\n")


def _sign(work: Path, repo: Path) -> None:
    """InRelease, clear-signed with a key made for this cache; its public part is what hosts trust."""
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    for argv in (
        [*gpg, "--quick-generate-key", "spark-rehearsal archive <rehearsal@spark-state.invalid>", "ed25519", "sign"],
        [*gpg, "--clearsign", "--output", str(repo / "InRelease"), str(repo / "Release")],
        [*gpg, "--output", str(work / KEY_NAME), "--export"],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SimError(f"gpg failed ({proc.returncode}): {proc.stderr[-2000:]}")
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)  # the key is only needed once: a new cache makes a new one


def serve_command(repo: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "http.server", "--bind", address, "--directory", str(repo / "repo"), str(APT_PORT)]


def install_on_host(root: Path, repo: Path, address: str) -> None:
    """The host's apt reads only this mirror, checked against its key (Debian's archive is out of reach)."""
    keyrings = root / "etc/apt/keyrings"
    keyrings.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / KEY_NAME, keyrings / KEY_NAME)
    (root / "etc/apt/sources.list").write_text(
        "# The rehearsal fleet's package mirror (spark_rehearsal/apt_repo.py): a Spark reads Ubuntu's archive.\n"
        f"deb [signed-by=/etc/apt/keyrings/{KEY_NAME}] http://{address}:{APT_PORT}/ ./\n"
    )
