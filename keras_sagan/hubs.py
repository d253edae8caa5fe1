"""The model hubs, through their own clients: `hf://owner/model` and `kaggle://owner/model/keras/variant[/version]`.

`download(handle)` gives the local folder of a handle; `upload(preset_dir, handle)` publishes one.
Everything that moves bytes is the hubs' own client, `huggingface_hub` or `kagglehub` (the
optional extra `pip install "keras_sagan[hub]"`): their caches (`HF_HUB_CACHE`, `KAGGLEHUB_CACHE`),
resumed downloads, progress bars on stderr and credentials. keras_sagan has no downloader.

Offline:
- `hf://`: huggingface_hub falls back to its cache by itself when the Hub cannot be reached or
  `HF_HUB_OFFLINE=1`.
- `kaggle://`: kagglehub answers a versioned handle (`.../variant/3`) from its cache without the
  network, but asks Kaggle for the latest version of an unversioned one. When Kaggle cannot be
  reached, the newest complete version in kagglehub's cache is used, with one warning line.

A handle that cannot be had (offline and not cached, not found, no client installed) is one
`HubError` line.
"""

from __future__ import annotations

import importlib
import os
import sys

from keras_sagan.errors import UsageError, bad_value, one_line

SCHEMES = ("hf://", "kaggle://")
_CLIENTS = {"hf://": "huggingface_hub", "kaggle://": "kagglehub"}
_ACCEPTED = "hf://OWNER/MODEL or kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]"


class HubError(UsageError):
    """A hub handle that cannot be downloaded or uploaded (one line)."""


def is_handle(value) -> bool:
    """Whether `value` is a hub handle (`hf://...` or `kaggle://...`)."""
    return isinstance(value, str) and value.startswith(SCHEMES)


def parse(handle: str) -> tuple[str, str]:
    """`(scheme, path)` of a handle, checked: `("hf://", "owner/model")` or `("kaggle://", "owner/model/keras/v")`."""
    scheme = next((s for s in SCHEMES if isinstance(handle, str) and handle.startswith(s)), None)
    parts = handle[len(scheme) :].split("/") if scheme else []
    if scheme == "hf://":
        valid = len(parts) == 2
    else:
        valid = len(parts) in (4, 5) and (len(parts) == 4 or parts[4].isdigit())
    if not valid or not all(parts):
        raise HubError(bad_value("handle", handle, _ACCEPTED))
    return scheme, "/".join(parts)


def client(scheme: str):
    """The hub's client module (`huggingface_hub` or `kagglehub`); one line when it is not installed."""
    name = _CLIENTS[scheme]
    try:
        return importlib.import_module(name)
    except ImportError:
        raise HubError(
            f"{scheme} handles need the {name} package, which is not installed: pip install 'keras_sagan[hub]'"
        ) from None


def download(handle: str) -> str:
    """The local folder holding `handle`'s files: downloaded by the hub's client, or from its cache.

    Args:
        handle: str. `hf://owner/model` or `kaggle://owner/model/keras/variant[/version]`.

    Returns:
        The folder's path (inside the client's cache).

    Example:

    >>> keras_sagan.hubs.download("hf://keras-sagan/fashion_mnist32")
    '/root/.cache/huggingface/hub/models--keras-sagan--fashion_mnist32/snapshots/<commit>'
    """
    scheme, path = parse(handle)
    hub = client(scheme)
    if scheme == "hf://":
        from huggingface_hub import constants, errors

        from keras_sagan import __version__

        try:
            return hub.snapshot_download(repo_id=path, library_name="keras_sagan", library_version=__version__)
        except errors.LocalEntryNotFoundError as err:
            raise HubError(
                f"{handle} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and cannot be "
                f"downloaded: {one_line(err)}"
            ) from None
        except (OSError, ValueError) as err:  # HfHubHTTPError is an OSError: not found, no access.
            raise HubError(f"cannot download {handle}: {one_line(err)}") from None
    import requests  # kagglehub's HTTP library.
    from kagglehub import config

    try:
        return hub.model_download(path)
    except requests.ConnectionError as err:
        cached = None if len(path.split("/")) == 5 else newest_cached_kaggle_version(path)
        if cached is None:
            raise HubError(
                f"{handle} is not in kagglehub's cache ({config.get_cache_folder()}) and Kaggle cannot be "
                f"reached: {one_line(err, 200)}"
            ) from None
        print(f"warning: Kaggle cannot be reached; using {handle} from kagglehub's cache: {cached}", file=sys.stderr)
        return cached
    except (OSError, ValueError, RuntimeError) + _kaggle_errors(hub) as err:
        raise HubError(f"cannot download {handle}: {one_line(err)}") from None


def _kaggle_errors(kagglehub) -> tuple:
    """kagglehub's own exception classes that are not OSErrors (credentials, API errors)."""
    from kagglehub import exceptions

    names = ("CredentialError", "BackendError", "NotFoundError", "KaggleApiHTTPError", "UserCancelledError")
    return tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))


def newest_cached_kaggle_version(path: str) -> str | None:
    """The folder of the newest complete version of the unversioned Kaggle model `path` in kagglehub's cache."""
    from kagglehub.cache import Cache, get_cached_path
    from kagglehub.handle import parse_model_handle

    handle = parse_model_handle(path)
    variation_dir = os.path.dirname(get_cached_path(handle.with_version(1)))
    versions = [int(n) for n in os.listdir(variation_dir) if n.isdigit()] if os.path.isdir(variation_dir) else []
    for version in sorted(versions, reverse=True):
        folder = Cache().load_from_cache(handle.with_version(version))  # Only a download marked complete.
        if folder:
            return folder
    return None


def upload(preset_dir: str, handle: str, message: str | None = None) -> str:
    """Publishes the folder `preset_dir` at `handle` with the hub's client; returns the handle.

    `hf://owner/model` creates the repository when missing (`HfApi.create_repo(exist_ok=True)`) and
    uploads the folder as one commit (`HfApi.upload_folder`). `kaggle://owner/model/keras/variant`
    (no version: Kaggle numbers them) goes through `kagglehub.model_upload`, which creates the model
    when missing and adds a version. Credentials are the clients' own (`hf auth login` /
    `HF_TOKEN`, `~/.kaggle/kaggle.json` / `KAGGLE_USERNAME` and `KAGGLE_KEY`).
    """
    scheme, path = parse(handle)
    if scheme == "kaggle://" and len(path.split("/")) == 5:
        raise HubError(bad_value("handle", handle, "a Kaggle handle without a version (Kaggle numbers uploads)"))
    hub = client(scheme)
    errors = (OSError, ValueError, RuntimeError) + (_kaggle_errors(hub) if scheme == "kaggle://" else ())
    message = message or f"Upload keras_sagan preset {os.path.basename(os.path.abspath(preset_dir))}"
    try:
        if scheme == "hf://":
            api = hub.HfApi()
            api.create_repo(repo_id=path, repo_type="model", exist_ok=True)
            api.upload_folder(repo_id=path, repo_type="model", folder_path=preset_dir, commit_message=message)
        else:
            hub.model_upload(path, preset_dir, version_notes=message)
    except errors as err:  # HTTP, connection and credential errors of both clients.
        raise HubError(f"cannot upload {preset_dir} to {handle}: {one_line(err)}") from None
    return handle
