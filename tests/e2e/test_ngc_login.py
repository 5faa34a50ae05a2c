"""NIM images come from nvcr.io as NGC serves them: the deploy logs the host's docker in (the key on stdin, in no
argv and no pyinfra output), only when a NIM image must be pulled; a wrong key fails that host alone, clearly."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import Fleet
from e2e_helpers import ALPHA, deploy, drift, drifted, state_text

from spark_rehearsal.registry import NGC_KEY

NIM = "nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest"
SAMPLER = "/root/argv-samples.log"


def _forget_the_nim_image(fleet: Fleet) -> None:
    """alpha must pull the NIM again: logged out, the image untagged (its running container keeps serving)."""
    fleet.root(fleet.hosts[ALPHA], f"docker logout nvcr.io >/dev/null; docker rmi -f {NIM} >/dev/null; true")


def test_a_wrong_key_fails_only_the_host_that_must_pull_a_nim(fleet: Fleet, workdir: Path) -> None:
    text = state_text()
    assert deploy(workdir, text).returncode == 0
    _forget_the_nim_image(fleet)
    proc = deploy(workdir, text, env={"NGC_API_KEY": "not-the-key"})
    assert proc.returncode != 0
    assert f"{NIM} on alpha: docker login nvcr.io refused the key" in proc.stdout and "check NGC_API_KEY" in proc.stdout
    for name in ("beta", "gamma"):
        assert not re.search(rf"\[{name}\]\s+Error", proc.stdout)


def test_the_deploy_logs_in_with_the_key_on_stdin_never_in_argv_or_output(fleet: Fleet, workdir: Path) -> None:
    text = state_text()
    _forget_the_nim_image(fleet)
    host = fleet.hosts[ALPHA]
    # every 20 ms, every process's argv on the host, for as long as the deploy runs
    fleet.root(
        host,
        f"rm -f {SAMPLER}; nohup sh -c 'while [ ! -e /root/stop-sampling ]; do ps -eo args >> {SAMPLER}; "
        "sleep 0.02; done' >/dev/null 2>&1 &",
    )
    try:
        proc = deploy(workdir, text, "-vvv")
    finally:
        fleet.root(host, "touch /root/stop-sampling; sleep 0.2; rm -f /root/stop-sampling")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "docker-login" in proc.stdout and "logged in to nvcr.io" in proc.stdout
    assert NGC_KEY not in proc.stdout  # at -vvv: commands, their input and output
    samples = fleet.root(host, f"cat {SAMPLER}").stdout
    assert "docker-login" in samples or "docker login" in samples, "the sampler saw the login run"
    assert NGC_KEY not in samples
    assert fleet.root(host, f"docker image inspect {NIM} >/dev/null").returncode == 0
    code, report = drift(workdir, text)
    assert (code, drifted(report)) == (0, set())
