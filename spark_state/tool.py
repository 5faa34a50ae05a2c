"""What makes spark-state a tool to install and drive like Terraform: the JSON Schema editors read, a first state
file (`init`), and `apply`, which runs the deploy shipped in this package through pyinfra's own command line, with
pyinfra's output and exit codes. Errors are raised, never printed: the CLI shows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from .desired.model import DesiredState
from .errors import UsageError
from .inventory import STATE_ENV
from .plan.templates import render

SCHEMA_ID = "urn:spark-state:state:v1"  # the schema's id; editors find the file by the modeline's path
SCHEMA_FILE = "spark-state.schema.json"


def schema_document() -> dict[str, Any]:
    """The state file's JSON Schema, as committed in spark_state/schema/ (a test keeps the two the same)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **DesiredState.model_json_schema(),
    }


def data_dir() -> Path:
    """Where spark-state keeps files for other programs on this machine (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "spark-state"


def install_schema(directory: Path | None = None) -> Path:
    """The schema written where yaml-language-server finds it by an absolute path (what a modeline of a state file
    anywhere can name); written again only when it changed."""
    path = (directory or data_dir()) / SCHEMA_FILE
    text = json.dumps(schema_document(), indent=2) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


@dataclass(frozen=True)
class InitHost:
    name: str
    address: str


def init_text(file: Path, hosts: list[InitHost], schema_path: Path) -> str:
    """A minimal, commented state file for these hosts, its modeline naming the installed schema."""
    return render("init_state.yaml.j2", file=file, hosts=hosts, schema_uri=schema_path.resolve().as_uri())


def init_hosts(count: int, addresses: list[str]) -> list[InitHost]:
    """spark-01..spark-NN at the given addresses (each `spark-NN.local` when none is given)."""
    if count < 1:
        raise UsageError("init needs at least one host")
    if addresses and len(addresses) != count:
        raise UsageError(f"--address was given {len(addresses)} times for {count} hosts")
    names = [f"spark-{n:02d}" for n in range(1, count + 1)]
    return [InitHost(n, addresses[i] if addresses else f"{n}.local") for i, n in enumerate(names)]


def apply(state_file: Path, inventory: str | None, pyinfra_args: list[str]) -> int:
    """Run the deploy shipped in this package with pyinfra's own CLI (the same interpreter: a pipx or uv tool
    install that hides the `pyinfra` command still has it): the inventory given, else one made from the state
    file's hosts. pyinfra's output goes straight to this terminal; its exit code is returned."""
    if not state_file.is_file():
        raise UsageError(f"{state_file}: no such state file")
    shipped = files("spark_state").joinpath("shipped")
    with as_file(shipped.joinpath("serve.py")) as deploy, as_file(shipped.joinpath("inventory.py")) as made:
        argv = [sys.executable, "-m", "pyinfra", inventory or str(made), str(deploy), *pyinfra_args]
        env = {**os.environ, STATE_ENV: str(state_file.resolve())}
        return subprocess.run(argv, env=env, check=False).returncode
