"""Resolves image tags to registry digests and Hugging Face revisions to commit shas (python3, stdlib only).

Runs where the registry and the hub can be reached: on the control machine (imported), or on a Spark
(`python3 -c PROGRAM`, the request as JSON on stdin: credentials never travel in an argv). Answers one JSON
document: {"images": {ref: {"digest"} | {"error"}}, "revisions": {"repo@rev": {"sha"} | {"error"}}}.

- Registry: the Docker Registry HTTP API v2 / OCI distribution spec — `HEAD /v2/NAME/manifests/TAG` with the
  manifest-list and index media types accepted answers `Docker-Content-Digest`, the digest `docker pull` records
  as the image's RepoDigest. A 401 names a Bearer realm (docs.docker.com/registry/spec/auth/token): ask it for a
  `repository:NAME:pull` token, with Basic credentials when the request carries them for that registry (nvcr.io:
  `$oauthtoken` and the NGC API key). The registry's CA is trusted as docker trusts it:
  /etc/docker/certs.d/REGISTRY/ca.crt when present.
- Hub: `GET {HF_ENDPOINT}/api/models/REPO/revision/REV` answers the commit `sha` (huggingface_hub's
  `HfApi.model_info(repo, revision=...).sha`), with `Authorization: Bearer HF_TOKEN` when given.
"""

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)
DOCKER_HUB = "registry-1.docker.io"
TIMEOUT_S = 30


def split_ref(ref):
    """(registry, repository, tag) as docker reads a reference: the first component is a registry when it
    has a dot or a port or is localhost; otherwise Docker Hub (library/ for a single name)."""
    name = ref.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name if "/" in name else f"library/{name}"
    repository, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
    return registry, repository, tag or "latest"


def _context(registry):
    ca = f"/etc/docker/certs.d/{registry}/ca.crt"
    return ssl.create_default_context(cafile=ca) if os.path.exists(ca) else ssl.create_default_context()


class _SameHostAuthorization(urllib.request.HTTPRedirectHandler):
    """urllib carries every header of a request into its redirects; a credential goes to no other host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlparse(newurl).hostname != urllib.parse.urlparse(req.full_url).hostname:
            for name in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def _request(url, method="GET", headers=None, context=None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _SameHostAuthorization)
    try:
        with opener.open(request, timeout=TIMEOUT_S) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def may_send_credentials(registry, realm):
    """A registry's credentials go only to an https token realm on its own host or domain (nvcr.io's realm is
    https://nvcr.io/proxy_auth, Docker Hub's https://auth.docker.io/token): a realm the registry names elsewhere,
    or over plain http, would receive the NGC key."""
    parsed = urllib.parse.urlparse(realm)
    realm_host = (parsed.hostname or "").lower()
    host = registry.lower().rsplit(":", 1)[0] if registry.count(":") == 1 else registry.lower()
    labels = host.split(".")
    domain = ".".join(labels[-2:]) if len(labels) > 2 and not host.replace(".", "").isdigit() else host
    return parsed.scheme == "https" and (realm_host in (host, domain) or realm_host.endswith("." + domain))


def _challenge(header):
    """The parameters of a `Bearer realm="...",service="...",scope="..."` challenge."""
    scheme, _, params = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    found = {}
    for part in params.split(","):
        key, _, value = part.strip().partition("=")
        found[key] = value.strip('"')
    return found


def registry_digest(ref, credentials):
    """The digest the registry holds for the reference's tag."""
    registry, repository, tag = split_ref(ref)
    context = _context(registry)
    url = f"https://{registry}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": MANIFEST_TYPES}
    status, answer, _ = _request(url, "HEAD", headers, context)
    if status == 401:
        challenge = _challenge(answer.get("WWW-Authenticate") or answer.get("Www-Authenticate"))
        if not challenge or "realm" not in challenge:
            raise OSError(f"{registry} asked for credentials without a Bearer realm")
        query = {"scope": f"repository:{repository}:pull"}
        if challenge.get("service"):
            query["service"] = challenge["service"]
        token_headers = {}
        login = credentials.get(registry.lower())
        if login and may_send_credentials(registry, challenge["realm"]):
            user, password = login
            token_headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        status, _, body = _request(
            challenge["realm"] + "?" + urllib.parse.urlencode(query),
            "GET",
            token_headers,
            _context(urllib.parse.urlparse(challenge["realm"]).hostname or registry),
        )
        if status != 200:
            raise OSError(
                f"{registry} refused a pull token for {repository} (HTTP {status})"
                + ("" if login else "; it may need a login")
            )
        document = json.loads(body)
        token = document.get("token") or document.get("access_token")
        status, answer, _ = _request(url, "HEAD", {**headers, "Authorization": f"Bearer {token}"}, context)
    if status == 404:
        raise OSError(f"{registry} has no tag {tag} for {repository}")
    if status != 200:
        raise OSError(f"{registry} answered HTTP {status} for {repository}:{tag}")
    digest = answer.get("Docker-Content-Digest") or answer.get("docker-content-digest")
    if not digest or not digest.startswith("sha256:"):
        raise OSError(f"{registry} gave no digest for {repository}:{tag}")
    return digest


def hub_sha(endpoint, repo, revision, token):
    url = f"{endpoint.rstrip('/')}/api/models/{repo}/revision/{urllib.parse.quote(revision, safe='')}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = _request(url, "GET", headers, ssl.create_default_context())
    if status in (401, 403):
        raise OSError(f"the hub refused {repo} (HTTP {status}): gated or private; give HF_TOKEN")
    if status == 404:
        raise OSError(f"the hub has no revision {revision!r} of {repo}")
    if status != 200:
        raise OSError(f"the hub answered HTTP {status} for {repo}@{revision}")
    sha = json.loads(body).get("sha")
    if not isinstance(sha, str) or len(sha) != 40:
        raise OSError(f"the hub gave no commit sha for {repo}@{revision}")
    return sha


def resolve(request):
    """Answer a request: {"images": [...], "revisions": [[repo, rev], ...], "hub": endpoint or null,
    "credentials": {registry: [user, password]}, "hf_token": token or null}."""
    credentials = {k.lower(): tuple(v) for k, v in (request.get("credentials") or {}).items()}
    endpoint = request.get("hub") or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    out = {"images": {}, "revisions": {}}
    for ref in request.get("images") or []:
        try:
            out["images"][ref] = {"digest": registry_digest(ref, credentials)}
        except (OSError, ValueError) as exc:
            out["images"][ref] = {"error": str(exc) or type(exc).__name__}
    for repo, revision in request.get("revisions") or []:
        try:
            out["revisions"][f"{repo}@{revision}"] = {"sha": hub_sha(endpoint, repo, revision, request.get("hf_token"))}
        except (OSError, ValueError) as exc:
            out["revisions"][f"{repo}@{revision}"] = {"error": str(exc) or type(exc).__name__}
    return out


if __name__ == "__main__":
    print(json.dumps(resolve(json.load(sys.stdin))))
