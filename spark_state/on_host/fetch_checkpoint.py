"""Runs inside a TensorRT-LLM image (which ships huggingface_hub): download one Hugging Face snapshot at a
pinned revision into DIR.partial (resumable), verify every file against the Hub's own hashes (the client does
not), write the completion manifest, and only then move it to DIR. A half-finished download never counts."""

import argparse
import hashlib
import json
import os
import shutil
import sys

from huggingface_hub import HfApi, snapshot_download

MANIFEST = ".spark-state.json"


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repo", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--dir", required=True)
    args = p.parse_args()
    partial = args.dir + ".partial"
    api = HfApi()
    sha = api.model_info(args.repo, revision=args.revision).sha
    entries = [e for e in api.list_repo_tree(args.repo, revision=sha, recursive=True) if hasattr(e, "size")]
    snapshot_download(repo_id=args.repo, revision=sha, local_dir=partial)
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
    manifest = {"kind": "checkpoint", "repo": args.repo, "revision": args.revision, "sha": sha, "files": files}
    with open(os.path.join(partial, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
    if os.path.exists(args.dir):
        shutil.rmtree(args.dir)
    os.rename(partial, args.dir)
    print(f"{args.repo}@{args.revision} ({sha}): {len(files)} files verified")


if __name__ == "__main__":
    main()
