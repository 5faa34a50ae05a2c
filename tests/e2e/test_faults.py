"""One host's trouble stays on it, on the rehearsal fleet: docker stopped, a malformed manifest, nvcr.io going
down in the middle of a pull, a gated repo without a token, a foreign process on a service port, a disk too
small for an image. Each fails
only its host, with a message a person can act on, while a host without trouble takes the same change (a new
KV-cache fraction: its NVFP4 service restarts and is benched). Then the faults go and one deploy brings
everyone back."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import Fleet
from e2e_helpers import (
    ALPHA,
    BETA,
    ENGINE_ROOT,
    GAMMA,
    answers,
    deploy,
    drift,
    drifted,
    events,
    host_clock,
    sim,
    started,
    state_text,
)

from spark_state.desired.loader import load_state_text
from spark_state.plan.host_plan import plan_host

NIM = "nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest"
GATED = "meta-llama/Llama-3.1-8B-Instruct"
FOREIGN_SERVER = """import http.server
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")
http.server.HTTPServer(("0.0.0.0", 8004), Answer).serve_forever()
"""
FOREIGN = (
    f"cat > /root/foreign.py <<'EOF'\n{FOREIGN_SERVER}EOF\n"
    "nohup python3 /root/foreign.py >/dev/null 2>&1 & echo $! > /root/foreign.pid; sleep 1"
)


def _state(kv: float = 0.4) -> str:
    """The state test_drift leaves the fleet in (NVFP4 at max batch 16), so the first round starts converged."""
    return state_text(nvfp4_batch=16, kv=kv)


def _failed(log: str, name: str) -> bool:
    return bool(re.search(rf"\[{name}\]\s+Error", log))


def _with_gated_service_on_gamma(text: str) -> str:
    """gamma also serves Meta's gated checkpoint (PyTorch backend); the state lists no HF_TOKEN for it."""
    text = text.replace(
        "  nvfp4-own-tokenizer:", f"  meta-gated: {{repo: {GATED}, revision: main}}\n  nvfp4-own-tokenizer:"
    )
    text = text.replace(
        "  raw-nvfp4:",
        "  gated-chat: {checkpoint: meta-gated, backend: pytorch, image: triton-25.12, port: 8021}\n  raw-nvfp4:",
    )
    return text.replace(
        "gamma: {address: 10.9.0.3, groups: [nvfp4]}",
        "gamma: {address: 10.9.0.3, groups: [nvfp4], services: [gated-chat]}",
    )


def test_docker_down_and_a_malformed_manifest_fail_only_their_hosts(fleet: Fleet, workdir: Path) -> None:
    assert deploy(workdir, _state()).returncode == 0
    alpha, beta = fleet.hosts[ALPHA], fleet.hosts[BETA]
    engine = plan_host(load_state_text(_state()).state, "beta").engines[0]  # the build beta serves now
    manifest = f"{engine.dir}/.spark-state.json"
    assert manifest.startswith(ENGINE_ROOT) and fleet.root(beta, f"test -f {manifest}", check=False).returncode == 0
    marks = [host_clock(fleet, i) for i in range(3)]
    fleet.root(alpha, "systemctl stop docker.socket docker.service")  # its units stop with it (Requires=)
    fleet.root(beta, f'cp {manifest} /root/manifest.bak && printf \'{{"files": "lost"}}\' > {manifest}')
    try:
        proc = deploy(workdir, _state(kv=0.35))
    finally:
        fleet.root(alpha, "systemctl start docker.socket docker.service")
        fleet.root(beta, f"mv /root/manifest.bak {manifest}")
    log = proc.stdout
    assert proc.returncode != 0 and "Traceback" not in log
    assert "docker is not running" in log and _failed(log, "alpha")
    assert f"{manifest} is not a spark-state manifest" in log and _failed(log, "beta")
    assert not _failed(log, "gamma")  # gamma took the change
    assert "spark-state-trtllm-nvfp4" in started(fleet, GAMMA, marks[GAMMA]) and answers(fleet, GAMMA, 8004)


def test_nvcr_io_down_mid_pull_and_a_gated_repo_fail_only_their_hosts(fleet: Fleet, workdir: Path) -> None:
    alpha = fleet.hosts[ALPHA]
    # alpha pulls its NIM again, all of it: logged out, its container and image gone (a running container would
    # keep the layers, and a pull would need only the manifest)
    fleet.root(
        alpha,
        f"docker logout nvcr.io >/dev/null; docker rm -f spark-state-nim-fp8 >/dev/null 2>&1; "
        f"docker rmi -f {NIM} >/dev/null; true",
    )
    text = _with_gated_service_on_gamma(_state(kv=0.38))  # beta (still at 0.4) restarts trtllm-nvfp4
    marks = [host_clock(fleet, i) for i in range(3)]
    sim("registry", "down", "--after-blobs", "1")
    try:
        proc = deploy(workdir, text)
    finally:
        sim("registry", "up")
    log = proc.stdout
    assert proc.returncode != 0 and "Traceback" not in log
    assert f"pull {NIM} failed after 4 attempt(s) over" in log and "attempt 1 failed" in log, log[-4000:]
    assert _failed(log, "alpha")
    assert f"download {GATED}@main: {GATED} is gated (401) and no HF_TOKEN is set" in log and _failed(log, "gamma")
    assert not _failed(log, "beta")
    assert "spark-state-trtllm-nvfp4" in started(fleet, BETA, marks[BETA]) and answers(fleet, BETA, 8004)


def test_a_foreign_process_on_a_port_and_a_disk_too_small_for_an_image_fail_only_their_hosts(
    fleet: Fleet, workdir: Path
) -> None:
    """gamma: something else holds its service port. beta: docker keeps images on a file system that holds the
    Triton image's download once, not the twice a pull needs; preflight says so from the registry's manifest and
    beta pulls nothing. alpha takes the change."""
    from spark_rehearsal import images, rootfs
    from spark_rehearsal.layout import Layout

    beta, gamma = fleet.hosts[BETA], fleet.hosts[GAMMA]
    cache = Layout.default().cache / "layers"
    triton = next(i for i in images.IMAGES if i.ref == "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3")
    download = (
        images.base_layer(rootfs.rootfs_dir(Layout.default(), "image"), cache).size
        + images.standin_layer(triton, cache).size
    )
    fleet.root(gamma, f"systemctl stop spark-state-trtllm-nvfp4.service && {FOREIGN}")
    fleet.root(
        beta,
        "systemctl stop docker.socket docker.service && "
        f"mount -t tmpfs -o size={int(download * 1.2)} tmpfs /var/lib/docker && "
        "systemctl start docker.socket docker.service",
    )
    marks = [host_clock(fleet, i) for i in range(3)]
    try:
        proc = deploy(workdir, _state(kv=0.35))
        beta_pulls = [e for e in events(fleet, BETA, marks[BETA]) if e.startswith("image pull")]
    finally:
        fleet.root(gamma, "kill $(cat /root/foreign.pid); rm -f /root/foreign.pid")
        fleet.root(
            beta,
            "systemctl stop docker.socket docker.service && umount /var/lib/docker && "
            "systemctl start docker.socket docker.service",
        )
    log = proc.stdout
    assert proc.returncode != 0 and "Traceback" not in log
    assert "port 8004 (service trtllm-nvfp4) is already used by something spark-state does not manage" in log
    assert re.search(
        r"/var/lib/docker has [\d.]+ MB free; this run needs about [\d.]+ MB there \(image triton-25\.12 "
        r"\([\d.]+ MB download\)",
        log,
    ), log[-3000:]
    assert _failed(log, "gamma") and _failed(log, "beta") and not _failed(log, "alpha") and beta_pulls == []
    assert "spark-state-trtllm-nvfp4" in started(fleet, ALPHA, marks[ALPHA])  # alpha pulled its NIM and took it

    # the faults gone, one deploy brings everyone to the state; nothing was lost on the way
    proc = deploy(workdir, _state())
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert all(answers(fleet, i, 8004) for i in range(3)) and answers(fleet, ALPHA, 8000)
    code, report = drift(workdir, _state())
    assert (code, drifted(report)) == (0, set())
