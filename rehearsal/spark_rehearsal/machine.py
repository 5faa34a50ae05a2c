"""Keeps one simulated Spark running as systemd does for `systemd-nspawn@.service`: when the machine's own
systemd reboots (`systemctl reboot` inside), systemd-nspawn exits with status 133 and is started again, on the
same root, disk and network namespace; any other exit ends the machine. SIGTERM is passed on (a power-off).

    python -m spark_rehearsal.machine systemd-nspawn ARGS...
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

REBOOT_EXIT_STATUS = (
    133  # systemd-nspawn(1): "the container requested a reboot"; systemd-nspawn@.service restarts on it
)


def main(argv: list[str]) -> int:
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        child = subprocess.Popen(argv)
        code = child.wait()
        if code != REBOOT_EXIT_STATUS or stopping:
            return code
        print(f"spark-sim machine: rebooting ({time.strftime('%H:%M:%S')})", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
