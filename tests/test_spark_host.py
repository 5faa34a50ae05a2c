"""The host helper's own logic, run as the deploy runs it (a subprocess), against a real HTTP server and a
docker stand-in script that answers as docker does: pulls that retry only what retrying can mend, a health
wait that will not take a foreign process's answer for our container's, and secrets written atomically."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from spark_state.on_host import spark_host

HELPER = spark_host.__file__


def _helper(
    *argv: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, HELPER, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "SPARK_STATE_PULL_BACKOFF": "0.1,0.1,0.1", **(env or {})},
    )


def _docker(tmp_path: Path, script: str) -> str:
    """A docker stand-in: a shell script with a call counter in $COUNT."""
    path = tmp_path / "docker"
    path.write_text(
        f"#!/bin/sh\nCOUNT_FILE={tmp_path}/calls\necho x >> $COUNT_FILE\nCOUNT=$(wc -l < $COUNT_FILE)\n{script}"
    )
    path.chmod(0o755)
    return str(path)


def test_a_pull_that_meets_503_is_tried_again_and_succeeds(tmp_path: Path) -> None:
    docker = _docker(
        tmp_path,
        'if [ "$COUNT" -lt 3 ]; then echo "Error response from daemon: received unexpected '
        'HTTP status: 503 Service Unavailable"; exit 1; fi\necho "abc: Pull complete"\n',
    )
    proc = _helper("pull", docker, "nvcr.io/nvidia/x:1")
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.count("failed (Error response from daemon") == 2
        and "pull nvcr.io/nvidia/x:1: done in" in proc.stdout
    )


def test_a_pull_gives_up_after_four_attempts_with_the_registrys_words(tmp_path: Path) -> None:
    docker = _docker(tmp_path, 'echo "Error response from daemon: received unexpected HTTP status: 503"; exit 1\n')
    proc = _helper("pull", docker, "nvcr.io/nvidia/x:1")
    assert proc.returncode == 1
    assert "pull nvcr.io/nvidia/x:1 failed after 4 attempt(s) over" in proc.stderr and "503" in proc.stderr
    assert len((tmp_path / "calls").read_text().split()) == 4


def test_a_refused_pull_is_not_tried_again(tmp_path: Path) -> None:
    docker = _docker(tmp_path, 'echo "Error response from daemon: unauthorized: authentication required"; exit 1\n')
    proc = _helper("pull", docker, "nvcr.io/nim/x:1")
    assert proc.returncode == 1 and "failed after 1 attempt(s)" in proc.stderr
    assert len((tmp_path / "calls").read_text().split()) == 1


class _Answers200(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def foreign_port() -> int:
    server = HTTPServer(("127.0.0.1", 0), _Answers200)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_port_answered_by_another_process_is_not_our_container(tmp_path: Path, foreign_port: int) -> None:
    docker = _docker(tmp_path, 'echo "Error: No such object: $5" >&2; exit 1\n')
    proc = _helper("wait-healthy", str(foreign_port), "60", docker, "spark-state-chat", "/health", "/v1/models")
    assert proc.returncode == 1
    assert (
        f"port {foreign_port} answers, but not from spark-state: container spark-state-chat does not exist"
        in proc.stderr
    )


def test_our_running_container_publishing_the_port_is_healthy(tmp_path: Path, foreign_port: int) -> None:
    docker = _docker(
        tmp_path, f'echo \'running {{"{foreign_port}/tcp":[{{"HostIp":"","HostPort":"{foreign_port}"}}]}}\'\n'
    )
    proc = _helper("wait-healthy", str(foreign_port), "60", docker, "spark-state-chat", "/health", "/v1/models")
    assert proc.returncode == 0, proc.stderr
    assert f"port {foreign_port}: healthy after" in proc.stdout


def test_a_secret_file_is_written_whole_0600_in_a_0700_directory(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    target = directory / "chat.env"
    content = "HF_TOKEN=hf_x\nEMPTY=\n"
    proc = _helper("write-private", str(target), stdin=base64.b64encode(content.encode()).decode() + "\n")
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == content
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and stat.S_IMODE(directory.stat().st_mode) == 0o700
    # no temp file left beside it; the directory is marked as spark-state's
    assert sorted(p.name for p in directory.iterdir()) == [".spark-state-owned", "chat.env"]
    directory.chmod(0o755)  # someone loosened spark-state's own directory: it is put back
    assert _helper("write-private", str(target), stdin="\n").returncode == 0 and target.read_text() == ""
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_directory_spark_state_did_not_create_is_left_alone(tmp_path: Path) -> None:
    """/etc/ssl/certs or /etc/profile.d as paths.secrets: not chmodded, not written into."""
    directory = tmp_path / "certs"
    directory.mkdir(mode=0o755)
    (directory / "ca.pem").write_text("cert")
    proc = _helper("write-private", str(directory / "chat.env"), stdin=base64.b64encode(b"A=1\n").decode() + "\n")
    assert proc.returncode != 0 and "spark-state did not create it" in proc.stderr
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert sorted(p.name for p in directory.iterdir()) == ["ca.pem"]


def test_an_older_spark_states_directory_is_taken_over(tmp_path: Path) -> None:
    """0700 and env files only: what spark-state made before it marked its directories."""
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    (directory / "old.env").write_text("A=1\n")
    proc = _helper("write-private", str(directory / "chat.env"), stdin=base64.b64encode(b"B=2\n").decode() + "\n")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in directory.iterdir()) == [".spark-state-owned", "chat.env", "old.env"]


def test_a_bad_stdin_leaves_the_old_secret_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "chat.env"
    target.write_text("OLD=1\n")
    proc = _helper("write-private", str(target), stdin="not base64!\n")
    assert proc.returncode != 0 and target.read_text() == "OLD=1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.env"]


def test_the_helper_needs_nothing_beyond_the_standard_library() -> None:
    """It runs on hosts with python3 alone: loading it must not need site-packages."""
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import runpy; runpy.run_path({HELPER!r}, run_name='x')"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
