"""Runs ON a Spark (python3, stdlib only): holds spark-state's writer lock for as long as the SSH channel that
started it stays open, so one deploy (or prune) changes a Spark at a time, and a run killed on the control
machine leaves no lock behind (its connection closes, this process sees the end of its stdin and exits, and
the kernel drops the flock).

    python3 -c PROGRAM LOCK_PATH MODE HOLDER_JSON

Prints `held` once it holds the lock; when another writer holds it, first `busy HOLDER_JSON` (what that writer
wrote beside the lock: operator, control machine, command, since), then exits 3 (MODE stop) or waits for it
(MODE wait) and prints `held`. Then it keeps the lock until its stdin ends.
"""

import fcntl
import os
import sys


def _shared(path):
    """A file every operator account may open for writing (the lock directory is sticky and world-writable).

    An existing one is opened without O_CREAT: in a sticky world-writable directory the kernel refuses O_CREAT
    on a file another account owns (fs.protected_regular, 1 in systemd's sysctl.d/50-default.conf, 2 in
    Ubuntu's protect-links.conf), even where its mode lets everyone write it."""
    try:
        return os.open(path, os.O_RDWR)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:  # another writer made it in between
        return os.open(path, os.O_RDWR)
    os.fchmod(fd, 0o666)  # whatever this account's umask: every operator account writes it
    return fd


def main(argv):
    path, mode, holder = argv
    fd = _shared(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            with open(path + ".holder") as f:
                current = f.read().strip() or "{}"
        except OSError:
            current = "{}"
        print("busy " + current, flush=True)
        if mode != "wait":
            return 3
        fcntl.flock(fd, fcntl.LOCK_EX)
    info = _shared(path + ".holder")
    os.ftruncate(info, 0)
    os.write(info, holder.encode() + b"\n")
    os.close(info)
    print("held", flush=True)
    sys.stdin.read()  # until the channel closes: the run ended, or its control machine died
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
