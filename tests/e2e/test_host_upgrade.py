"""Drift after host upgrades, on the rehearsal fleet: each host's baseline at its last good deploy, what changed
since (driver, CUDA, kernel), the bench against the baseline, and the deploy that re-benches only the upgraded
host. Runs after test_drift.py on the same fleet (alpha, beta, gamma = spark-01, -02, -03)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Fleet
from e2e_helpers import ALPHA, BETA, GAMMA, deploy, drift, drifted, sim, state_text

STATE = state_text(nvfp4_batch=16).replace(
    "tritonserver:25.12-trtllm-python-py3", "tritonserver:26.03-trtllm-python-py3"
)
BASELINE = "/var/lib/spark-state/baseline.json"
KEPT_GPU = "/var/lib/spark-state/cache/host-facts/gpu.json"
HOST_ITEMS = {("beta", "host", "NVIDIA driver"), ("beta", "host", "CUDA (driver API)"), ("beta", "host", "kernel")}


def host_baseline(fleet: Fleet, index: int) -> dict:
    return json.loads(fleet.root(fleet.hosts[index], f"cat {BASELINE}").stdout)


def benched_hosts(log: str) -> set[str]:
    """Hosts whose verification bench ran: each prints its summary table titled 'spark-state: HOST (...)'."""
    return {name for name in ("alpha", "beta", "gamma") if f"spark-state: {name} (" in log}


@pytest.fixture(scope="module")
def baselined(fleet: Fleet, workdir: Path) -> Iterator[str]:
    proc = deploy(workdir, STATE, "--data", "spark_bench=always")
    assert proc.returncode == 0, proc.stdout[-4000:]
    yield STATE
    sim("slow", fleet.hosts[BETA].name, "1")
    sim("upgrade", fleet.hosts[BETA].name, "--driver", "580.95.05", "--cuda", "13.0", "--kernel", os.uname().release)


def test_a_passing_deploy_records_each_hosts_baseline(fleet: Fleet, workdir: Path, baselined: str) -> None:
    for index, name in ((ALPHA, "alpha"), (BETA, "beta"), (GAMMA, "gamma")):
        recorded = host_baseline(fleet, index)
        assert recorded["format"] == "spark-state/baseline/v1" and recorded["host"] == name
        facts = recorded["facts"]
        assert facts["driver"] == "580.95.05" and facts["cuda"] == "13.0" and facts["container_toolkit"] == "1.17.8"
        assert facts["kernel"] == os.uname().release and facts["docker"] and facts["os"]
        assert recorded["images"]["nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3"].startswith("sha256:")
        assert recorded["bench"]["trtllm-nvfp4"]["decode (tok/s)"] > 30
        # the control machine keeps its copy too
        assert list((workdir / "home" / "baselines" / name).glob("*.json"))
    assert set(host_baseline(fleet, ALPHA)["bench"]) == {"nim-fp8", "trtllm-fp8", "trtllm-nvfp4"}
    code, report = drift(workdir, baselined)
    assert (code, drifted(report)) == (0, set())


def test_a_driver_upgrade_is_host_drift_on_that_host_only_and_the_deploy_rebenches_it(
    fleet: Fleet, workdir: Path, baselined: str
) -> None:
    before = host_baseline(fleet, BETA)
    others = {i: host_baseline(fleet, i) for i in (ALPHA, GAMMA)}
    kept = json.loads(fleet.root(fleet.hosts[BETA], f"cat {KEPT_GPU}").stdout)  # the probe keeps what it read
    assert kept["answer"]["driver_version"] == "580.95.05"
    out = sim(
        "upgrade", fleet.hosts[BETA].name, "--driver", "590.10.01", "--cuda", "13.1", "--kernel", "6.14.0-1001-nvidia"
    )
    assert "driver 590.10.01" in out and "kernel 6.14.0-1001-nvidia" in out
    # the host itself reports it where the tools read it
    smi = fleet.root(
        fleet.hosts[BETA],
        "nvidia-smi --query-gpu=driver_version --format=csv,noheader; "
        "nvidia-smi | grep -o 'CUDA Version: [0-9.]*'; cat /proc/sys/kernel/osrelease",
    )
    seen = fleet.root(
        fleet.hosts[BETA],
        "stat -c '%d %i %n' /proc/sys/kernel/osrelease /etc/spark-sim/osrelease; cat /etc/spark-sim/osrelease; "
        "grep -E 'osrelease|boot_id' /proc/self/mountinfo; systemctl status spark-sim-proc --no-pager",
        check=False,
    )
    assert smi.stdout.split("\n")[:3] == ["590.10.01", "CUDA Version: 13.1", "6.14.0-1001-nvidia"], seen.stdout
    packages = fleet.root(fleet.hosts[BETA], "dpkg-query -W -f '${Package} ${Version}\\n' 'nvidia-driver-*'").stdout
    assert packages.split() == ["nvidia-driver-590-open", "590.10.01-0ubuntu1"]  # as apt leaves it

    code, report = drift(workdir, baselined)
    assert (code, drifted(report)) == (2, HOST_ITEMS)
    beta = next(h for h in report["hosts"] if h["host"] == "beta")
    driver = next(d for d in beta["drift"] if d["name"] == "NVIDIA driver")
    assert driver["desired"].startswith("580.95.05 (baseline ") and driver["observed"] == "590.10.01"

    # re-measured: the figures are unchanged against the baseline, and drift says so
    code, report = drift(workdir, baselined, "--bench", "--host", "beta")
    assert (code, drifted(report)) == (2, HOST_ITEMS)
    beta = report["hosts"][0]
    figures = [i for i in beta["in_sync"] if i["kind"] == "baseline-bench"]
    assert {i["name"] for i in figures} >= {"trtllm-nvfp4 decode (tok/s)", "trtllm-nvfp4 TTFT p50 (ms)"}
    assert "performance unchanged" in beta["performance"] and "NVIDIA driver" in beta["performance"]

    # the next deploy changes no file, benches beta only, and records beta's new baseline
    proc = deploy(workdir, baselined)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert benched_hosts(proc.stdout) == {"beta"}
    said = " ".join(proc.stdout.split())  # rich folds long lines when output is not a terminal
    assert "beta since its last baseline:" in said and "NVIDIA driver 580.95.05 → 590.10.01" in said
    after = host_baseline(fleet, BETA)
    assert after["facts"]["driver"] == "590.10.01" and after["facts"]["kernel"] == "6.14.0-1001-nvidia"
    assert after["recorded_at"] >= before["recorded_at"] and after["bench"] != {}
    assert {i: host_baseline(fleet, i) for i in (ALPHA, GAMMA)} == others
    code, report = drift(workdir, baselined)
    assert (code, drifted(report)) == (0, set())


def test_an_upgrade_that_costs_speed_is_a_bench_regression_and_fails_the_deploy(
    fleet: Fleet, workdir: Path, baselined: str
) -> None:
    good = host_baseline(fleet, BETA)
    sim("upgrade", fleet.hosts[BETA].name, "--driver", "590.20.02")
    out = sim("slow", fleet.hosts[BETA].name, "1.5")
    assert "spark-state-trtllm-nvfp4" in out  # the running server slows down at once, no restart

    code, report = drift(workdir, baselined, "--bench")
    assert code == 2
    regressions = {(h, n) for h, k, n in drifted(report) if k == "baseline-bench"}
    assert regressions and {h for h, _ in regressions} == {"beta"}
    assert ("beta", "trtllm-nvfp4 decode (tok/s)") in regressions
    assert ("beta", "host", "NVIDIA driver") in drifted(report)
    assert not {(h, k) for h, k, _ in drifted(report) if h != "beta"}  # alpha and gamma: nothing
    beta = next(h for h in report["hosts"] if h["host"] == "beta")
    assert "worse than the baseline" in beta["performance"]

    proc = deploy(workdir, baselined)
    assert proc.returncode != 0
    assert benched_hosts(proc.stdout) == {"beta"}
    assert "verification failed on beta" in proc.stdout
    assert host_baseline(fleet, BETA) == good  # a failing bench records no baseline

    # back to full speed: the same deploy passes and records the new driver
    sim("slow", fleet.hosts[BETA].name, "1")
    proc = deploy(workdir, baselined)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert host_baseline(fleet, BETA)["facts"]["driver"] == "590.20.02"
    code, report = drift(workdir, baselined)
    assert (code, drifted(report)) == (0, set())
