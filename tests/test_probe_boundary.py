"""The probe is declared once (on_host/probe.py) and its answer enters at one boundary: Snapshot.from_output."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_state.errors import ProbeError
from spark_state.on_host.probe import READERS, KeptAsked, ProbeRequest, Snapshot, WriterAsked, probe_command


def test_each_section_has_a_request_field_a_reader_and_an_answer_field_in_that_order() -> None:
    assert list(ProbeRequest.model_fields) == list(READERS) == list(Snapshot.model_fields)


def test_the_probe_runs_on_a_bare_python3_and_its_answer_parses() -> None:
    """The same module, shipped as text, runs with python3's standard library alone (no pydantic there)."""
    request = ProbeRequest(memory=True, disk="/var/lib/nothing-here", listening=True, env_files="/nonexistent")
    command = probe_command(request).replace("python3 -I", "/usr/bin/python3 -I", 1)
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    snapshot = Snapshot.from_output(done.stdout)
    assert snapshot.memory is not None and snapshot.memory.total_gib > 0
    assert snapshot.disk is not None and snapshot.disk.path == "/var/lib"
    assert snapshot.env_files == () and snapshot.gpu is None


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ('{"errors": "boom"}', "could not read this host: boom"),
        ('{"errors": {"units": "PermissionError: denied"}}', "units: PermissionError"),
        ('{"memory": {"total_gib": 1e400, "available_gib": 1}}', "unexpected in memory"),
        ('{"memory": {"total_gib": NaN, "available_gib": 1}}', "not its JSON"),
        ('{"disk": {"path": "/", "free_gb": Infinity, "total_gb": 1}}', "not its JSON"),
        ('{"owners": {"/x": [1e400, 0]}}', "unexpected in owners"),
        ("[" * 100_000 + "]" * 100_000, "not its JSON"),
        ('{"health": {"8000": {"/health": [[[]]]}}}', "unexpected in health"),
        ('{"units": "all of them"}', "unexpected in units"),
        ("[1, 2]", "not a JSON object"),
        ("HTTP/1.0 [/] OK", "not its JSON"),
    ],
)
def test_malformed_answers_are_that_hosts_probe_error(output: str, says: str) -> None:
    with pytest.raises(ProbeError, match=says.replace("[", r"\[")):
        Snapshot.from_output(output)


def test_an_oversized_answer_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(ProbeError, match="at most"):
        Snapshot.from_output('{"env_files": ["' + "x" * (33 * 2**20) + '"]}')


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_sections = st.dictionaries(st.sampled_from([*READERS, "errors"]), _json, max_size=6)


@settings(max_examples=400, deadline=None)
@given(_sections)
def test_any_json_is_a_snapshot_or_a_probe_error(document: dict[str, object]) -> None:
    try:
        snapshot = Snapshot.from_output(json.dumps(document))
    except ProbeError:
        return
    for fact in (snapshot.memory, snapshot.disk, snapshot.docker_disk):  # no NaN or infinity in a budget
        for value in vars(fact).values() if fact else ():
            assert not (isinstance(value, float) and not math.isfinite(value))


def _secrets_dir(path: object) -> dict[str, object]:
    """The probe's secrets_dir section, read on this machine by the probe program itself."""
    request = ProbeRequest(secrets_dir=str(path))
    command = probe_command(request).replace("python3 -I", "/usr/bin/python3 -I", 1)
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    found = Snapshot.from_output(done.stdout).secrets_dir
    assert found is not None
    return {"refusal": found.refusal(), "owned": found.owned, "foreign": found.foreign}


@pytest.fixture
def root_only_dir() -> Iterator[Path]:
    """A directory whose parents only root may write to (pytest's tmp_path is under the world-writable /tmp)."""
    base = Path(tempfile.mkdtemp(dir="/var/lib", prefix="spark-state-test-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


def test_a_secrets_directory_is_written_only_when_it_is_spark_states(root_only_dir: Path) -> None:
    base = root_only_dir
    assert _secrets_dir(base / "new")["refusal"] is None  # not there yet: spark-state creates it
    certs = base / "certs"
    certs.mkdir(mode=0o755)
    (certs / "ca.pem").write_text("x")
    said = _secrets_dir(certs)
    assert "spark-state did not create it and holds ca.pem" in str(said["refusal"]) and said["foreign"] == ("ca.pem",)
    ours = base / "ours"
    ours.mkdir(mode=0o755)
    (ours / ".spark-state-owned").write_text("")
    (ours / "chat.env").write_text("A=1\n")
    assert _secrets_dir(ours) == {"refusal": None, "owned": True, "foreign": ()}  # loosened, but spark-state's
    older = base / "older"
    older.mkdir(mode=0o700)
    (older / "chat.env").write_text("A=1\n")
    assert _secrets_dir(older)["refusal"] is None  # an older spark-state's: taken over
    os.symlink(ours, base / "link")
    assert "a link on the way" in str(_secrets_dir(base / "link")["refusal"])
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /var/crash
    assert "which anyone on the host may write to" in str(_secrets_dir(shared / "secrets")["refusal"])


def _kept_probe(tools: Path, kept: Path, write: bool = True) -> Snapshot:
    """gpu and host, read on this machine by the probe program with `tools` first on PATH."""
    asked = KeptAsked(directory=str(kept), write=write)
    command = probe_command(ProbeRequest(gpu=asked, host=asked)).replace("python3 -I", "/usr/bin/python3 -I", 1)
    env = {"PATH": f"{tools}:/usr/bin:/bin"}
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return Snapshot.from_output(done.stdout)


def _tool(path: Path, text: str) -> None:
    """Install a tool as a package upgrade does: a new file renamed over the old one."""
    new = path.with_suffix(".new")
    new.write_text("#!/bin/sh\n" + text)
    new.chmod(0o755)
    new.replace(path)


def test_gpu_and_host_versions_are_kept_until_what_would_change_them_changes(tmp_path: Path) -> None:
    """Read once and kept, keyed by the boot id, the package database, the OS release and the tools themselves:
    a driver that changes without any of them changing is not seen (that is the cache at work), a new nvidia-smi
    is; a read-only look keeps nothing; an answer with a field unread is never kept."""
    tools, kept = tmp_path / "bin", tmp_path / "kept"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    table = "echo '| NVIDIA-SMI 580.95.05   Driver Version: 580.95.05   CUDA Version: 13.0 |'"
    csv = 'if [ "$1" = "--query-gpu=name,compute_cap,driver_version" ]; then echo "NVIDIA GB10, 12.1, {0}"; exit; fi\n'
    _tool(smi, csv.format("580.95.05") + table)
    _tool(tools / "nvidia-container-runtime-hook", "echo 'NVIDIA Container Runtime Hook version 1.17.8'")

    assert _kept_probe(tools, kept, write=False).gpu is not None and not kept.exists()  # drift keeps nothing
    first = _kept_probe(tools, kept)
    assert first.gpu is not None and first.gpu.driver_version == "580.95.05" and first.host.cuda == "13.0"
    assert sorted(p.name for p in kept.iterdir()) == ["gpu.json", "host.json"]

    kept_gpu = json.loads((kept / "gpu.json").read_text())
    kept_gpu["answer"]["driver_version"] = "kept-answer"  # what only the kept copy says
    (kept / "gpu.json").write_text(json.dumps(kept_gpu))
    again = _kept_probe(tools, kept)
    assert again.gpu is not None and again.gpu.driver_version == "kept-answer"

    _tool(smi, csv.format("590.10.01") + table.replace("13.0", "13.1"))  # the driver upgraded
    upgraded = _kept_probe(tools, kept)
    assert upgraded.gpu is not None and upgraded.gpu.driver_version == "590.10.01" and upgraded.host.cuda == "13.1"
    assert json.loads((kept / "gpu.json").read_text())["answer"]["driver_version"] == "590.10.01"

    (kept / "host.json").unlink()
    _tool(tools / "nvidia-container-runtime-hook", "exit 1")  # the toolkit cannot say its version
    assert _kept_probe(tools, kept).host.container_toolkit is None
    assert not (kept / "host.json").exists()


def test_a_probe_guarded_by_the_writer_lock_reads_nothing_before_the_lock_is_this_runs(tmp_path: Path) -> None:
    """The deploy asks for the lock and probes at the same time; the probe waits on the host for the run's token,
    which the lock program writes once it holds the lock, and reads no other section before it (or at all)."""
    holder = tmp_path / "writer.lock.holder"
    holder.write_text(json.dumps({"operator": "someone else", "token": "theirs"}))

    def probe(wait_s: float) -> subprocess.Popen[str]:
        request = ProbeRequest(writer=WriterAsked(holder=str(holder), token="ours", wait_s=wait_s), memory=True)
        command = probe_command(request).replace("python3 -I", "/usr/bin/python3 -I", 1)
        return subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE, text=True)

    refused = Snapshot.from_output(probe(0.3).communicate(timeout=60)[0])
    assert refused.writer is False and refused.memory is None  # another writer's lock: nothing read

    waiting = probe(30)
    time.sleep(0.5)
    assert waiting.poll() is None  # still waiting for this run's token
    holder.write_text(json.dumps({"operator": "me", "token": "ours"}))  # what lock.py writes once it holds it
    held = Snapshot.from_output(waiting.communicate(timeout=60)[0])
    assert held.writer is True and held.memory is not None
