"""Runs ON a Spark (python3, standard library only), uploaded by the deploy to HostPlan.helper_path: the small
programs the deploy's commands call, kept in one file rather than in shell strings.

    spark_host.py pull DOCKER REF                       docker pull, with progress lines while it runs
    spark_host.py trtllm-version DOCKER REF CACHE_DIR   print the TensorRT-LLM inside an image; remember it by id
    spark_host.py chat-template DIR MESSAGE             exit non-zero with MESSAGE when DIR's tokenizer has none
    spark_host.py engine-manifest BUILD FINGERPRINT INPUTS VERSION NAME   write an engine's completion manifest
    spark_host.py wait-healthy PORT TIMEOUT DOCKER CONTAINER PATH...   until every PATH answers 200 on
                                                        127.0.0.1:PORT from CONTAINER (running, publishing PORT)
    spark_host.py progress LABEL -- ARGV...             run ARGV, printing a line every PROGRESS_EVERY seconds
    spark_host.py docker-login DOCKER REGISTRY USER IMAGE HOST   `docker login`, the password on this stdin
    spark_host.py write-private PATH                    PATH := base64 on this stdin, atomically, 0600 in a 0700 dir

Progress lines go to stdout, one per event or interval, so a log captured to a file reads well: pyinfra prints
them as they arrive (the deploy runs these commands with their output shown).
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

TRTLLM_PROBE = "import importlib.metadata as m; print(m.version('tensorrt_llm'))"
PROGRESS_EVERY = float(os.environ.get("SPARK_STATE_PROGRESS_EVERY", "15"))
FOREIGN_GRACE_S = 10


def say(line):
    print(line, flush=True)


def clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# Seconds between pull attempts: a registry answering 5xx or dropping the connection usually recovers.
PULL_BACKOFF_S = tuple(float(s) for s in os.environ.get("SPARK_STATE_PULL_BACKOFF", "5,10,20").split(",") if s)
# What docker says when trying again cannot help: the name, the credentials or the disk are wrong.
OWNED_MARKER = ".spark-state-owned"  # on_host/probe.py reads the same name
PULL_FINAL = ("unauthorized", "denied", "not found", "manifest unknown", "no space left", "invalid reference")


def pull(docker, ref, local=None):
    """docker pull, tried again with backoff when the registry fails on the way (5xx, reset, timeout: dockerd
    retries a layer itself, not a manifest or a broken session); a refusal (unauthorized, unknown name, full
    disk) ends it at once. The last attempt's lines are printed when it gives up."""
    started = time.monotonic()
    for attempt in range(len(PULL_BACKOFF_S) + 1):
        code, tail = pull_once(docker, ref, started)
        if code == 0:
            break
        final = any(word in line.lower() for line in tail[-3:] for word in PULL_FINAL)
        if final or attempt == len(PULL_BACKOFF_S):
            sys.stderr.write("\n".join(tail) + "\n")
            why = tail[-1] if tail else f"exit {code}"
            sys.exit(
                f"pull {ref} failed after {attempt + 1} attempt(s) over {clock(time.monotonic() - started)}: {why}"
            )
        say(
            f"pull {ref}: attempt {attempt + 1} failed ({tail[-1] if tail else code}); again in "
            f"{PULL_BACKOFF_S[attempt]}s"
        )
        time.sleep(PULL_BACKOFF_S[attempt])
    if local and local != ref:  # pulled by digest (docker keeps no tag for it): name it as units use it
        subprocess.run(
            [docker, "tag", ref.split("@", 1)[0].rsplit(":", 1)[0] + "@" + ref.split("@", 1)[1], local], check=True
        )
    say(f"pull {ref}: done in {clock(time.monotonic() - started)}")


def pull_once(docker, ref, started):
    """One `docker pull`. Without a terminal it prints one line per layer event ("Pulling fs layer", "Download
    complete", "Pull complete"); those become layer counts with elapsed time, every interval and at each
    completion. Returns its exit code and last lines."""
    layers, downloaded, extracted = set(), set(), set()
    last = [0.0]

    def report(force=False):
        now = time.monotonic()
        if force or now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            total = len(layers) or 1
            say(
                f"pull {ref}: {len(downloaded)}/{len(layers)} layers downloaded, {len(extracted)}/{len(layers)} "
                f"extracted ({100 * len(extracted) // total}%), {clock(now - started)}"
            )

    proc = subprocess.Popen([docker, "pull", ref], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        layer, _, event = line.partition(": ")
        if event in ("Pulling fs layer", "Waiting", "Already exists"):
            layers.add(layer)
        if event in ("Download complete", "Already exists"):
            downloaded.add(layer)
        if event in ("Pull complete", "Already exists"):
            extracted.add(layer)
            report(force=True)
        else:
            report()
    return proc.wait(), tail


def trtllm_version(docker, ref, cache_dir):
    image_id = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "python3", ref, "-c", TRTLLM_PROBE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    version = out.splitlines()[-1] if out else ""
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, image_id.replace(":", "-")), "w") as f:
        f.write(version)
    say(version)


def chat_template(directory, message):
    if os.path.exists(os.path.join(directory, "chat_template.jinja")):
        return
    with open(os.path.join(directory, "tokenizer_config.json")) as f:
        if json.load(f).get("chat_template"):
            return
    sys.exit("spark-state: " + message)


def engine_manifest(build, fingerprint, inputs, version, name):
    """The engine's completion manifest: its fingerprint, inputs and the size of every engine file."""
    files = {}
    for base, _, names in os.walk(os.path.join(build, "engine")):
        for entry in names:
            path = os.path.join(base, entry)
            files[os.path.relpath(path, build)] = os.path.getsize(path)
    manifest = {
        "kind": "engine",
        "fingerprint": fingerprint,
        "inputs": json.loads(inputs),
        "trtllm_version": version,
        "files": files,
    }
    with open(os.path.join(build, name), "w") as f:
        json.dump(manifest, f, indent=2)


def serving_container(docker, container, port):
    """None when CONTAINER runs and publishes PORT on the host; else what is wrong, in docker's words."""
    proc = subprocess.run(
        [docker, "inspect", "-f", "{{.State.Status}} {{json .HostConfig.PortBindings}}", container],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return f"container {container} does not exist"
    status, _, bindings = proc.stdout.strip().partition(" ")
    published = {b.get("HostPort") for spec in (json.loads(bindings or "null") or {}).values() for b in spec or []}
    if status != "running":
        return f"container {container} is {status}"
    if str(port) not in published:
        return f"container {container} does not publish port {port}"
    return None


def wait_healthy(port, timeout, docker, container, *paths):
    """Until PATHS answer 200 on PORT and the answer can only be CONTAINER's: it runs and publishes PORT. A port
    that keeps answering while the container is not running (FOREIGN_GRACE_S: not a restart in between) is held
    by another process: that fails the wait before its timeout."""
    started = time.monotonic()
    deadline, last, foreign_since = started + float(timeout), started, None
    while time.monotonic() < deadline:
        answers = {}
        for path in paths:
            try:
                answers[path] = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3).status
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, 503 while loading: "not yet"
                answers[path] = getattr(exc, "code", type(exc).__name__)
        if all(code == 200 for code in answers.values()):
            wrong = serving_container(docker, container, port)
            if wrong is None:
                say(f"port {port}: healthy after {clock(time.monotonic() - started)}")
                return
            foreign_since = foreign_since or time.monotonic()
            if time.monotonic() - foreign_since >= FOREIGN_GRACE_S:  # a container between restarts is not one
                sys.exit(
                    f"port {port} answers, but not from spark-state: {wrong}; another process holds the port "
                    f"(`ss -ltnp 'sport = :{port}'` names it)"
                )
        else:
            foreign_since = None
        if time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            seen = ", ".join(f"{p} {c}" for p, c in answers.items())
            say(
                f"port {port}: waiting for {' and '.join(paths)} ({seen}), {clock(last - started)} of {clock(float(timeout))}"
            )
        time.sleep(1)
    sys.exit(f"port {port}: {' and '.join(paths)} did not answer 200 within {timeout} s")


def progress(label, argv):
    """Run argv with its output kept (the last lines are printed when it fails), one progress line per interval
    naming the elapsed time and the child's latest output line."""
    started = time.monotonic()
    latest, tail = [""], []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def read():
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                latest[0] = line[:160]
                tail.append(line)
                del tail[:-40]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while proc.poll() is None:
        reader.join(PROGRESS_EVERY)
        if proc.poll() is None:
            say(f"{label}: {clock(time.monotonic() - started)} elapsed; {latest[0]}")
    reader.join()
    if proc.returncode != 0:
        sys.stderr.write("\n".join(tail) + "\n")
        sys.exit(f"{label}: failed after {clock(time.monotonic() - started)} (exit {proc.returncode})")
    say(f"{label}: done in {clock(time.monotonic() - started)}; {latest[0]}")


def docker_login(docker, registry, user, image, host):
    """docker login with the password passed from our stdin to docker's (--password-stdin): never in an argv, never
    in a file. docker keeps the credential in root's ~/.docker/config.json, as `docker login` always does."""
    password = sys.stdin.read().strip()
    proc = subprocess.run(
        [docker, "login", registry, "--username", user, "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"{image} on {host}: docker login {registry} refused the key ({detail[0]}) — check NGC_API_KEY")
    say(f"logged in to {registry} as {user} for {image}")


def write_private(path):
    """A secret file written as credentials are: the content arrives on stdin (never an argv, never a temp file
    outside its directory), goes into a 0600 file created exclusively beside PATH, is flushed to disk, then renamed
    over PATH, so readers see the old file or the new one and nobody else ever sees either. The directory is made
    0700 and marked as spark-state's (OWNED_MARKER), and put back to 0700 when someone loosened it — only a
    directory spark-state made: one it did not is refused, unless nothing else can be using it (0700, env files
    only: an older spark-state's), which it then marks."""
    import tempfile

    content = base64.b64decode(sys.stdin.buffer.read().strip(), validate=True)  # one line: pyinfra ends stdin lines
    directory = os.path.dirname(path)
    marker = os.path.join(directory, OWNED_MARKER)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    elif not os.path.isfile(marker):
        others = [n for n in os.listdir(directory) if not (n.endswith(".env") or n.startswith(".spark-state-"))]
        if others or os.stat(directory).st_mode & 0o777 != 0o700:
            sys.exit(f"{directory} exists and spark-state did not create it: not writing, chmodding or cleaning it")
    if not os.path.isfile(marker):
        with open(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("spark-state keeps its env files here\n")
    if os.stat(directory).st_mode & 0o777 != 0o700:
        os.chmod(directory, 0o700)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".spark-state-", suffix=".tmp")  # O_EXCL, mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def main(argv):
    command, args = argv[0], argv[1:]
    if command == "progress":
        split = args.index("--")
        progress(" ".join(args[:split]), args[split + 1 :])
        return
    handlers = {
        "pull": pull,
        "trtllm-version": trtllm_version,
        "chat-template": chat_template,
        "engine-manifest": engine_manifest,
        "wait-healthy": wait_healthy,
        "docker-login": docker_login,
        "write-private": write_private,
    }
    handlers[command](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
