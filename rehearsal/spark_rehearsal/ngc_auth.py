"""The rehearsal registry's front door, answering as nvcr.io, Docker Hub and ghcr.io do: Docker registry token
authentication, one registry per Host name (`REGISTRIES`), each kept under its own prefix in the one backend.

Modelled on NGC (docs.nvidia.com/ngc, "Accessing NGC container images": `docker login nvcr.io`, username
`$oauthtoken`, password the NGC API key) and on the Docker Registry token authentication specification
(distribution/distribution docs/spec/auth/token.md):
- `GET /v2/` without a token answers 401 with `WWW-Authenticate: Bearer realm="https://nvcr.io/proxy_auth",...`,
  as nvcr.io does; clients then ask the realm for a token for `repository:NAME:pull`.
- The realm gives anonymous clients tokens for public repositories (`nvidia/...`) only. `nim/...` needs Basic
  credentials `$oauthtoken:<NGC API key>`; without them, or with a wrong key, it answers 401 — the stricter
  reading of NGC, whose NIM repositories need an entitled key.
- Docker Hub (`registry-1.docker.io`, realm https://auth.docker.io/token, service registry.docker.io) and ghcr.io
  (realm https://ghcr.io/token, service ghcr.io) give anonymous pull tokens for public repositories; every
  repository the fleet publishes there is public (lmsysorg/sglang, ggml-org/llama.cpp are). A token names the
  registry it was given for and is refused by the others.
- Only pulls (GET/HEAD) pass; pushes are refused (the fleet publishes to the registry behind this door).
Requests with a valid token are forwarded to the plain registry on the loopback interface, streamed.
- Outages on purpose (`spark-rehearsal registry down [--after-blobs K]`): the faults file says when the registry
  goes away; from then on every /v2/ request answers 503 with distribution's UNAVAILABLE error, as a registry
  behind a failing load balancer does, until `sim registry up`.

    SPARK_SIM_NGC_KEY=KEY python -m spark_rehearsal.ngc_auth --listen ADDR:443 --cert C --key K --backend HOST:PORT
        [--faults FILE]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import ssl
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OAUTH_USER = "$oauthtoken"


@dataclass(frozen=True)
class Registry:
    host: str  # the name docker pulls from
    realm: str  # its token service
    service: str
    backend_prefix: str  # where its repositories live in the backend registry
    public: tuple[str, ...] | None  # repository prefixes anonymous clients may pull; None: all
    key_required: bool = False  # credentials are the NGC key (nvcr.io)

    @property
    def token_host(self) -> str:
        return urlsplit(self.realm).hostname or self.host

    @property
    def token_path(self) -> str:
        return urlsplit(self.realm).path


REGISTRIES = (
    # anonymous pulls of nvidia/...; nim/... needs the key
    Registry("nvcr.io", "https://nvcr.io/proxy_auth", "ngc", "", ("nvidia/",), key_required=True),
    Registry("registry-1.docker.io", "https://auth.docker.io/token", "registry.docker.io", "docker.io/", None),
    Registry("ghcr.io", "https://ghcr.io/token", "ghcr.io", "ghcr.io/", None),
)
DOCKER_HUB = "docker.io"  # the name in an image reference; docker pulls it from registry-1.docker.io


def registry_for(name: str) -> Registry:
    """The registry an image reference names (docker.io for Docker Hub)."""
    name = "registry-1.docker.io" if name == DOCKER_HUB else name
    return next(r for r in REGISTRIES if r.host == name)


def door_names() -> list[str]:
    """Every host name the door answers (certificate SANs, the hosts' /etc/hosts)."""
    names: list[str] = []
    for r in REGISTRIES:
        names += [n for n in (r.host, r.token_host) if n not in names]
    return names


TOKEN_SECONDS = 300
REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+)/(manifests|blobs|tags)/")
FORWARDED_HEADERS = ("Accept", "Range", "If-None-Match")
RETURNED_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Docker-Content-Digest",
    "ETag",
    "Content-Range",
    "Accept-Ranges",
    "Docker-Distribution-API-Version",
)


class Door:
    def __init__(self, backend: str, ngc_key: str, faults: str | None = None) -> None:
        self.backend = backend
        self.ngc_key = ngc_key
        self.secret = secrets.token_bytes(32)
        self.faults = faults
        self.blobs_served: dict[str, int] = {}  # per outage id: blob requests answered before it began

    def unavailable(self, path: str) -> bool:
        """Whether the registry is down for this request (the faults file, read each time: cheap and current)."""
        try:
            with open(self.faults or "") as f:
                fault = json.load(f)
        except (OSError, ValueError):
            return False
        outage = str(fault.get("id"))
        served = self.blobs_served.setdefault(outage, 0)
        if served < int(fault.get("after_blobs", 0)):
            if "/blobs/" in path:
                self.blobs_served[outage] = served + 1
            return False
        return True

    def token(self, registry: Registry, scopes: list[str]) -> str:
        claims = {"aud": registry.service, "scopes": scopes, "exp": time.time() + TOKEN_SECONDS}
        body = base64.urlsafe_b64encode(json.dumps(claims).encode())
        return body.decode() + "." + hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def scopes(self, registry: Registry, token: str) -> list[str] | None:
        body, _, mac = token.partition(".")
        if not hmac.compare_digest(mac, hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()):
            return None
        claims = json.loads(base64.urlsafe_b64decode(body))
        valid = claims["exp"] > time.time() and claims.get("aud") == registry.service
        return claims["scopes"] if valid else None

    def credentials_ok(self, header: str | None) -> bool | None:
        """None without Basic credentials; otherwise whether they are $oauthtoken and the NGC key."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == OAUTH_USER and hmac.compare_digest(password, self.ngc_key)


def handler(door: Door) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # the fleet's log stays quiet
            return

        def _json(self, status: int, document: dict[str, object], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            for key, value in {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                "Docker-Distribution-API-Version": "registry/2.0",
                **(headers or {}),
            }.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _host(self) -> str:
            return (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()

        def _challenge(self, registry: Registry, scope: str | None = None) -> None:
            value = f'Bearer realm="{registry.realm}",service="{registry.service}"' + (
                f',scope="{scope}"' if scope else ""
            )
            self._json(
                401,
                {
                    "errors": [
                        {
                            "code": "UNAUTHORIZED",
                            "message": "authentication required",
                            "detail": [{"Type": "repository", "Name": scope or "", "Action": "pull"}],
                        }
                    ]
                },
                {"WWW-Authenticate": value},
            )

        def _token_endpoint(self, registry: Registry) -> None:
            query = parse_qs(urlsplit(self.path).query)
            wanted = [s for scope in query.get("scope", []) for s in scope.split(" ") if s]
            creds = door.credentials_ok(self.headers.get("Authorization")) if registry.key_required else None
            if creds is False:
                self._json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid NGC API key"}]})
                return
            granted = []
            for scope in wanted:
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind != "repository" or "pull" not in actions.split(","):
                    continue
                if creds or registry.public is None or name.startswith(registry.public):
                    granted.append(f"repository:{name}:pull")
                else:
                    self._json(
                        401,
                        {"errors": [{"code": "UNAUTHORIZED", "message": f"access to {name} requires an NGC API key"}]},
                    )
                    return
            token = door.token(registry, granted)
            self._json(200, {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS})

        def _registry(self, registry: Registry) -> None:
            auth = self.headers.get("Authorization") or ""
            scopes = door.scopes(registry, auth[7:]) if auth.startswith("Bearer ") else None
            path = urlsplit(self.path).path
            match = REPOSITORY_PATH.match(path)
            if scopes is None:
                self._challenge(registry, f"repository:{match['name']}:pull" if match else None)
                return
            if match and f"repository:{match['name']}:pull" not in scopes:
                self._challenge(registry, f"repository:{match['name']}:pull")
                return
            self._forward(self.path.replace("/v2/", f"/v2/{registry.backend_prefix}", 1) if match else self.path)

        def _forward(self, path: str) -> None:
            host, _, port = door.backend.partition(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=300)
            # every Accept line the client sent (docker sends one per manifest type it reads): a registry answers
            # the best type the client accepts, schema 1 only when nothing else is accepted
            headers = {k: ", ".join(v) for k in FORWARDED_HEADERS if (v := self.headers.get_all(k))}
            connection.request(self.command, path, headers=headers)
            answer = connection.getresponse()
            self.send_response(answer.status)
            for key in RETURNED_HEADERS:
                if (value := answer.getheader(key)) is not None:
                    self.send_header(key, value)
            chunked = answer.getheader("Content-Length") is None and self.command != "HEAD"
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while self.command != "HEAD" and (block := answer.read(1 << 20)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            connection.close()

        def do_GET(self) -> None:
            host, path = self._host(), urlsplit(self.path).path
            registry = next((r for r in REGISTRIES if r.host == host), None)
            realm = next((r for r in REGISTRIES if r.token_host == host and r.token_path == path), None)
            if path.startswith("/v2/") and registry and door.unavailable(self.path):
                self._json(503, {"errors": [{"code": "UNAVAILABLE", "message": "service unavailable"}]})
            elif realm is not None:
                self._token_endpoint(realm)
            elif path.startswith("/v2/") and registry is not None:
                self._registry(registry)
            else:
                self._json(404, {"errors": [{"code": "NOT_FOUND"}]})

        do_HEAD = do_GET

        def _denied(self) -> None:
            self._json(401, {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]})

        do_POST = do_PUT = do_PATCH = do_DELETE = _denied

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--faults", help="a JSON file saying when the registry is down (sim registry down)")
    args = parser.parse_args()
    ngc_key = os.environ["SPARK_SIM_NGC_KEY"]  # not in argv: any local user could read it there
    address, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((address, int(port)), handler(Door(args.backend, ngc_key, args.faults)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
