"""The fleet's image registry, reached by the hosts as nvcr.io, Docker Hub and ghcr.io: Debian's docker-registry on
the loopback interface, behind a token-auth door over TLS (ngc_auth.py) on the bridge's gateway address."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from .errors import SimError
from .layout import REGISTRY_NAME, SLOTS, Layout, gateway
from .ngc_auth import door_names

CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {backend}
"""
# The NGC API key the rehearsal nvcr.io accepts (user $oauthtoken); the tests and scripts/rehearse.sh use it.
NGC_KEY = "rehearsal-key"


def ensure_certificates(layout: Layout) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key); the server is valid for every name the door answers
    (nvcr.io, Docker Hub's registry and token hosts, ghcr.io) and every slot's gateway IP, so the fleets of all
    slots share them. Made again when that list changed since they were made."""
    d = layout.ca_dir
    ca_crt, ca_key, crt, key = d / "ca.crt", d / "ca.key", d / "registry.crt", d / "registry.key"
    ext = d / "san.ext"
    names = ",".join([f"DNS:{n}" for n in door_names()] + [f"IP:{gateway(slot)}" for slot in range(SLOTS)])
    san = f"subjectAltName={names}\nbasicConstraints=CA:FALSE\n"
    if all(p.exists() for p in (ca_crt, crt, key)) and ext.exists() and ext.read_text() == san:
        return ca_crt, crt, key
    d.mkdir(parents=True, exist_ok=True)
    ext.write_text(san)
    for argv in (
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=spark-state rehearsal CA",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={REGISTRY_NAME}",
            "-keyout",
            str(key),
            "-out",
            str(d / "registry.csr"),
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(d / "registry.csr"),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SimError(f"openssl failed: {proc.stderr[-500:]}")
    return ca_crt, crt, key


def registry_command(layout: Layout) -> list[str]:
    layout.registry_dir.mkdir(parents=True, exist_ok=True)
    config = layout.fleet / "registry.yml"
    config.write_text(CONFIG.format(storage=layout.registry_dir, backend=layout.backend))
    return ["docker-registry", "serve", str(config)]


def faults_file(layout: Layout) -> Path:
    return layout.fleet / "registry-faults.json"


def outage(layout: Layout, after_blobs: int | None) -> None:
    """nvcr.io goes down (after serving `after_blobs` more blob requests: a pull already under way breaks off),
    or comes back (None)."""
    path = faults_file(layout)
    if after_blobs is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"id": secrets.token_hex(8), "after_blobs": after_blobs}))
    tmp.rename(path)


def door_command(layout: Layout) -> tuple[list[str], dict[str, str]]:
    """The nvcr.io front door and its environment (the NGC key goes there, not into argv)."""
    _, crt, key = ensure_certificates(layout)
    argv = [
        sys.executable,
        "-m",
        "spark_rehearsal.ngc_auth",
        "--listen",
        f"{layout.gateway}:443",
        "--cert",
        str(crt),
        "--key",
        str(key),
        "--backend",
        layout.backend,
        "--faults",
        str(faults_file(layout)),
    ]
    return argv, {**os.environ, "SPARK_SIM_NGC_KEY": NGC_KEY}
