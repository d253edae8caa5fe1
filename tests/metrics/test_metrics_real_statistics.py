"""make_extractor's networks, weights and errors; real_statistics and its cache; make_evaluation_callback's
wiring (the small Fashion-MNIST network with random weights; nothing is downloaded)."""

import hashlib
import os

import keras
import numpy as np
import pytest
from metrics_testing import tiny_extractor
from small_network import SMALL_FEATURES, small_weights_file

from keras_sagan.data import DataSpec
from keras_sagan.errors import UsageError
from keras_sagan.metrics import (
    RANDOM_WEIGHTS,
    EvaluationCallback,
    StatisticsFile,
    feature_stats,
    make_evaluation_callback,
    make_extractor,
    real_statistics,
)
from keras_sagan.metrics.networks import DOMAIN_NETWORK, file_sha256


class CountingExtractor:
    """A small keras extractor with the provenance attributes of `make_extractor`'s networks; counts its calls."""

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
        images = keras.ops.image.resize(images, (8, 8))  # Any image size, as the feature networks take.
        return keras.ops.convert_to_numpy(self.model(images, training=False))


# -- make_extractor -------------------------------------------------------------------------------


def test_make_extractor_builds_the_fid_network_by_default(monkeypatch):
    from keras_sagan.metrics import fid_network

    built = []
    monkeypatch.setattr(fid_network, "fid_inception", lambda weights, resize: built.append((weights, resize)))
    make_extractor(RANDOM_WEIGHTS)
    make_extractor("w.pth", "fid", "clean")
    assert built == [(RANDOM_WEIGHTS, "bilinear"), ("w.pth", "clean")]
    with pytest.raises(
        UsageError, match=r"^`--inception` must be one of \('fid', 'fashion_mnist'\); received: --inception='keras'$"
    ):
        make_extractor(None, "keras")
    with pytest.raises(UsageError, match="--inception fashion_mnist resizes only 'bilinear'; received: resize='clean'"):
        make_extractor(None, "fashion_mnist", "clean")


def test_the_evaluate_flag_offers_exactly_the_networks():
    from keras_sagan.cli.evaluate import INCEPTION_CHOICES
    from keras_sagan.metrics import networks

    assert INCEPTION_CHOICES == networks.CHOICES == ("fid", "fashion_mnist")


def test_make_extractor_random_and_file_weights(tmp_path):
    random = make_extractor(RANDOM_WEIGHTS, "fashion_mnist")
    assert (random.network, random.image_size, random.weights_sha256) == (DOMAIN_NETWORK, 32, "random")
    path = small_weights_file(tmp_path / "small.weights.h5")
    from_file = make_extractor(path, "fashion_mnist")
    with open(path, "rb") as f:
        assert from_file.weights_sha256 == hashlib.sha256(f.read()).hexdigest()
    assert from_file.feature_dim == SMALL_FEATURES
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    again = make_extractor(path, "fashion_mnist")
    for ours, theirs in zip(from_file(images), again(images)):  # The same file: the same network.
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(from_file(images)[0], random(images)[0])


def test_make_extractor_errors_are_one_line(tmp_path):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(UsageError, match=f"^domain classifier weights not found: {missing}; "):
        make_extractor(missing, "fashion_mnist")
    with pytest.raises(UsageError, match=f"^FID Inception weights file not found: '{missing}'; download https://"):
        make_extractor(missing, "fid")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file\n" * 10)
    with pytest.raises(UsageError) as info:
        make_extractor(str(garbage), "fashion_mnist")
    assert str(info.value).startswith(f"cannot load the Fashion-MNIST network's weights from {str(garbage)!r} (")
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
        "inception": "fashion_mnist",
        "cache_path": str(tmp_path / "run" / "real_stats.npz"),
        "log_dir": str(tmp_path / "run" / "logs" / "eval"),
        "seed": 0,
    }
    return {**kwargs, **overrides}


def test_make_evaluation_callback_computes_and_caches(tmp_path, capsys, monkeypatch):
    weights = small_weights_file(tmp_path / "small.weights.h5")
    calls = []
    compute = feature_stats.compute_dataset_statistics
    monkeypatch.setattr(
        feature_stats, "compute_dataset_statistics", lambda *a, **k: calls.append(k) or compute(*a, **k)
    )
    kwargs = _callback_kwargs(tmp_path, inception_weights=weights)
    callback = make_evaluation_callback(DataSpec(), **kwargs)
    assert isinstance(callback, EvaluationCallback)
    assert (callback.every_n_steps, callback.num_samples, callback.batch_size, callback.seed) == (2, 10, 10, 0)
    assert callback.log_dir == kwargs["log_dir"] and callback.extractor.weights_sha256 == file_sha256(weights)
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


def test_make_evaluation_callback_with_a_stats_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(feature_stats, "compute_dataset_statistics", None)  # Must not be called.
    features = np.random.default_rng(0).standard_normal((12, SMALL_FEATURES)).astype("float32")
    path = tmp_path / "with_features.npz"
    provenance = {"extractor": {"network": DOMAIN_NETWORK}, "image_size": 16}
    StatisticsFile(features.mean(0), np.cov(features, rowvar=False), 12, features, provenance).save(path)
    callback = make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=str(path)))
    np.testing.assert_allclose(callback.real_statistics[0], features.mean(0))
    np.testing.assert_array_equal(callback.real_features_for_kid, features)
    assert "warning: eval_stats=" in capsys.readouterr().out  # From 16x16 images; the generator's are 8x8.
    np.savez(path, mu=np.zeros(SMALL_FEATURES), sigma=np.eye(SMALL_FEATURES))  # pytorch-fid style: the 2015 network.
    with pytest.raises(UsageError, match="was computed with inception-2015-12-05/pool3, not fashion.*--inception fid$"):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=str(path)))
    assert not os.path.exists(tmp_path / "run" / "real_stats.npz")


def test_make_evaluation_callback_errors_name_the_setting(tmp_path):
    missing = str(tmp_path / "missing.npz")
    with pytest.raises(UsageError, match=f"^eval_stats='{missing}': cannot read real statistics: no such file$"):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=missing))
    wrong_dim = tmp_path / "wrong_dim.npz"
    StatisticsFile(np.zeros(2048), np.eye(2048), 3, provenance={"extractor": {"network": DOMAIN_NETWORK}}).save(
        wrong_dim
    )
    with pytest.raises(UsageError, match=r"^eval_stats=.*holds mu \(2048,\).*the Inception features are 128-d"):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, stats_path=str(wrong_dim)))
    nope = str(tmp_path / "nope.h5")
    with pytest.raises(UsageError, match=f"^domain classifier weights not found: {nope}; "):
        make_evaluation_callback(DataSpec(), **_callback_kwargs(tmp_path, inception_weights=nope))
