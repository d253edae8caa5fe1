"""The evaluation service: make_extractor's weights and errors, real_statistics and its cache, and
make_evaluation_callback's wiring (a 16-d stand-in for InceptionV3; nothing is downloaded)."""

import hashlib
import os

import keras
import numpy as np
import pytest
from inception_stub import TINY_FEATURES, tiny_weights_file, use_tiny_inception
from metrics_testing import tiny_extractor

from keras_sagan.data import DataSpec
from keras_sagan.errors import UsageError
from keras_sagan.metrics import (
    RANDOM_WEIGHTS,
    EvaluationCallback,
    StatisticsFile,
    make_evaluation_callback,
    make_extractor,
    real_statistics,
    service,
)
from keras_sagan.metrics import extractor as extractor_module
from keras_sagan.metrics import inception as inception_module


class CountingExtractor:
    """A small keras extractor with the provenance attributes of `InceptionFeatureExtractor`; counts its calls."""

    network = "tiny"
    feature_dim = 16
    image_size = 8
    resize_method = "none"

    def __init__(self, weights_sha256="0123", seed=1):
        self.weights_sha256 = weights_sha256
        self.model = tiny_extractor(with_logits=False)
        if seed != 1:
            self.model.set_weights([w + 1.0 for w in self.model.get_weights()])
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        images = keras.ops.image.resize(images, (8, 8))  # Any image size, as InceptionV3 takes.
        return keras.ops.convert_to_numpy(self.model(images, training=False))


@pytest.fixture
def tiny_inception(monkeypatch):
    use_tiny_inception(monkeypatch)


# -- make_extractor -------------------------------------------------------------------------------


def test_make_extractor_builds_the_fid_network_by_default(monkeypatch):
    from keras_sagan.metrics import fid_extractor

    built = []
    monkeypatch.setattr(fid_extractor, "fid_inception", lambda weights, resize: built.append((weights, resize)))
    make_extractor(RANDOM_WEIGHTS)
    make_extractor("w.pth", "fid", "clean")
    assert built == [(RANDOM_WEIGHTS, "bilinear"), ("w.pth", "clean")]
    with pytest.raises(
        UsageError,
        match=r"^`--inception` must be one of \('fid', 'keras', 'fashion_mnist'\); "
        r"received: --inception='tf'$",
    ):
        make_extractor(None, "tf")
    with pytest.raises(UsageError, match="--inception keras resizes only 'bilinear'; received: resize='clean'"):
        make_extractor(None, "keras", "clean")


def test_make_extractor_random_and_file_weights(tiny_inception, tmp_path):
    random = make_extractor(RANDOM_WEIGHTS, "keras")
    assert random.weights is None and random.weights_sha256 == "random"
    assert (random.network, random.image_size, random.resize_method) == (
        "keras.applications.InceptionV3/avg_pool",
        299,
        "bilinear",
    )
    path = tiny_weights_file(tmp_path / "tiny.weights.h5")
    from_file = make_extractor(path, "keras")
    with open(path, "rb") as f:
        assert from_file.weights_sha256 == hashlib.sha256(f.read()).hexdigest()
    assert from_file.feature_dim == TINY_FEATURES
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    again = make_extractor(path, "keras")
    np.testing.assert_array_equal(from_file(images), again(images))  # The same file: the same network.


def test_make_extractor_finds_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    cached = tmp_path / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
    cached.write_bytes(b"")
    built = []
    monkeypatch.setattr(extractor_module, "InceptionFeatureExtractor", lambda weights: built.append(weights))
    make_extractor(None, "keras")
    assert built == [str(cached)]


def test_make_extractor_errors_are_one_line_and_name_the_flag(tiny_inception, tmp_path, monkeypatch):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(UsageError) as info:
        make_extractor(missing, "keras")
    message = str(info.value)
    assert message.startswith(f"InceptionV3 weights file not found: {missing!r}; download ")
    assert inception_module.WEIGHTS_URL in message and "--inception_weights FILE" in message and "\n" not in message

    (tmp_path / "empty_home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(UsageError) as info:
        make_extractor(None, "keras")
    message = str(info.value)
    assert message.startswith(
        f"InceptionV3 ImageNet weights not found in the Keras cache ['{tmp_path}/empty_home/models']"
    )
    assert "--inception_weights FILE" in message

    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file\n" * 10)
    with pytest.raises(UsageError) as info:
        make_extractor(str(garbage), "keras")
    assert str(info.value).startswith(f"cannot load InceptionV3 weights from {str(garbage)!r} (")
    assert "--inception_weights FILE" in str(info.value) and "\n" not in str(info.value)


# -- real_statistics ------------------------------------------------------------------------------


def _reference_statistics(extractor, spec, n, batch=4, seed=0):
    """The same images, through NumPy: mean, covariance and features."""
    images = np.concatenate([np.asarray(b) for b in spec.load(8, batch, seed, repeat=False)])[:n]
    features = keras.ops.convert_to_numpy(extractor.model(images)).astype(np.float64)
    return features.mean(0), np.cov(features, rowvar=False), features


def test_real_statistics_matches_numpy_and_records_provenance():
    extractor = CountingExtractor()
    stats = real_statistics(DataSpec(), extractor, image_size=8, num_samples=10, batch_size=4, seed=0)
    mu, sigma, features = _reference_statistics(extractor, DataSpec(), 10)
    np.testing.assert_allclose(stats.mu, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.sigma, sigma, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats.features, features, rtol=1e-5, atol=1e-6)
    assert stats.count == 10 and stats.notes == [] and stats.loaded_from is None
    assert stats.provenance == {
        "data": {"dataset": "demo"},
        "image_size": 8,
        "num_samples": 10,
        "count": 10,
        "seed": 0,
        "extractor": {
            "network": "tiny",
            "feature_dim": 16,
            "weights_sha256": "0123",
            "image_size": 8,
            "resize": "none",
        },
    }


def test_a_short_dataset_gives_a_note():
    stats = real_statistics(DataSpec(), CountingExtractor(), image_size=8, num_samples=150, batch_size=50)
    assert stats.count == 100 and stats.features.shape == (100, 16)
    assert stats.notes == ["The dataset ended after 100 images; asked for num_samples=150."]


def test_the_cache_is_reused_only_while_the_provenance_matches(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        keras.utils.save_img(folder / f"{i}.png", rng.integers(0, 256, (12, 12, 3)).astype("uint8"))
    cache = str(tmp_path / "run" / "real_stats.npz")
    extractor = CountingExtractor()
    kwargs = {"image_size": 8, "num_samples": 6, "batch_size": 3, "cache": cache}

    first = real_statistics(DataSpec(), extractor, **kwargs)
    assert os.path.isfile(cache) and extractor.calls == 2
    again = real_statistics(DataSpec(), extractor, **kwargs)
    assert extractor.calls == 2 and again.loaded_from == cache  # Read, not computed.
    np.testing.assert_array_equal(again.sigma, first.sigma)
    np.testing.assert_array_equal(again.features, first.features)

    # Each of these changes the statistics: computed again (and the cache rewritten).
    changes = [
        (DataSpec("folder", image_folder=str(folder)), extractor, kwargs),
        (DataSpec(), extractor, {**kwargs, "num_samples": 7}),
        (DataSpec(), extractor, {**kwargs, "seed": 1}),
        (DataSpec(), extractor, {**kwargs, "image_size": 16}),
        (DataSpec(), CountingExtractor(weights_sha256="4567", seed=2), kwargs),
    ]
    for spec, other, changed in changes:
        before = other.calls
        result = real_statistics(spec, other, **changed)
        assert other.calls > before and result.loaded_from is None
        assert StatisticsFile.load(cache).provenance == result.provenance


def test_random_or_unknown_weights_are_never_reused(tmp_path):
    cache = str(tmp_path / "real_stats.npz")
    for weights in (RANDOM_WEIGHTS, None):
        extractor = CountingExtractor(weights_sha256=weights)
        real_statistics(DataSpec(), extractor, image_size=8, num_samples=4, batch_size=4, cache=cache)
        real_statistics(DataSpec(), extractor, image_size=8, num_samples=4, batch_size=4, cache=cache)
        assert extractor.calls == 2


def test_a_damaged_or_old_cache_is_recomputed(tmp_path):
    cache = tmp_path / "real_stats.npz"
    cache.write_bytes(b"half a file")
    extractor = CountingExtractor()
    real_statistics(DataSpec(), extractor, image_size=8, num_samples=4, batch_size=4, cache=str(cache))
    assert extractor.calls == 1 and StatisticsFile.load(cache).count == 4
    np.savez(cache, mu=np.zeros(16), sigma=np.eye(16), count=4, features=np.zeros((4, 16)), key="{}")  # Old schema.
    real_statistics(DataSpec(), extractor, image_size=8, num_samples=4, batch_size=4, cache=str(cache))
    assert extractor.calls == 2


# -- make_evaluation_callback ---------------------------------------------------------------------


def _callback_kwargs(tmp_path, **overrides):
    kwargs = {
        "image_size": 8,
        "every": 2,
        "num_samples": 10,
        "stats_path": None,
        "inception_weights": RANDOM_WEIGHTS,
        "inception": "keras",
        "cache_path": str(tmp_path / "run" / "real_stats.npz"),
        "log_dir": str(tmp_path / "run" / "logs" / "eval"),
        "seed": 0,
    }
    return {**kwargs, **overrides}


def test_make_evaluation_callback_computes_and_caches(tiny_inception, tmp_path, capsys, monkeypatch):
    weights = tiny_weights_file(tmp_path / "tiny.weights.h5")
    calls = []
    compute = service.compute_dataset_statistics
    monkeypatch.setattr(service, "compute_dataset_statistics", lambda *a, **k: calls.append(k) or compute(*a, **k))
    kwargs = _callback_kwargs(tmp_path, inception_weights=weights)
    callback = make_evaluation_callback(DataSpec(), **kwargs)
    assert isinstance(callback, EvaluationCallback)
    assert (callback.every_n_steps, callback.num_samples, callback.batch_size, callback.seed) == (2, 10, 10, 0)
    assert callback.log_dir == kwargs["log_dir"] and callback.extractor.weights == weights
    cache = kwargs["cache_path"]
    assert capsys.readouterr().out == f"real statistics for evaluation: 10 demo images, saved to {cache}\n"
    stored = StatisticsFile.load(cache)
    np.testing.assert_array_equal(callback.real_statistics[0], stored.mu)
    np.testing.assert_array_equal(callback.real_features_for_kid, stored.features)
    assert calls == [{"num_samples": 10, "keep_features": 10, "progress": False}]

    again = make_evaluation_callback(DataSpec(), **kwargs)  # A resume: the cache is read.
    assert len(calls) == 1 and capsys.readouterr().out == f"real statistics for evaluation: {cache} (10 images)\n"
    np.testing.assert_array_equal(again.real_statistics[1], callback.real_statistics[1])
    make_evaluation_callback(DataSpec(), **{**kwargs, "num_samples": 20})
    assert len(calls) == 2
    make_evaluation_callback(DataSpec(), **{**kwargs, "inception_weights": RANDOM_WEIGHTS})
    make_evaluation_callback(DataSpec(), **{**kwargs, "inception_weights": RANDOM_WEIGHTS})
    assert len(calls) == 4


def test_make_evaluation_callback_with_a_stats_file(tiny_inception, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(service, "compute_dataset_statistics", None)  # Must not be called.
    features = np.random.default_rng(0).standard_normal((12, TINY_FEATURES)).astype("float32")
    path = tmp_path / "with_features.npz"
    np.savez(path, mu=features.mean(0), sigma=np.cov(features, rowvar=False), features=features)
    callback = make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=str(path)))
    np.testing.assert_allclose(callback.real_statistics[0], features.mean(0))
    np.testing.assert_array_equal(callback.real_features_for_kid, features)
    assert "warning: eval_stats=" in capsys.readouterr().out  # It does not record its network.
    np.savez(path, mu=np.zeros(TINY_FEATURES), sigma=np.eye(TINY_FEATURES))  # pytorch-fid style: the 2015 network.
    with pytest.raises(UsageError, match="was computed with inception-2015-12-05/pool3, not keras.*--inception fid$"):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=str(path)))
    assert not os.path.exists(tmp_path / "run" / "real_stats.npz")


def test_make_evaluation_callback_errors_name_the_setting(tiny_inception, tmp_path):
    missing = str(tmp_path / "missing.npz")
    with pytest.raises(UsageError, match=f"^eval_stats='{missing}': cannot read real statistics: no such file$"):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=missing))
    wrong_dim = tmp_path / "wrong_dim.npz"
    np.savez(wrong_dim, mu=np.zeros(2048), sigma=np.eye(2048), count=np.int64(3))  # keras_sagan's older file.
    with pytest.raises(UsageError, match=r"^eval_stats=.*holds mu \(2048,\).*the Inception features are 16-d"):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=str(wrong_dim)))
    nope = str(tmp_path / "nope.h5")
    with pytest.raises(UsageError, match=f"not found: '{nope}'.*--inception_weights FILE"):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, inception_weights=nope))
