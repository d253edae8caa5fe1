"""The exported SavedModel: outputs, loaders without keras_sagan, saved_model_cli, signatures, guard rails."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import keras_sagan
from keras_sagan.export import saved_model

Z_DIM = 128
IMAGE_SIZE = 32
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def generator():
    return keras_sagan.build_generator("celeba64", image_size=IMAGE_SIZE, conv_dim=8)


@pytest.fixture(scope="module")
def exported(generator, tmp_path_factory):
    return saved_model.export_generator(generator, tmp_path_factory.mktemp("export") / "demo")


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported)


@pytest.fixture(scope="module")
def z():
    return np.random.RandomState(0).randn(3, Z_DIM).astype("float32")


def test_layout(exported):
    assert os.path.basename(exported) == "1"
    assert os.path.isfile(os.path.join(exported, "saved_model.pb"))
    assert os.path.isdir(os.path.join(exported, "variables"))
    marker = os.path.join(os.path.dirname(exported), saved_model.MARKER_FILENAME)
    with open(marker, encoding="utf-8") as f:
        assert json.load(f)["generator"]["conv_dim"] == 8


def test_saves_variables_and_functions_only(generator, exported):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(exported, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].object_graph_def
    assert {c.local_name for c in graph.nodes[0].children} == {
        "attention",  # the attention signature's function: no variable of its own
        "generator_variables",
        "sample",
        "serving_default",
        "signatures",
    }
    # No Keras layer objects: just the generator's variables, each once.
    assert sum(node.WhichOneof("kind") == "variable" for node in graph.nodes) == len(generator.variables)


def test_serving_default_matches_keras(generator, loaded, z):
    outputs = loaded.signatures["serving_default"](z=tf.constant(z))
    assert set(outputs) == {"images", "images_uint8"}
    expected = np.asarray(generator(z, training=False))
    images = outputs["images"].numpy()
    assert images.shape == (3, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.float32
    np.testing.assert_allclose(images, expected, atol=1e-5)
    uint8 = outputs["images_uint8"].numpy()
    assert uint8.dtype == np.uint8
    np.testing.assert_array_equal(uint8, np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8))


def test_inference_mode_changes_no_variable(loaded, z):
    before = [v.numpy().copy() for v in loaded.generator_variables]
    first = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    loaded.signatures["sample"](num_images=tf.constant(2), seed=tf.constant(0, tf.int64), truncation=tf.constant(0.0))
    second = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_array_equal(first, second)
    for old, variable in zip(before, loaded.generator_variables):
        np.testing.assert_array_equal(old, variable.numpy())


def test_loads_where_keras_sagan_cannot_be_imported(generator, exported, z, tmp_path):
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "expected.npy", np.asarray(generator(z, training=False)))
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["keras_sagan"] = None  # any import of it now fails
        import numpy as np
        import tensorflow as tf
        try:
            import keras_sagan
        except ImportError:
            pass
        else:
            raise SystemExit("keras_sagan is importable")
        model = tf.saved_model.load({exported!r})
        images = model.signatures["serving_default"](z=tf.constant(np.load("z.npy")))["images"].numpy()
        print("maxdiff", float(np.abs(images - np.load("expected.npy")).max()))
        """
    )
    # -I: isolated mode (no PYTHONPATH, no user site, no cwd on sys.path).
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    maxdiff = float(result.stdout.split("maxdiff")[-1])
    assert maxdiff <= 1e-5


def test_saved_model_cli_show_lists_both_signatures(exported):
    result = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", exported], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "signature_def['serving_default']" in out and "signature_def['sample']" in out
    assert "signature_def['attention']" in out and "inputs['row']" in out and "inputs['col']" in out
    assert out.count("Method name is: tensorflow/serving/predict") == 3  # serving_default, sample, attention
    for name in ("inputs['z']", "inputs['num_images']", "inputs['seed']", "inputs['truncation']"):
        assert name in out
    assert "outputs['images_uint8']" in out and "DT_UINT8" in out
    assert f"shape: (-1, {Z_DIM})" in out


def test_saved_model_cli_run_matches_keras(generator, exported, z, tmp_path):
    # saved_model_cli run loads the graph into a TF1 session, like TF Serving's C++ loader.
    np.save(tmp_path / "z.npy", z)
    result = subprocess.run(
        [
            "saved_model_cli",
            "run",
            "--dir",
            exported,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"z={tmp_path / 'z.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    images = np.load(tmp_path / "out" / "images.npy")
    np.testing.assert_allclose(images, np.asarray(generator(z, training=False)), atol=1e-5)
    assert np.load(tmp_path / "out" / "images_uint8.npy").dtype == np.uint8


@pytest.mark.parametrize("shape", [(2, 5), (Z_DIM,), (2, 1, Z_DIM)])
def test_wrong_z_shape_names_the_expected_shape(loaded, shape):
    # A signature function, like TF Serving, feeds whatever arrives: the graph checks.
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"\[batch, {Z_DIM}\]|\[\?,{Z_DIM}\]"):
        loaded.signatures["serving_default"](z=tf.zeros(shape))


def test_wrong_z_dtype_refused(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="float"):
        loaded.signatures["serving_default"](z=tf.zeros([2, Z_DIM], tf.float64))
    # The restored tf.function names the whole expected TensorSpec.
    with pytest.raises(TypeError, match=rf"shape=\(None, {Z_DIM}\), dtype=tf.float32"):
        loaded.serving_default(tf.zeros([2, Z_DIM], tf.float64))


def _sample(loaded, num_images, seed, truncation=0.0):
    return loaded.signatures["sample"](
        num_images=tf.constant(num_images, tf.int32),
        seed=tf.constant(seed, tf.int64),
        truncation=tf.constant(truncation, tf.float32),
    )


@pytest.mark.parametrize("num_images", [0, -3, saved_model.MAX_IMAGES + 1])
def test_sample_num_images_cap(loaded, num_images):
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"num_images must be in \[1, {saved_model.MAX_IMAGES}\]"):
        _sample(loaded, num_images, 0)


def test_sample_is_serving_default_on_sample_z(loaded):
    for truncation in (0.0, 0.5):
        outputs = _sample(loaded, 4, 7, truncation)
        assert outputs["images"].shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
        assert outputs["images_uint8"].dtype == tf.uint8
        z = saved_model.sample_z(tf.constant(4), Z_DIM, tf.constant(7, tf.int64), tf.constant(truncation))
        direct = loaded.signatures["serving_default"](z=z)["images"]
        np.testing.assert_allclose(outputs["images"].numpy(), direct.numpy(), atol=1e-6)


def test_sample_determinism_and_truncation_effect(loaded):
    a = _sample(loaded, 4, 1)["images"].numpy()
    np.testing.assert_array_equal(a, _sample(loaded, 4, 1)["images"].numpy())
    assert not np.allclose(a, _sample(loaded, 4, 2)["images"].numpy())
    # The first images do not depend on how many are asked for.
    np.testing.assert_allclose(_sample(loaded, 2, 1)["images"].numpy(), a[:2], atol=1e-6)
    assert not np.allclose(a, _sample(loaded, 4, 1, truncation=0.5)["images"].numpy())
