"""export_generator's versioning: numbering, no overwrite, atomic writes, one model per base path, inputs."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_sagan
from keras_sagan.atomic_file import is_temporary
from keras_sagan.export import formats, saved_model


@pytest.fixture(scope="module")
def generator():
    return keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8)


def _leftovers(base):
    return sorted(name for name in os.listdir(base) if is_temporary(name) or name.startswith(".tmp-"))


def test_versions_count_up_and_never_overwrite(generator, tmp_path):
    base = tmp_path / "model"
    assert saved_model.export_generator(generator, base) == str(base / "1")
    assert saved_model.export_generator(generator, str(base)) == str(base / "2")
    assert saved_model.export_generator(generator, base, version=5) == str(base / "5")
    assert saved_model.export_generator(generator, base) == str(base / "6")
    assert saved_model.list_versions(base) == [1, 2, 5, 6]
    mtime = os.path.getmtime(base / "5" / "saved_model.pb")
    with pytest.raises(formats.ExportError, match=r"Version 5 already exists"):
        saved_model.export_generator(generator, base, version=5)
    assert os.path.getmtime(base / "5" / "saved_model.pb") == mtime
    assert _leftovers(base) == []


@pytest.mark.parametrize("version", [0, -1, 1.5, "2", True])
def test_bad_version_values(generator, tmp_path, version):
    with pytest.raises(ValueError, match="version must be None or an int >= 1"):
        saved_model.export_generator(generator, tmp_path / "model", version=version)


def test_failed_write_leaves_no_version_and_no_tmp(generator, tmp_path, monkeypatch):
    base = tmp_path / "model"
    real_save = tf.saved_model.save

    def crash_midway(obj, export_dir, signatures=None, options=None):
        os.makedirs(os.path.join(export_dir, "variables"))
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash_midway)
    with pytest.raises(RuntimeError, match="disk full"):
        saved_model.export_generator(generator, base)
    assert saved_model.list_versions(base) == []
    assert _leftovers(base) == []
    assert not os.path.exists(base / "1")
    monkeypatch.setattr(tf.saved_model, "save", real_save)
    assert saved_model.export_generator(generator, base) == str(base / "1")


def test_base_path_holds_one_model(generator, tmp_path):
    base = tmp_path / "model"
    saved_model.export_generator(generator, base)
    # Another instance of the same architecture (different name) is the same model.
    same = keras_sagan.Generator.from_config(generator.get_config() | {"name": "other"})
    same.build()
    assert saved_model.export_generator(same, base) == str(base / "2")
    other = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8, z_dim=64)
    with pytest.raises(formats.ExportError, match="different model") as info:
        saved_model.export_generator(other, base)
    assert "z_dim" in str(info.value) and "[1, 2]" in str(info.value)
    assert saved_model.list_versions(base) == [1, 2]
    with open(base / saved_model.MARKER_FILENAME, encoding="utf-8") as f:
        assert json.load(f)["generator"]["z_dim"] == 128


def test_foreign_versions_without_marker_refused(generator, tmp_path):
    base = tmp_path / "model"
    os.makedirs(base / "3")
    with pytest.raises(formats.ExportError, match="not a keras_sagan export"):
        saved_model.export_generator(generator, base)
    assert _leftovers(base) == [] and saved_model.list_versions(base) == [3]


def test_marker_without_versions_is_replaced(generator, tmp_path):
    base = tmp_path / "model"
    os.makedirs(base)
    with open(base / saved_model.MARKER_FILENAME, "w", encoding="utf-8") as f:
        json.dump({"generator": {"z_dim": 1}}, f)
    assert saved_model.export_generator(generator, base) == str(base / "1")
    with open(base / saved_model.MARKER_FILENAME, encoding="utf-8") as f:
        assert json.load(f)["generator"]["z_dim"] == 128


def test_sagan_exports_ema_generator_when_present(tmp_path):
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, seed=0)
    z = np.random.RandomState(1).randn(2, 128).astype("float32")
    loaded = tf.saved_model.load(saved_model.export_generator(gan, tmp_path / "raw"))
    raw = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(raw, np.asarray(gan.generator(z, training=False)), atol=1e-5)

    gan.compile(ema_decay=0.5)
    kernel = gan.ema_generator.to_rgb.kernel
    kernel.assign(kernel * 3.0)  # EMA weights now differ from the generator's.
    loaded = tf.saved_model.load(saved_model.export_generator(gan, tmp_path / "ema"))
    images = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(images, np.asarray(gan.ema_generator(z, training=False)), atol=1e-5)
    assert not np.allclose(images, raw, atol=1e-3)


def test_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="Generator, a SAGAN, a run directory or a .keras file"):
        saved_model.export_generator(object(), tmp_path / "model")
    assert not os.path.exists(tmp_path / "model")
