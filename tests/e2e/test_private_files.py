"""Secrets handled like credentials, on the rehearsal fleet: a new secret reaches every host's env file
(0600, root, in a 0700 directory put back to 0700 when someone loosened it) without ever being in an argv, a
file others can read (pyinfra's upload staging in /tmp included), pyinfra's output at -vvv, `plan --json`,
drift's report or the bench results; env files nothing uses any more are removed."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Fleet
from e2e_helpers import ALPHA, deploy, drift, drifted, state_text

SECRETS = "/etc/spark-state/secrets"
ENV_FILE = f"{SECRETS}/trtllm-nvfp4.env"
SAMPLER = "/root/argv-samples.log"


def _with_secret(text: str) -> str:
    with_secret = text.replace(
        "kv_cache_free_gpu_memory_fraction: 0.4,",
        "kv_cache_free_gpu_memory_fraction: 0.4, secrets: [SPARK_TEST_TOKEN], allow_secrets: [SPARK_TEST_TOKEN],",
    )
    assert with_secret != text
    return with_secret


def _copies(fleet: Fleet, index: int, value: str) -> str:
    """Files holding `value` where a copy could land (temp and home directories, /etc outside the secrets
    directory, logs and caches), as root sees the host. Docker's own container config is left out: a container's
    environment is docker's to keep (`docker inspect` shows it to whoever may talk to docker)."""
    where = "/tmp /var/tmp /home /root /etc /var/log /var/cache /var/lib/spark-state"
    return fleet.root(
        fleet.hosts[index],
        f"grep -rlsF --exclude-dir=secrets --exclude-dir=rollback --exclude-dir=engines "
        f"--exclude-dir=checkpoints -- {value} {where}; true",
        timeout=300,
    ).stdout


def test_a_new_secret_travels_like_a_credential_and_stale_env_files_go(
    fleet: Fleet, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = "sst_" + secrets.token_hex(16)
    text = _with_secret(state_text())
    host = fleet.hosts[ALPHA]
    # someone loosened spark-state's directory (its marker inside) and left the env files of things the state
    # no longer has
    for index in range(3):
        fleet.root(
            fleet.hosts[index],
            f"install -d -m 755 {SECRETS} && chmod 755 {SECRETS} && touch {SECRETS}/.spark-state-owned && "
            f"printf 'OLD=1\\n' > {SECRETS}/retired-chat.env && printf 'HF_TOKEN=x\\n' > {SECRETS}/checkpoint-retired.env",
        )
    fleet.root(
        host,
        f"rm -f {SAMPLER}; nohup sh -c 'while [ ! -e /root/stop-sampling ]; do ps -eo args >> {SAMPLER}; "
        "sleep 0.02; done' >/dev/null 2>&1 &",
    )
    try:
        proc = deploy(workdir, text, "-vvv", env={"SPARK_TEST_TOKEN": value})
    finally:
        fleet.root(host, "touch /root/stop-sampling; sleep 0.2; rm -f /root/stop-sampling")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert value not in proc.stdout  # commands, their stdin and output at -vvv
    assert "write-private" in proc.stdout
    samples = fleet.root(host, f"cat {SAMPLER}; rm -f {SAMPLER}").stdout
    assert "write-private" in samples or "spark_host.py" in samples, "the sampler saw the deploy run"
    assert value not in samples

    for index in range(3):
        root = fleet.hosts[index]
        listing = fleet.root(root, f"stat -c '%a %U %n' {SECRETS} {ENV_FILE}").stdout.split("\n")
        assert listing[:2] == [f"700 root {SECRETS}", f"600 root {ENV_FILE}"]
        assert f"SPARK_TEST_TOKEN={value}" in fleet.root(root, f"cat {ENV_FILE}").stdout
        left = fleet.root(root, f"ls -A {SECRETS}").stdout.split()
        assert "retired-chat.env" not in left and "checkpoint-retired.env" not in left
        assert not [n for n in left if n.endswith(".tmp")], left  # no temp file left beside them
        assert _copies(fleet, index, value) == ""

    env = {**os.environ, "SPARK_TEST_TOKEN": value, "SPARK_STATE_HOME": str(workdir / "home")}
    state = workdir / "secret-state.yaml"
    state.write_text(text)
    plan = subprocess.run(
        [str(Path(sys.executable).parent / "spark-state"), "plan", str(state), "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plan.returncode == 0 and "SPARK_TEST_TOKEN" in plan.stdout and value not in plan.stdout + plan.stderr
    monkeypatch.setenv("SPARK_TEST_TOKEN", value)  # drift compares the env files' hashes, never their text
    code, report = drift(workdir, text)
    assert (code, drifted(report)) == (0, set()) and value not in json.dumps(report)
    history = subprocess.run(["grep", "-rlsF", "--", value, str(workdir / "home")], capture_output=True, text=True)
    assert history.stdout == ""  # bench results and baselines

    # the secret goes again: its line leaves every env file
    proc = deploy(workdir, state_text())
    assert proc.returncode == 0, proc.stdout[-4000:]
    for index in range(3):
        assert value not in fleet.root(fleet.hosts[index], f"cat {SECRETS}/*.env; true").stdout


def test_a_secrets_directory_spark_state_did_not_create_is_refused_and_left_alone(fleet: Fleet, workdir: Path) -> None:
    """paths.secrets naming someone else's directory (as /etc/profile.d or /etc/ssl/certs would be): preflight
    refuses the host before anything changes; the directory is not chmodded, written into or cleaned."""
    foreign = "/etc/someone-elses"
    host = fleet.hosts[ALPHA]
    fleet.root(host, f"install -d -m 755 {foreign} && printf 'umask 022\\n' > {foreign}/profile.sh")
    before = fleet.root(host, f"stat -c '%a %U' {foreign} && ls -A {foreign} && sha256sum {foreign}/*").stdout
    text = state_text() + f"paths: {{secrets: {foreign}}}\n"
    proc = deploy(workdir, text, "--limit", "alpha")
    assert proc.returncode != 0
    assert f"paths.secrets {foreign} exists, spark-state did not create it and holds profile.sh" in proc.stdout
    assert fleet.root(host, f"stat -c '%a %U' {foreign} && ls -A {foreign} && sha256sum {foreign}/*").stdout == before
    fleet.root(host, f"rm -rf {foreign}")
