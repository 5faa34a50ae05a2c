"""The writer lock's host side (on_host/lock.py), run here as it runs on a Spark: one holder at a time, the next
one told who holds it, and a holder that goes away (its channel closed, its control machine killed) leaves no
lock behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark_state.on_host import program
from spark_state.writer_lock import BUSY_EXIT, describe


def _writer(lock: Path, mode: str, who: str) -> subprocess.Popen[str]:
    holder = json.dumps({"operator": who, "control_machine": "laptop", "command": "pyinfra", "pid": 1, "since": "t"})
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", program("lock.py"), str(lock), mode, holder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_one_writer_holds_the_next_is_told_who_and_a_closed_channel_releases(tmp_path: Path) -> None:
    lock = tmp_path / "writer.lock"
    first = _writer(lock, "stop", "alice")
    assert first.stdout is not None and first.stdout.readline().strip() == "held"

    second = _writer(lock, "stop", "bob")
    out, _ = second.communicate(timeout=30)
    assert second.returncode == BUSY_EXIT
    said = out.strip().removeprefix("busy ")
    assert describe(said).startswith("alice on laptop since t")

    waiting = _writer(lock, "wait", "carol")
    assert waiting.stdout is not None and waiting.stdout.readline().startswith("busy ")
    first.kill()  # the holder's control machine dies: its channel, and so its lock, go with it
    first.wait(timeout=30)
    assert waiting.stdout.readline().strip() == "held"
    assert json.loads((tmp_path / "writer.lock.holder").read_text())["operator"] == "carol"
    waiting.stdin.close()  # type: ignore[union-attr]
    assert waiting.wait(timeout=30) == 0


def test_what_a_holder_wrote_is_shown_escaped() -> None:
    """The holder file is anyone's to write on the host: its words reach the operator's terminal as data."""
    said = describe(json.dumps({"operator": "x\x1b]8;;http://evil\x1b\\", "control_machine": "m\r"}))
    assert "\x1b" not in said and "\r" not in said and "\\u001b]8;;http://evil" in said


PROTECTED_REGULAR = Path("/proc/sys/fs/protected_regular")


@pytest.fixture
def protected_regular() -> Iterator[None]:
    """The kernel's protection as a Spark boots with it (systemd's sysctl.d/50-default.conf sets 1, Ubuntu's
    protect-links.conf 2): O_CREAT is refused on another account's file in a sticky world-writable directory.
    A machine-wide setting, so it is set for this test only and put back."""
    if os.geteuid() != 0 or not os.access(PROTECTED_REGULAR, os.W_OK):
        pytest.skip("needs root and a writable /proc/sys to set fs.protected_regular")
    before = PROTECTED_REGULAR.read_text()
    PROTECTED_REGULAR.write_text("2\n")
    try:
        yield
    finally:
        PROTECTED_REGULAR.write_text(before)


def test_a_second_account_takes_the_lock_another_account_made(tmp_path: Path, protected_regular: None) -> None:
    """Two operator accounts share /run/lock: the lock and holder files the first one made are the second's to
    open (mode 0666) though the kernel refuses it O_CREAT on them; root is refused alike, so root stands in for
    the second account here."""
    sticky = tmp_path / "lock"
    sticky.mkdir()
    sticky.chmod(0o1777)
    lock = sticky / "writer.lock"
    for path in (lock, sticky / "writer.lock.holder"):
        path.write_text("")
        path.chmod(0o666)
        os.chown(path, 4242, 4242)  # made by the first account
    with pytest.raises(PermissionError):  # what the kernel does to an O_CREAT open here
        os.open(lock, os.O_RDWR | os.O_CREAT)
    second = _writer(lock, "stop", "bob")
    assert second.stdout is not None and second.stdout.readline().strip() == "held"
    assert json.loads((sticky / "writer.lock.holder").read_text())["operator"] == "bob"
    second.stdin.close()  # type: ignore[union-attr]
    assert second.wait(timeout=30) == 0
