import math

import numpy as np
import pytest
import tensorflow as tf
from metrics_testing import TinyGenerator, sample_images, tiny_extractor

from keras_sagan.metrics import (
    StreamingStatistics,
    compute_dataset_statistics,
    evaluate_generator,
    extract_features,
)

KEYS = {"fid", "is_mean", "is_std", "kid_mean", "kid_std", "precision", "recall", "density", "coverage", "num_samples"}


@pytest.fixture(scope="module")
def generator():
    return TinyGenerator(z_dim=8)


@pytest.fixture(scope="module")
def extractor():
    return tiny_extractor()


def _dataset(images, batch=50, with_labels=False):
    ds = tf.data.Dataset.from_tensor_slices(images)
    if with_labels:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(len(images))))
    return ds.batch(batch)


def test_compute_dataset_statistics_counts_and_keeps_features(generator, extractor):
    images = sample_images(generator, 130, seed=5)
    stats = compute_dataset_statistics(_dataset(images, 40), extractor, num_samples=100)
    assert isinstance(stats, StreamingStatistics) and stats.count == 100
    features, _ = extract_features(extractor, images[:100])
    np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-5, atol=1e-6)
    stats, kept = compute_dataset_statistics(_dataset(images, 40, with_labels=True), extractor, keep_features=45)
    assert stats.count == 130 and kept.shape == (45, 16)
    with pytest.warns(UserWarning, match="ended after 130"):
        compute_dataset_statistics(_dataset(images), extractor, num_samples=200)


def test_evaluate_generator_against_own_and_shifted_statistics(generator, extractor):
    real = sample_images(generator, 600, seed=1)
    shifted = sample_images(TinyGenerator(z_dim=8, shift=0.4), 600, seed=1)
    own_stats, own_feats = compute_dataset_statistics(_dataset(real), extractor, keep_features=600)
    far_stats, far_feats = compute_dataset_statistics(_dataset(shifted), extractor, keep_features=600)
    kwargs = {
        "num_samples": 600,
        "batch_size": 64,
        "extractor": extractor,
        "progress": False,
        "kid_subset_size": 200,
        "kid_num_subsets": 20,
    }
    own = evaluate_generator(generator, real_statistics=own_stats, real_features_for_kid=own_feats, **kwargs)
    far = evaluate_generator(generator, real_statistics=far_stats, real_features_for_kid=far_feats, **kwargs)
    assert set(own) == KEYS and own["num_samples"] == 600
    assert all(math.isfinite(v) for v in own.values())
    assert far["fid"] > 10 * own["fid"] and far["fid"] > 0.1
    assert far["kid_mean"] > 10 * abs(own["kid_mean"])
    assert 1.0 <= own["is_mean"] <= 10.0
    # Same seed, same latents: deterministic.
    again = evaluate_generator(generator, real_statistics=own_stats, **kwargs)
    assert again["fid"] == pytest.approx(own["fid"], rel=1e-6)
    assert math.isnan(again["kid_mean"])


def test_evaluate_generator_with_dataset_and_conditional_labels(extractor):
    conditional = TinyGenerator(z_dim=8, num_classes=3)
    calls = []

    def labels_fn(rng, n):
        calls.append(n)
        return rng.integers(0, 3, size=(n,)).astype("int32")

    real = _dataset(sample_images(TinyGenerator(z_dim=8), 100, seed=2), with_labels=True)
    results = evaluate_generator(
        conditional,
        100,
        32,
        extractor,
        real_statistics=real,
        labels_fn=labels_fn,
        progress=True,
        kid_subset_size=50,
    )
    assert calls == [32, 32, 32, 4]
    assert all(math.isfinite(results[k]) for k in KEYS)


def test_missing_inputs_give_nan(generator):
    results = evaluate_generator(generator, 20, 8, tiny_extractor(with_logits=False), progress=False)
    assert set(results) == KEYS
    assert math.isnan(results["fid"]) and math.isnan(results["is_mean"])
    assert math.isnan(results["kid_mean"])


def test_evaluate_generator_validates(generator, extractor):
    with pytest.raises(ValueError, match="num_samples"):
        evaluate_generator(generator, 0, 8, extractor)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_generator(generator, 10, 0, extractor)
    with pytest.raises(ValueError, match="4-d but the extractor gives 16-d"):
        evaluate_generator(
            generator,
            10,
            5,
            extractor,
            real_statistics=(np.zeros(4), np.eye(4)),
            progress=False,
        )

    def bad_extractor(images):
        return np.zeros((len(images), 3))

    bad_extractor.feature_dim = 4
    with pytest.raises(ValueError, match="feature_dim is 4"):
        evaluate_generator(generator, 10, 5, bad_extractor, progress=False)
