"""Files spark-state writes on the control machine (bench history, baselines, the pinned state file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

NEW_FILE_MODE = 0o644


def state_home() -> Path:
    """Where spark-state keeps what it remembers on the control machine ($SPARK_STATE_HOME, else XDG state)."""
    base = os.environ.get("SPARK_STATE_HOME") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "spark-state"
    )
    return Path(base)


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path`: a temp file beside it, then a rename, so a reader never sees half a file. A file
    that is replaced keeps its permission bits; a new one gets NEW_FILE_MODE."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else NEW_FILE_MODE
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
