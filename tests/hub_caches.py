"""Hub caches laid out by hand, in each client's own on-disk layout, so the real clients find a preset offline.

- huggingface_hub (`HF_HUB_CACHE`): `models--OWNER--NAME/blobs/<sha256>`, `snapshots/<commit>/<file>`
  as relative symlinks to the blobs, and `refs/main` holding the commit hash.
- kagglehub (`KAGGLEHUB_CACHE`): `models/OWNER/MODEL/FRAMEWORK/VARIATION/<version>/<file>` and the
  completion marker `models/OWNER/MODEL/FRAMEWORK/VARIATION/<version>.complete`.
"""

import hashlib
import os
import shutil


def lay_out_hf_cache(cache_dir, repo_id, folder, commit="0123456789abcdef0123456789abcdef01234567"):
    """Puts `folder`'s files in huggingface_hub's cache at `cache_dir` as `repo_id`'s `main`; returns the snapshot."""
    owner, name = repo_id.split("/")
    repo = os.path.join(cache_dir, f"models--{owner}--{name}")
    snapshot = os.path.join(repo, "snapshots", commit)
    os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    os.makedirs(snapshot, exist_ok=True)
    for filename in sorted(os.listdir(folder)):
        with open(os.path.join(folder, filename), "rb") as f:
            content = f.read()
        blob = hashlib.sha256(content).hexdigest()
        with open(os.path.join(repo, "blobs", blob), "wb") as f:
            f.write(content)
        os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join(snapshot, filename))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(commit)
    return snapshot


def lay_out_kaggle_cache(cache_dir, handle, folder, version):
    """Puts `folder` in kagglehub's cache at `cache_dir` as version `version` of `handle` (owner/model/fw/variation)."""
    base = os.path.join(cache_dir, "models", *handle.split("/"))
    target = os.path.join(base, str(version))
    shutil.copytree(folder, target)
    os.makedirs(base, exist_ok=True)
    open(os.path.join(base, f"{version}.complete"), "w").close()
    return target
