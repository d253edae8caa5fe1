import glob
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from metrics_testing import TinyGenerator, sample_images, tiny_extractor

from keras_sagan.metrics import EvaluationCallback, StatisticsFile, compute_dataset_statistics


class FakeGAN(keras.Model):
    """Just enough of SAGAN's public interface for the callback: `step` and `sampling_generator()`."""

    def __init__(self, with_ema=False):
        super().__init__()
        self.generator = TinyGenerator(z_dim=8)
        self.ema = TinyGenerator(z_dim=8, seed=3) if with_ema else None
        self.iterations = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="step")
        self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")

    @property
    def step(self):
        return self.iterations

    def sampling_generator(self):
        return self.ema if self.ema is not None else self.generator

    def train_step(self, data):
        self.iterations.assign_add(1)
        return {"loss": self.bias + 1.0}


@pytest.fixture(scope="module")
def real():
    extractor = tiny_extractor()
    images = sample_images(TinyGenerator(z_dim=8, seed=5), 200, seed=4)
    stats, feats = compute_dataset_statistics(
        tf.data.Dataset.from_tensor_slices(images).batch(50),
        extractor,
        keep_features=200,
    )
    return extractor, stats, feats


def _events(log_dir):
    found = {}
    for path in glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return found


def _batches(n):
    return tf.data.Dataset.from_tensor_slices(np.zeros((n, 1), "float32")).batch(1)


def test_fit_evaluates_every_n_steps_and_writes_tensorboard(real, tmp_path):
    extractor, stats, feats = real
    callback = EvaluationCallback(
        stats,
        extractor,
        every_n_steps=2,
        num_samples=64,
        batch_size=32,
        log_dir=str(tmp_path),
        real_features_for_kid=feats,
        kid_subset_size=50,
        kid_num_subsets=5,
    )
    gan = FakeGAN()
    gan.compile()
    history = gan.fit(_batches(5), epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    assert [step for step, _ in callback.history] == [2, 4]
    events = _events(tmp_path)
    assert [step for step, _ in events["eval/fid"]] == [2, 4]
    assert [step for step, _ in events["eval/kid"]] == [2, 4]
    assert "eval/is" in events
    # Precision, recall, density and coverage on the same features, k = 5 unless told.
    for key in ("precision", "recall", "density", "coverage"):
        assert [step for step, _ in events[f"eval/{key}"]] == [2, 4]
        assert events[f"eval/{key}"][-1][1] == pytest.approx(callback.history[-1][1][key], rel=1e-6)
    k2 = EvaluationCallback(stats, extractor, every_n_steps=2, num_samples=64, real_features_for_kid=feats, prdc_k=2)
    k2.set_model(gan)
    assert k2.evaluate(2)["density"] != callback.history[0][1]["density"]
    fid = callback.history[-1][1]["fid"]
    assert math.isfinite(fid) and events["eval/fid"][-1][1] == pytest.approx(fid, rel=1e-5)
    assert history.history["eval/fid"] == [pytest.approx(fid, rel=1e-6)]
    # A second fit continues from the model's step: steps 6 and 8.
    gan.fit(_batches(4), epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    assert [step for step, _ in callback.history] == [2, 4, 6, 8]


def test_resume_counts_from_the_model_step_and_samples_its_sampling_generator(real):
    extractor, stats, _ = real
    gan = FakeGAN(with_ema=True)
    gan.iterations.assign(3)  # As if restored from a checkpoint at step 3.
    callback = EvaluationCallback(stats, extractor, every_n_steps=2, num_samples=16, batch_size=16)
    gan.compile()
    gan.fit(_batches(4), epochs=1, verbose=0, shuffle=False, callbacks=[callback])  # Steps 4, 5, 6, 7.
    assert [step for step, _ in callback.history] == [4, 6]
    assert math.isnan(callback.history[0][1]["kid_mean"])  # No real features given.
    assert gan.ema.traces > 0 and gan.generator.traces == 0


def test_a_model_without_step_or_sampling_generator_is_refused(real):
    extractor, stats, _ = real
    callback = EvaluationCallback(stats, extractor, every_n_steps=1)
    plain = keras.Sequential([keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="`model` must be a model with `step` and `sampling_generator"):
        callback.set_model(plain)


def test_batch_logs_receive_results(real):
    extractor, stats, _ = real
    gan = FakeGAN()
    callback = EvaluationCallback(stats, extractor, every_n_steps=1, num_samples=8, batch_size=8)
    callback.set_model(gan)
    gan.iterations.assign(1)
    logs = {}
    callback.on_train_batch_end(0, logs)
    assert set(logs) == {"eval/fid", "eval/is"}
    assert callback.history[0][0] == 1


def test_constructor_validates(real, tmp_path):
    extractor, stats, _ = real
    with pytest.raises(ValueError, match="every_n_steps=0"):
        EvaluationCallback(stats, extractor, every_n_steps=0)
    with pytest.raises(ValueError, match="num_samples=1"):
        EvaluationCallback(stats, extractor, every_n_steps=5, num_samples=1)
    with pytest.raises(ValueError, match=r"real_features_for_kid.*\(10, 3\)"):
        EvaluationCallback(stats, extractor, every_n_steps=5, real_features_for_kid=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="real_statistics"):
        EvaluationCallback(object(), extractor, every_n_steps=5)
    path = tmp_path / "real.npz"
    StatisticsFile.from_streaming(stats).save(path)
    from_file = EvaluationCallback(str(path), extractor, every_n_steps=5)
    np.testing.assert_allclose(from_file._real_mu_sigma[0], stats.mean)


def test_a_statistics_file_brings_its_features_for_kid(real):
    extractor, stats, feats = real
    callback = EvaluationCallback(StatisticsFile.from_streaming(stats, feats), extractor, every_n_steps=1)
    np.testing.assert_array_equal(callback.real_features_for_kid, feats)
    np.testing.assert_array_equal(callback._real_mu_sigma[1], stats.covariance)


def test_a_network_name_builds_that_network(real, monkeypatch):
    """`EvaluationCallback(stats, "fid" | "fashion_mnist", ...)`: make_extractor's network, published weights."""
    from keras_sagan.metrics import callback as callback_module

    extractor, stats, _ = real
    asked = []
    monkeypatch.setattr(callback_module, "make_extractor", lambda network: asked.append(network) or extractor)
    for name in ("fid", "fashion_mnist"):
        assert EvaluationCallback(stats, name, every_n_steps=1).extractor is extractor
    assert asked == ["fid", "fashion_mnist"]
