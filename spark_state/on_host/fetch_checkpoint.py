"""Runs inside a TensorRT-LLM image (which ships huggingface_hub): download one Hugging Face snapshot at a
pinned revision into DIR.partial (resumable), verify every file against the Hub's own hashes (the client does
not), write the completion manifest, and only then move it to DIR. A half-finished download never counts."""

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import threading
import time

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

MANIFEST = ".spark-state.json"
# What a server needs of a checkpoint it only takes the tokenizer from (transformers' AutoTokenizer reads these;
# config.json tells it the tokenizer class when tokenizer_config.json does not): kilobytes, not the weights.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "*.tiktoken",
    "config.json",
    "generation_config.json",
)
PROGRESS_EVERY = float(os.environ.get("SPARK_STATE_PROGRESS_EVERY", "15"))


def on_disk(directory):
    """Bytes under directory, partial downloads (huggingface_hub's .incomplete files) included."""
    total = 0
    for base, _, names in os.walk(directory):
        for name in names:
            try:
                total += os.path.getsize(os.path.join(base, name))
            except OSError:
                pass  # renamed from .incomplete while we walked
    return total


def report_progress(label, directory, expected, done):
    """A line every PROGRESS_EVERY seconds: bytes so far of the snapshot's size, percent, elapsed and ETA."""
    started = time.monotonic()
    first = on_disk(directory)  # a resumed download starts from what is already there
    while not done.wait(PROGRESS_EVERY):
        have, elapsed = on_disk(directory), time.monotonic() - started
        rate = (have - first) / elapsed if elapsed > 0 else 0
        eta = f", ETA {int((expected - have) / rate)}s" if rate > 0 and expected > have else ""
        share = f" ({100 * have / expected:.0f}%)" if expected else ""
        print(f"download {label}: {have / 1e9:.2f} of {expected / 1e9:.2f} GB{share}, {int(elapsed)}s{eta}", flush=True)


def git_blob_sha1(path):
    h = hashlib.sha1()
    h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def refusal(repo, revision, exc):
    """What the hub's refusal means for the person running the deploy, in one line."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    token = "an HF_TOKEN is set" if os.environ.get("HF_TOKEN") else "no HF_TOKEN is set"
    if isinstance(exc, GatedRepoError):
        return (
            f"{repo} is gated ({status}) and {token}: accept its terms on the hub, then list HF_TOKEN under "
            "the checkpoint's secrets and set it where the deploy runs"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"{repo} has no revision {revision!r} ({status}): check the checkpoint's revision"
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"{repo} was not found ({status}; {token}): check the repo id, or for a private repo list HF_TOKEN "
            "under the checkpoint's secrets"
        )
    return f"the hub answered {status or type(exc).__name__} for {repo}@{revision}: {str(exc).splitlines()[0]}"


def main():
    args = parse_args()
    try:
        fetch(args)
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError, HfHubHTTPError) as exc:
        sys.exit(f"download {args.repo}@{args.revision}: {refusal(args.repo, args.revision, exc)}")


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--repo", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--tokenizer-only", action="store_true", help="only the tokenizer's files, not the weights")
    p.add_argument("--include", action="append", default=[], help="only files matching this glob (repeatable)")
    return p.parse_args()


def fetch(args):
    partial = args.dir + ".partial"
    api = HfApi()
    sha = api.model_info(args.repo, revision=args.revision).sha
    entries = [e for e in api.list_repo_tree(args.repo, revision=sha, recursive=True) if hasattr(e, "size")]
    patterns = list(TOKENIZER_FILES) if args.tokenizer_only else args.include or None
    if patterns:
        entries = [e for e in entries if any(fnmatch.fnmatch(e.path, p) for p in patterns)]
        if args.tokenizer_only and not any(e.path in ("tokenizer.json", "tokenizer.model") for e in entries):
            sys.exit(f"download {args.repo}@{args.revision}: it has no tokenizer.json or tokenizer.model to take")
        if not entries:
            sys.exit(f"download {args.repo}@{args.revision}: no file matches {', '.join(patterns)}")
    label, expected, started = f"{args.repo}@{args.revision}", sum(e.size for e in entries), time.monotonic()
    done = threading.Event()
    watcher = threading.Thread(target=report_progress, args=(label, partial, expected, done), daemon=True)
    watcher.start()
    try:
        snapshot_download(repo_id=args.repo, revision=sha, local_dir=partial, allow_patterns=patterns)
    finally:
        done.set()
    print(f"download {label}: {expected / 1e9:.2f} GB in {int(time.monotonic() - started)}s", flush=True)
    files = {}
    for entry in entries:
        path = os.path.join(partial, entry.path)
        if not os.path.exists(path) or os.path.getsize(path) != entry.size:
            sys.exit(f"{entry.path}: missing or wrong size after download")
        if entry.lfs is not None:
            ok = sha256(path) == entry.lfs.sha256
        else:
            ok = git_blob_sha1(path) == entry.blob_id
        if not ok:
            sys.exit(f"{entry.path}: content does not match the hub's hash; the download is corrupt")
        files[entry.path] = entry.size
    manifest = {
        "kind": "checkpoint",
        "repo": args.repo,
        "revision": args.revision,
        "sha": sha,
        "files": files,
        "scope": "tokenizer" if args.tokenizer_only else "files" if args.include else "full",
    }
    with open(os.path.join(partial, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
    if os.path.exists(args.dir):
        shutil.rmtree(args.dir)
    os.rename(partial, args.dir)
    print(f"{args.repo}@{args.revision} ({sha}): {len(files)} files verified")


if __name__ == "__main__":
    main()
