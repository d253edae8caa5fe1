"""`keras_sagan.export.loading.load_generator`: every kind of model path gives the same images, bad paths one line."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from run_fixtures import ema_sagan, write_run

from keras_sagan.export import loading, saved_model


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """`{kind: path}` of one EMA generator written four ways, plus the expected images."""
    root = tmp_path_factory.mktemp("loading")
    gan = ema_sagan()
    run_dir = str(root / "run")
    write_run(run_dir, gan)
    base = str(root / "saved")
    version = saved_model.export_generator(gan, base)
    keras_file = str(root / "g.keras")
    gan.ema_generator.save(keras_file)
    z = np.random.RandomState(3).randn(3, gan.generator.z_dim).astype("float32")
    expected = np.asarray(gan.ema_generator(z, training=False))
    return {
        "run": run_dir,
        "checkpoints": os.path.join(run_dir, "checkpoints"),
        "base": base,
        "version": version,
        "keras": keras_file,
        "z": z,
        "expected": expected,
    }


@pytest.mark.parametrize(
    "key, kind",
    [("run", "run"), ("checkpoints", "run"), ("base", "saved_model"), ("version", "saved_model"), ("keras", "keras")],
)
def test_every_kind_gives_the_ema_generator_images(paths, key, kind):
    loaded = loading.load_generator(paths[key])
    assert loaded.kind == kind
    assert (loaded.z_dim, loaded.num_classes, loaded.image_size) == (128, None, 32)
    images = np.asarray(loaded(paths["z"]))
    # The EMA weights, not the raw generator's (ema_sagan makes them differ): a hand-kept reference.
    np.testing.assert_allclose(images, paths["expected"], atol=1e-5)


def test_base_directory_resolves_to_its_latest_version(paths):
    assert loading.resolve(paths["base"]) == ("saved_model", os.path.join(paths["base"], "1"))


def test_sample_is_the_same_graph_for_a_run_and_its_export(paths):
    from_run = loading.load_generator(paths["run"]).sample(4, seed=5, truncation=0.7)
    from_export = loading.load_generator(paths["base"]).sample(4, seed=5, truncation=0.7)
    np.testing.assert_array_equal(np.asarray(from_run["images_uint8"]), np.asarray(from_export["images_uint8"]))


def test_training_mode_is_refused(paths):
    with pytest.raises(ValueError, match="training"):
        loading.load_generator(paths["keras"])(paths["z"], training=True)


def _message(path):
    with pytest.raises(loading.ModelLoadError) as info:
        loading.load_generator(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_paths_are_one_line(tmp_path):
    assert "no such model path" in _message(str(tmp_path / "missing"))
    text = tmp_path / "notes.txt"
    text.write_text("x")
    assert "not a .keras file" in _message(str(text))
    (tmp_path / "empty").mkdir()
    assert "neither a SavedModel" in _message(str(tmp_path / "empty"))


def test_savedmodel_without_our_signatures_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32)])
    path = str(tmp_path / "other")
    tf.saved_model.save(module, path, signatures={"predict": module.f.get_concrete_function()})
    assert "no 'serving_default' signature" in _message(path)


def test_keras_file_of_another_model_is_refused(tmp_path):
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = str(tmp_path / "dense.keras")
    other.save(path)
    assert "not a keras_sagan Generator" in _message(path)
