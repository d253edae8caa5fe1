"""hf:// and kaggle:// presets through the hubs' real clients, offline, on caches laid out in their own layouts;
uploads with the clients' upload calls replaced at their boundary."""

import os
import sys

import huggingface_hub
import kagglehub
import kagglehub.http_resolver
import numpy as np
import pytest
import requests
from cli_checks import cli_error
from hub_caches import lay_out_hf_cache, lay_out_kaggle_cache
from huggingface_hub import constants as hf_constants

import keras_sagan
from keras_sagan import cli, hubs
from keras_sagan.export import loading
from keras_sagan.hubs import HubError
from keras_sagan.models import presets

FILES = sorted(
    [
        "README.md",
        "config.json",
        "discriminator.json",
        "discriminator.weights.h5",
        "metadata.json",
        "model.weights.h5",
        "training_generator.weights.h5",
    ]
)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: what HF_HUB_CACHE and HF_HUB_OFFLINE=1 set at import time."""
    cache = str(tmp_path / "hf")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", cache)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def kaggle_cache(tmp_path, monkeypatch):
    """An empty kagglehub cache (KAGGLEHUB_CACHE is read on every call); Kaggle's version lookup fails offline."""
    cache = str(tmp_path / "kaggle")
    monkeypatch.setenv("KAGGLEHUB_CACHE", cache)

    def offline(*args, **kwargs):
        raise requests.ConnectionError("Failed to resolve 'api.kaggle.com' (offline)")

    # The one network call of a cached download: asking Kaggle for an unversioned handle's latest version.
    monkeypatch.setattr(kagglehub.http_resolver, "_get_current_version", offline)
    return cache


def _images(generator, z):
    return np.asarray(generator(z, training=False))


def test_hf_handle_loads_from_the_offline_cache(exported, hf_cache):
    snapshot = lay_out_hf_cache(hf_cache, "me/tiny", exported["preset"])
    generator = keras_sagan.Generator.from_preset("hf://me/tiny")
    np.testing.assert_array_equal(_images(generator, exported["z"]), exported["ema_images"])
    loaded = loading.load_generator("hf://me/tiny")
    assert (loaded.kind, loaded.folder) == ("preset", snapshot)
    np.testing.assert_array_equal(np.asarray(loaded(exported["z"])), exported["ema_images"])


def test_hf_handle_offline_and_not_cached_is_one_line(hf_cache):
    with pytest.raises(HubError) as info:
        keras_sagan.Generator.from_preset("hf://me/absent")
    message = str(info.value)
    assert message.startswith(f"hf://me/absent is not in the Hugging Face cache ({hf_cache}) and cannot be downloaded")
    assert "\n" not in message


def test_registered_hub_preset_is_listed_without_downloading(exported, hf_cache, monkeypatch):
    entry = {"description": "on the Hub", "weights": "hf://me/tiny", "dataset": "demo", "scores": {"fid": 3.25}}
    monkeypatch.setitem(presets.PRESETS, "tiny_hub", entry)
    listed = keras_sagan.list_presets()["tiny_hub"]  # The cache is still empty: nothing is fetched.
    assert listed == {
        "description": "on the Hub",
        "architecture": None,
        "weights": "hf://me/tiny",
        "dataset": "demo",
        "scores": {"fid": 3.25},
    }
    lay_out_hf_cache(hf_cache, "me/tiny", exported["preset"])
    generator = keras_sagan.Generator.from_preset("tiny_hub")
    np.testing.assert_array_equal(_images(generator, exported["z"]), exported["ema_images"])


def test_kaggle_versioned_handle_loads_from_the_cache(exported, kaggle_cache):
    lay_out_kaggle_cache(kaggle_cache, "me/tiny/keras/v1", exported["preset"], version=2)
    generator = keras_sagan.Generator.from_preset("kaggle://me/tiny/keras/v1/2")
    np.testing.assert_array_equal(_images(generator, exported["z"]), exported["ema_images"])


def test_kaggle_unversioned_offline_uses_the_newest_complete_version(exported, kaggle_cache, capsys):
    lay_out_kaggle_cache(kaggle_cache, "me/tiny/keras/v1", exported["preset"], version=2)
    incomplete = os.path.join(kaggle_cache, "models", "me", "tiny", "keras", "v1", "3")
    os.makedirs(incomplete)  # A download cut short: no 3.complete marker, so it is not used.
    loaded = loading.load_generator("kaggle://me/tiny/keras/v1")
    assert loaded.folder == os.path.join(kaggle_cache, "models", "me", "tiny", "keras", "v1", "2")
    np.testing.assert_array_equal(np.asarray(loaded(exported["z"])), exported["ema_images"])
    assert "warning: Kaggle cannot be reached; using kaggle://me/tiny/keras/v1 from kagglehub's cache" in (
        capsys.readouterr().err
    )


def test_kaggle_offline_and_not_cached_is_one_line(kaggle_cache):
    with pytest.raises(HubError) as info:
        keras_sagan.Generator.from_preset("kaggle://me/absent/keras/v1")
    message = str(info.value)
    assert message.startswith(f"kaggle://me/absent/keras/v1 is not in kagglehub's cache ({kaggle_cache})")
    assert "Kaggle cannot be reached" in message and "\n" not in message


@pytest.mark.parametrize("handle", ["hf://only-owner", "hf://a/b/c", "kaggle://me/tiny/keras", "kaggle://a/b/c/d/x"])
def test_bad_handles(handle):
    with pytest.raises(HubError, match=r"^`handle` must be hf://OWNER/MODEL or kaggle://"):
        hubs.parse(handle)


def test_missing_client_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails.
    with pytest.raises(HubError, match=r"need the huggingface_hub package, .*pip install 'keras_sagan\[hub\]'$"):
        keras_sagan.Generator.from_preset("hf://me/tiny")


# -- uploads ----------------------------------------------------------------------------------------


@pytest.fixture
def hf_uploads(monkeypatch):
    """Records HfApi.create_repo and HfApi.upload_folder calls (with the files present at upload time)."""
    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, **kw: calls.append(("create_repo", kw)))

    def upload_folder(self, **kw):
        calls.append(("upload_folder", {**kw, "files": sorted(os.listdir(kw["folder_path"]))}))

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def test_upload_to_hugging_face(exported, hf_uploads, capsys):
    assert cli.main(["upload-preset", exported["preset"], "hf://me/tiny"]) == 0
    assert capsys.readouterr().out == "hf://me/tiny\n"
    (create, create_kw), (upload, upload_kw) = hf_uploads
    assert (create, create_kw) == ("create_repo", {"repo_id": "me/tiny", "repo_type": "model", "exist_ok": True})
    assert upload == "upload_folder" and upload_kw["repo_id"] == "me/tiny"
    assert upload_kw["folder_path"] == exported["preset"] and upload_kw["files"] == FILES


def test_upload_to_kaggle(exported, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(kagglehub, "model_upload", lambda handle, folder, **kw: calls.append((handle, folder, kw)))
    assert cli.main(["upload-preset", exported["preset"], "kaggle://me/tiny/keras/v1"]) == 0
    [(handle, folder, kwargs)] = calls
    assert (handle, folder) == ("me/tiny/keras/v1", exported["preset"])
    assert sorted(os.listdir(folder)) == FILES and kwargs["version_notes"].startswith("Upload keras_sagan preset")
    cli_error(capsys, ["upload-preset", exported["preset"], "kaggle://me/tiny/keras/v1/3"])  # Kaggle numbers them.


def test_upload_refuses_a_preset_that_does_not_load(exported, tmp_path, hf_uploads, capsys):
    import shutil

    broken = shutil.copytree(exported["preset"], tmp_path / "broken")
    shutil.copy(os.path.join(broken, "discriminator.weights.h5"), os.path.join(broken, "model.weights.h5"))
    assert "first mismatch at layer" in cli_error(capsys, ["upload-preset", str(broken), "hf://me/tiny"])
    assert "`handle` must be" in cli_error(capsys, ["upload-preset", exported["preset"], "s3://bucket/x"])
    assert hf_uploads == []  # Nothing reached the client.


def test_upload_failure_is_one_line(exported, monkeypatch, capsys):
    def refused(self, **kw):
        raise OSError("401 Client Error: Unauthorized for url: https://huggingface.co/api/repos/create\nmore")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refused)
    err = cli_error(capsys, ["upload-preset", exported["preset"], "hf://me/tiny"])
    expected = "401 Client Error: Unauthorized for url: https://huggingface.co/api/repos/create"
    assert err == f"error: cannot upload {exported['preset']} to hf://me/tiny: {expected}\n"
