"""`spark-state pin` without a fleet: what is unpinned, the in-place rewrite (comments and layout kept), the
resolver against a real local HTTP registry and hub, and the plan that makes a pinned state equal to an unpinned
one serving the same bits."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import EXAMPLE_STATE, REPO

from spark_state import pin
from spark_state.desired.loader import load_state, load_state_text
from spark_state.errors import ResolveError
from spark_state.observe.found import found_for
from spark_state.observe.observation import observe
from spark_state.on_host import resolve
from spark_state.on_host.probe import Snapshot
from spark_state.plan.host_plan import plan_host
from spark_state.plan.images import local_ref, ref_digest

DIGEST = "sha256:" + "ab" * 32
SHA = "0123456789abcdef0123456789abcdef01234567"


def _pinned(pins: list[pin.Pin]) -> list[pin.Pin]:
    return [
        pin.Pin(
            p.kind, p.name, p.path, p.current, p.lookup, p.repo, f"{p.current}@{DIGEST}" if p.kind == "image" else SHA
        )
        for p in pins
    ]


def test_the_example_pins_in_place_keeping_every_comment_and_line(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(EXAMPLE_STATE.read_text())
    pins = pin.pins_for(path)
    assert {(p.kind, p.name) for p in pins} >= {("image", "triton-25.12"), ("revision", "llama31-8b-fp8")}
    text = pin.pin_file(path, _pinned(pins))
    before, after = EXAMPLE_STATE.read_text().splitlines(), text.splitlines()
    assert len(before) == len(after)
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(changed) == len(pins)
    for b, a in changed:  # only the pinned values, each on its own line; comments elsewhere untouched
        assert a.startswith(b.split(":", 1)[0])
    assert [line for line in before if line.lstrip().startswith("#")] == [
        line for line in after if line.lstrip().startswith("#")
    ]
    state = load_state(path).state
    assert all("@sha256:" in i.ref for i in state.images.values())
    assert all(c.revision == SHA for c in state.checkpoints.values())
    assert pin.pins_for(path) == []  # a second pin --check has nothing to do


def test_flow_and_quoted_values_and_the_old_revision_as_a_comment() -> None:
    text = (
        "images:\n"
        "  t: nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3   # build image\n"
        '  n: {ref: "nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest", size_gb: 20}\n'
        "checkpoints:\n"
        "  a:\n"
        "    repo: nvidia/Llama-3.1-8B-Instruct-FP8\n"
        "    revision: main\n"
        "  b: {repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, revision: 'v1'}\n"
        "hosts: {spark-01: {address: 10.0.0.1}}\n"
    )
    pins = pin.unpinned(load_state_text(text).state)
    out = pin.rewrite(text, _pinned(pins)).splitlines()
    assert out[1] == f"  t: nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3@{DIGEST}   # build image"
    assert out[2] == f'  n: {{ref: "nvcr.io/nim/meta/llama-3.1-8b-instruct-dgx-spark:latest@{DIGEST}", size_gb: 20}}'
    assert out[6] == f"    revision: {SHA}  # main"
    assert out[7] == f"  b: {{repo: nvidia/Llama-3.1-8B-Instruct-NVFP4, revision: '{SHA}'}}"


def test_check_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(EXAMPLE_STATE.read_text())
    proc = subprocess.run(
        [sys.executable, "-m", "spark_state.cli", "pin", str(path), "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "triton-25.12" in proc.stdout and "llama31-8b-fp8" in proc.stdout
    assert path.read_text() == EXAMPLE_STATE.read_text()


def test_local_names_of_pinned_references() -> None:
    assert (
        local_ref(f"nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3@{DIGEST}")
        == "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"
    )
    assert local_ref(f"registry:5000/x@{DIGEST}") == f"registry:5000/x@{DIGEST}"  # no tag: used by digest
    assert local_ref("registry:5000/x:1") == "registry:5000/x:1"
    assert ref_digest(f"a/b:1@{DIGEST}") == DIGEST and ref_digest("a/b:1") is None
    assert resolve.split_ref("ubuntu") == ("registry-1.docker.io", "library/ubuntu", "latest")
    assert resolve.split_ref("localhost:5000/a/b:2") == ("localhost:5000", "a/b", "2")
    assert resolve.split_ref(f"nvcr.io/nim/x:latest@{DIGEST}") == ("nvcr.io", "nim/x", "latest")


def test_a_pinned_state_plans_the_same_units_and_engines_as_the_unpinned_one_for_the_same_bits() -> None:
    unpinned = load_state(EXAMPLE_STATE).state
    images = {n: i.model_copy(update={"ref": f"{i.ref}@{DIGEST}"}) for n, i in unpinned.images.items()}
    checkpoints = {n: c.model_copy(update={"revision": SHA}) for n, c in unpinned.checkpoints.items()}
    pinned = unpinned.model_copy(update={"images": images, "checkpoints": checkpoints})
    host = next(iter(unpinned.hosts))
    plain, pinned_plan = plan_host(unpinned, host), plan_host(pinned, host)
    # the host holds each commit under `main`, where the unpinned state downloaded it
    snapshot = Snapshot.parse(
        {
            "checkpoint_copies": {
                c.name: [{"dir": "main", "repo": c.repo, "revision": "main", "sha": SHA}] for c in plain.checkpoints
            }
        }
    )
    assert found_for(pinned_plan, snapshot).held_under == {c.name: "main" for c in plain.checkpoints}
    replanned = observe(pinned, host, lambda request: snapshot).plan
    assert [s.unit_text for s in replanned.services] == [s.unit_text for s in plain.services]
    assert [e.fingerprint for e in replanned.engines] == [e.fingerprint for e in plain.engines]
    assert [i.digest for i in replanned.images] == [DIGEST] * len(plain.images)
    # another commit under `main` is not the pinned one: the pinned plan keeps its own directory
    other = Snapshot.parse(
        {
            "checkpoint_copies": {
                c.name: [{"dir": "main", "repo": c.repo, "revision": "main", "sha": "f" * 40}]
                for c in plain.checkpoints
            }
        }
    )
    assert found_for(pinned_plan, other).held_under == {}


class _Registry(BaseHTTPRequestHandler):
    """A registry that wants a Bearer token (from its realm, Basic credentials for `private/`), and a hub."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/token"):
            private = "private" in self.path
            if private and self.headers.get("Authorization") != "Basic dXNlcjprZXk=":  # user:key
                self._answer(401, {})
                return
            self._answer(200, {"token": "t"})
        elif self.path.startswith("/api/models/org/model/revision/"):
            rev = self.path.rsplit("/", 1)[-1]
            self._answer(200, {"sha": SHA}) if rev in ("main", SHA) else self._answer(404, {"error": "no"})
        else:
            self._answer(404, {})

    def do_HEAD(self) -> None:
        port = self.server.server_address[1]
        if self.headers.get("Authorization") != "Bearer t":
            self._answer(401, {}, {"WWW-Authenticate": f'Bearer realm="https://127.0.0.1:{port}/token",service="r"'})
        elif self.path.endswith("/manifests/1"):
            self._answer(200, {}, {"Docker-Content-Digest": DIGEST})
        else:
            self._answer(404, {})

    def _answer(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    # the resolver speaks https to registries; this one is plain http on loopback
    monkeypatch.setattr(resolve, "_request", _plain_http(resolve._request, address))
    yield address
    server.shutdown()


def _plain_http(request, address):  # type: ignore[no-untyped-def]
    def wrapped(url, method="GET", headers=None, context=None):  # type: ignore[no-untyped-def]
        return request(url.replace(f"https://{address}", f"http://{address}"), method, headers, None)

    return wrapped


def test_the_resolver_follows_the_token_challenge_and_reads_the_digest(registry: str) -> None:
    answer = resolve.resolve(
        {
            "images": [f"{registry}/public/a:1", f"{registry}/private/a:1", f"{registry}/public/a:2"],
            "credentials": {registry: ["user", "key"]},
            "revisions": [["org/model", "main"], ["org/model", "nope"]],
            "hub": f"http://{registry}",
        }
    )
    assert answer["images"][f"{registry}/public/a:1"] == {"digest": DIGEST}
    assert answer["images"][f"{registry}/private/a:1"] == {"digest": DIGEST}
    assert "has no tag 2" in answer["images"][f"{registry}/public/a:2"]["error"]
    assert answer["revisions"]["org/model@main"] == {"sha": SHA}
    assert "no revision 'nope'" in answer["revisions"]["org/model@nope"]["error"]
    without = resolve.resolve({"images": [f"{registry}/private/a:1"]})
    assert "refused a pull token" in without["images"][f"{registry}/private/a:1"]["error"]
    pins = [pin.Pin("image", "x", ("images", "x"), f"{registry}/private/a:1", f"{registry}/private/a:1")]
    with pytest.raises(ResolveError, match="could not pin: image x"):
        pin.resolved(pins, without)


def test_registry_credentials_go_only_to_an_https_realm_of_the_registry() -> None:
    assert resolve.may_send_credentials("nvcr.io", "https://nvcr.io/proxy_auth")
    assert resolve.may_send_credentials("NVCR.IO", "https://nvcr.io/proxy_auth")
    assert resolve.may_send_credentials("registry-1.docker.io", "https://auth.docker.io/token")
    assert resolve.may_send_credentials("127.0.0.1:5000", "https://127.0.0.1:5001/token")
    assert not resolve.may_send_credentials("nvcr.io", "http://nvcr.io/proxy_auth")
    assert not resolve.may_send_credentials("nvcr.io", "https://collector.example/token")
    assert not resolve.may_send_credentials("nvcr.io", "https://nvcr.io.example/token")
    assert not resolve.may_send_credentials("127.0.0.1:5000", "https://127.0.0.2/token")


def test_authorization_is_dropped_on_a_redirect_to_another_host() -> None:
    """urllib would carry it along; a registry or hub redirecting elsewhere gets no credential sent there."""
    seen: dict[str, str | None] = {}

    class Target(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen[self.path] = self.headers.get("Authorization")
            if self.path == "/start":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.2:{self.server.server_address[1]}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("0.0.0.0", 0), Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, _, _ = resolve._request(
            f"http://127.0.0.1:{server.server_address[1]}/start", headers={"Authorization": "Bearer secret"}
        )
    finally:
        server.shutdown()
    assert status == 200
    assert seen == {"/start": "Bearer secret", "/elsewhere": None}
