"""A reboot of one Spark (through its own systemd): its services come back by themselves, drift says "starting"
(exit 2) until they answer and then exit 0, and nothing is downloaded, pulled or built again; what the probe
kept of the GPU before the reboot is read again after it."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from conftest import Fleet
from e2e_helpers import BETA, ENGINE_ROOT, answers, deploy, drift, drifted, events, state_text

from spark_rehearsal import upgrade

KEPT_GPU = "/var/lib/spark-state/cache/host-facts/gpu.json"


def test_a_rebooted_host_serves_again_without_a_deploy(fleet: Fleet, workdir: Path) -> None:
    text = state_text()
    proc = deploy(workdir, text)
    assert proc.returncode == 0, proc.stdout[-4000:]
    host = fleet.hosts[BETA]
    artifacts = "find /var/lib/spark-state/checkpoints /var/lib/spark-state/engines -name .spark-state.json -printf '%p %T@\\n' | sort"
    before = fleet.root(host, artifacts).stdout
    assert before.strip() and answers(fleet, BETA, 8004)

    # What a converged run reads of the GPU is kept on the host until a reboot or a package change: a kept
    # answer that says otherwise is believed now, and dropped once the host has booted again.
    document = json.loads(fleet.root(host, f"cat {KEPT_GPU}").stdout)
    document["answer"]["driver_version"] = "kept-before-the-reboot"
    fleet.root(host, f"echo {shlex.quote(json.dumps(document))} > {KEPT_GPU}")
    code, report = drift(workdir, text, "--host", "beta")
    assert ("beta", "host", "NVIDIA driver") in drifted(report), drifted(report)

    upgrade.reboot(host.name)  # back when SSH and docker answer; the service is still loading
    code, report = drift(workdir, text, "--host", "beta")
    starting = [i for h in report["hosts"] for i in h["drift"] if i["observed"].startswith("starting")]
    assert code == 2 and starting, drifted(report)

    deadline = time.monotonic() + 180
    while not answers(fleet, BETA, 8004) and time.monotonic() < deadline:
        time.sleep(1)
    code, report = drift(workdir, text, "--host", "beta")
    assert (code, drifted(report)) == (0, set())
    # the same disk: nothing fetched, pulled or built again; the unit started the container it had
    assert fleet.root(host, artifacts).stdout == before
    seen = events(fleet, BETA, "0")  # since this docker daemon started, at boot
    assert "container start spark-state-trtllm-nvfp4" in seen
    assert not [
        e
        for e in seen
        if " pull " in e
        or e.split()[-1].startswith(("spark-state-build-", "spark-state-fetch-", "spark-state-convert-"))
    ], seen
    assert fleet.root(host, f"ls {ENGINE_ROOT}/llama31-8b-nvfp4/*/engine/rank0.engine").returncode == 0
