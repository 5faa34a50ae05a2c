"""A small local Hugging Face Hub: serves NVIDIA's two Llama 3.1 8B ModelOpt checkpoints as small files with the
real names, configs and the real quirk (the NVFP4 tokenizer_config.json has no chat_template), and a GGUF repo
holding several quantizations of the same model, one file each, as llama.cpp users download them.

It speaks the part of the Hub API the real `huggingface_hub` client uses (HF_ENDPOINT=http://HOST:PORT):
  GET  /api/models/{repo}/revision/{rev}            → {"id", "sha", "siblings"}
  GET  /api/models/{repo}/tree/{rev}?recursive=true → [{"type": "file", "path", "size", "oid", "lfs"?}]
  HEAD/GET /{repo}/resolve/{rev}/{path}             → body, X-Repo-Commit, ETag (Range supported)
Each repo has two commits: `v1` (older) and `main`, so revision bumps can be rehearsed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import unquote, urlparse

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}

CHAT_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def _safetensors(name: str, values: int) -> bytes:
    """A valid, tiny safetensors file with one U8 tensor."""
    header = json.dumps(
        {name: {"dtype": "U8", "shape": [values], "data_offsets": [0, values]}, "__metadata__": {"format": "pt"}}
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + bytes(range(256)) * (values // 256) + bytes(values % 256)


def _repo_files(quant: str, commit: str) -> dict[str, bytes]:
    nvfp4 = quant == "NVFP4"
    quant_config = {
        "producer": {"name": "modelopt", "version": "0.37.0" if nvfp4 else "0.33.0"},
        "quantization": {
            "quant_algo": quant,
            "kv_cache_quant_algo": "FP8" if nvfp4 else None,
            "exclude_modules": ["lm_head"],
            **({"group_size": 16} if nvfp4 else {}),
        },
    }
    config = {**LLAMA_CONFIG, "quantization_config": {"quant_method": "modelopt", **quant_config["quantization"]}}
    tokenizer_config: dict = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": True,
    }
    if not nvfp4:  # the quantized NVFP4 release ships without the Llama 3.1 chat template
        tokenizer_config["chat_template"] = CHAT_TEMPLATE
    shard = "model-0000{}-of-00002.safetensors"
    files = {
        "config.json": json.dumps(config, indent=2).encode(),
        "generation_config.json": json.dumps(
            {
                "bos_token_id": 128000,
                "do_sample": True,
                "eos_token_id": [128001, 128008, 128009],
                "temperature": 0.6,
                "top_p": 0.9,
            }
        ).encode(),
        "hf_quant_config.json": json.dumps(quant_config, indent=2).encode(),
        "tokenizer.json": json.dumps(
            {"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": []}
        ).encode(),
        "tokenizer_config.json": json.dumps(tokenizer_config, indent=2).encode(),
        "special_tokens_map.json": json.dumps({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}).encode(),
        shard.format(1): _safetensors("model.layers.0.mlp.down_proj.weight", 40_000 if nvfp4 else 50_000),
        shard.format(2): _safetensors("lm_head.weight", 10_000 if nvfp4 else 40_000),
        "model.safetensors.index.json": json.dumps(
            {
                "metadata": {"total_size": 0},
                "weight_map": {
                    "model.layers.0.mlp.down_proj.weight": shard.format(1),
                    "lm_head.weight": shard.format(2),
                },
            }
        ).encode(),
        "README.md": f"# Llama-3.1-8B-Instruct-{quant}\n\nModelOpt {quant} export (rehearsal copy, {commit}).\n".encode(),
    }
    return files


GGUF_REPO = "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
GGUF_QUANTS = ("Q4_K_M", "Q8_0")


def _gguf(name: str, quant: str) -> bytes:
    """A valid GGUF v3 file (ggml/src/gguf.cpp reads the magic, version, tensor and key-value counts, then the
    key-values): no tensors, the metadata llama-server reads first."""

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value.encode())) + value.encode()

    string_type = 8  # GGUF_TYPE_STRING
    metadata = {
        "general.architecture": "llama",
        "general.name": name,
        "general.file_type_name": quant,
        "tokenizer.chat_template": CHAT_TEMPLATE,
    }
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, value in metadata.items():
        body += text(key) + struct.pack("<I", string_type) + text(value)
    return body + bytes(4096)  # the (empty) tensor data, aligned


def _gguf_files(commit: str) -> dict[str, bytes]:
    stem = GGUF_REPO.split("/")[1].removesuffix("-GGUF")
    files = {f"{stem}-{quant}.gguf": _gguf(stem, quant) for quant in GGUF_QUANTS}
    files["README.md"] = f"# {stem} GGUF\n\nQuantizations made with llama.cpp (rehearsal copy, {commit}).\n".encode()
    return files


@dataclass(frozen=True)
class Commit:
    sha: str
    files: dict[str, bytes]


# Meta's own checkpoint is gated on the real hub (accept the license, then use a token); the rehearsal copy
# answers only this token. Hub behaviour mirrored (huggingface_hub utils/_http.py hf_raise_for_status reads the
# X-Error-Code header): a gated repo without a token → 401 GatedRepo; a bad token → 401 "Invalid credentials";
# a repo that does not exist → 401 RepoNotFound when unauthenticated (the hub does not tell a private repo from a
# missing one), 404 when authenticated.
GATED_REPOS = ("meta-llama/Llama-3.1-8B-Instruct",)
HUB_TOKEN = "hf_rehearsalTokenForGatedRepos0123"


def build_repos() -> dict[str, dict[str, Commit]]:
    """repo → {revision name or sha → Commit}."""
    repos: ClassVar[dict[str, dict[str, Commit]]] = {}
    for quant, repo in (
        ("FP8", "nvidia/Llama-3.1-8B-Instruct-FP8"),
        ("NVFP4", "nvidia/Llama-3.1-8B-Instruct-NVFP4"),
        ("FP8", GATED_REPOS[0]),
    ):
        revisions: dict[str, Commit] = {}
        for name in ("v1", "main"):
            files = _repo_files(quant, name)
            sha = hashlib.sha1(repo.encode() + b"".join(sorted(files.values()))).hexdigest()
            commit = Commit(sha, files)
            revisions[name] = revisions[sha] = commit
        repos[repo] = revisions
    revisions = {}
    for name in ("v1", "main"):
        files = _gguf_files(name)
        commit = Commit(hashlib.sha1(GGUF_REPO.encode() + b"".join(sorted(files.values()))).hexdigest(), files)
        revisions[name] = revisions[commit.sha] = commit
    repos[GGUF_REPO] = revisions
    return repos


def is_lfs(path: str) -> bool:
    return path.endswith((".safetensors", ".gguf"))


def file_oid(path: str, content: bytes) -> str:
    """LFS files are identified by sha256, others by their git blob sha1 (as on the Hub)."""
    if is_lfs(path):
        return hashlib.sha256(content).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubHandler(BaseHTTPRequestHandler):
    repos: ClassVar[dict[str, dict[str, Commit]]] = {}
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_found(self, code: str, message: str, status: int = 404) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _lookup(self, repo: str, revision: str) -> Commit | None:
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is not None and token != HUB_TOKEN:
            self._json(401, {"error": "Invalid credentials in Authorization header"})
            return None
        revisions = self.repos.get(repo)
        if revisions is None:
            self._not_found("RepoNotFound", f"Repository Not Found for url: {self.path}.", 404 if token else 401)
            return None
        if repo in GATED_REPOS and token is None:
            self._not_found(
                "GatedRepo",
                f"Access to model {repo} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                401,
            )
            return None
        commit = revisions.get(unquote(revision))
        if commit is None:
            self._not_found("RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
            repo = f"{parts[2]}/{parts[3]}"
            if commit := self._lookup(repo, "/".join(parts[5:])):
                siblings = [{"rfilename": name} for name in sorted(commit.files)]
                self._json(
                    200,
                    {
                        "id": repo,
                        "modelId": repo,
                        "sha": commit.sha,
                        "private": False,
                        "gated": "manual" if repo in GATED_REPOS else False,
                        "disabled": False,
                        "siblings": siblings,
                        "tags": ["modelopt"],
                    },
                )
            return
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "tree":
            repo = f"{parts[2]}/{parts[3]}"
            if commit := self._lookup(repo, parts[5]):
                entries = []
                for name, content in sorted(commit.files.items()):
                    entry: dict = {"type": "file", "path": name, "size": len(content), "oid": file_oid(name, content)}
                    if is_lfs(name):
                        entry["lfs"] = {"oid": file_oid(name, content), "size": len(content), "pointerSize": 134}
                        entry["oid"] = hashlib.sha1(name.encode()).hexdigest()
                    entries.append(entry)
                self._json(200, entries)
            return
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = f"{parts[0]}/{parts[1]}"
            commit = self._lookup(repo, parts[3])
            if commit is None:
                return
            name = unquote("/".join(parts[4:]))
            content = commit.files.get(name)
            if content is None:
                self._not_found("EntryNotFound", f"{name} does not exist on {parts[3]}")
                return
            self._send_file(commit, name, content)
            return
        self._not_found("NotFound", f"no route for {path}")

    def _send_file(self, commit: Commit, name: str, content: bytes) -> None:
        start, end, status = 0, len(content), 200
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            first, _, last = ranged[6:].partition("-")
            start = int(first or 0)
            end = int(last) + 1 if last else len(content)
            status = 206
        body = content[start:end]
        etag = f'"{file_oid(name, content)}"'
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Repo-Commit", commit.sha)
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if is_lfs(name):
            self.send_header("X-Linked-Etag", etag)
            self.send_header("X-Linked-Size", str(len(content)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(content)}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def serve(host: str, port: int) -> None:
    HubHandler.repos = build_repos()
    server = ThreadingHTTPServer((host, port), HubHandler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="spark-state rehearsal Hugging Face Hub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
