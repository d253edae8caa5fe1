import keras
import numpy as np
import pytest

from keras_sagan.metrics import InceptionFeatureExtractor, inception_weights_path
from keras_sagan.metrics import inception as inception_module


@pytest.fixture(scope="module")
def extractor():
    # The one full InceptionV3 build of the suite: random weights, no download.
    return InceptionFeatureExtractor(weights=None)


def test_random_inception_features_and_logits(extractor):
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    features, logits = extractor.features_and_logits(images)
    assert features.shape == (2, 2048) and features.dtype == np.float32
    assert logits.shape == (2, 1000)
    assert np.all(np.isfinite(features)) and np.all(np.isfinite(logits))
    assert extractor.feature_dim == 2048 and extractor.num_classes == 1000
    # uint8 input is mapped with x / 127.5 - 1 before the same network.
    as_uint8 = np.round((images + 1.0) * 127.5).astype(np.uint8)
    np.testing.assert_allclose(
        extractor(as_uint8),
        extractor(as_uint8.astype("float32") / 127.5 - 1.0),
        rtol=1e-4,
        atol=1e-4,
    )


def test_preprocess_resizes_bilinear_and_checks_range(extractor):
    gray = np.linspace(-1, 1, 2 * 16 * 16).reshape(2, 16, 16, 1).astype("float32")
    x = extractor.preprocess(gray)
    assert tuple(x.shape) == (2, 299, 299, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    assert float(np.min(x)) >= -1.0 and float(np.max(x)) <= 1.0
    with pytest.raises(ValueError, match=r"\[-1, 1\].*max=255"):
        extractor.preprocess(np.full((1, 8, 8, 3), 255.0, "float32"))
    with pytest.raises(ValueError, match="shape"):
        extractor.preprocess(np.zeros((8, 8, 3), "float32"))


def test_missing_imagenet_weights_raise_with_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        InceptionFeatureExtractor(weights="imagenet")
    message = str(info.value)
    assert inception_module.WEIGHTS_URL in message
    assert "weights='/path/to/inception_v3_weights_tf_dim_ordering_tf_kernels.h5'" in message
    assert "allow_download=True" in message
    with pytest.raises(FileNotFoundError, match="notop"):
        inception_weights_path(include_top=False)


def test_missing_weights_file_raises_with_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"file not found.*weights='/path/to/"):
        InceptionFeatureExtractor(weights=str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="weights"):
        InceptionFeatureExtractor(weights=3)


def test_weights_found_in_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
    target.write_bytes(b"")
    assert inception_weights_path() == str(target)


def _tiny_inception(include_top, weights, input_shape, classifier_activation=None, pooling=None):
    """Stand-in for keras.applications.InceptionV3 with the same output layer names."""
    assert weights is None
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 8, strides=8)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if not include_top:
        return keras.Model(inputs, pooled)
    return keras.Model(inputs, keras.layers.Dense(5, name="predictions")(pooled))


def test_weights_path_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(inception_module, "_build_inception_v3", _tiny_inception)
    reference = InceptionFeatureExtractor(weights=None)
    path = str(tmp_path / "tiny.weights.h5")
    reference.model.save_weights(path)
    loaded = InceptionFeatureExtractor(weights=path)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 20, 20, 3)).astype("float32")
    for a, b in zip(reference.features_and_logits(images), loaded.features_and_logits(images)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    no_top = InceptionFeatureExtractor(weights=None, include_top=False)
    features, logits = no_top.features_and_logits(images)
    assert features.shape == (2, 4) and logits is None


def test_features_stay_float32_under_mixed_precision(monkeypatch):
    monkeypatch.setattr(inception_module, "_build_inception_v3", _tiny_inception)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        extractor = InceptionFeatureExtractor(weights=None)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(v.dtype == "float32" for v in extractor.model.weights)
    assert extractor.model.layers[1].compute_dtype == "float32"
