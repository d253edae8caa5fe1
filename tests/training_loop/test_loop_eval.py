"""Evaluation during training: TrainConfig.eval_* settings, the EvaluationCallback of make_callbacks,
the cached real statistics, and a tiny run that logs eval/fid to TensorBoard."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from small_network import SMALL_FEATURES, small_weights_file
from tensorboard.backend.event_processing import event_accumulator
from training_loop_helpers import EXAMPLE, NO_GAN, TINY_FLAGS, evaluation_callback, tiny_config

from keras_sagan.metrics import feature_stats
from keras_sagan.metrics.feature_stats import StatisticsFile
from keras_sagan.metrics.networks import DOMAIN_NETWORK, file_sha256
from keras_sagan.run_directory import REAL_STATS_FILENAME
from keras_sagan.training import loop


def _config(model_dir, **overrides):
    # --inception fashion_mnist: the small network (the FID network has its own tests).
    return tiny_config(
        model_dir, **{"eval_every": 2, "eval_num_samples": 10, "inception": "fashion_mnist", **overrides}
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("eval_every", -1, "`eval_every` must be an int >= 0 (0 = no evaluation); received: eval_every=-1"),
        ("eval_every", True, "`eval_every` must be an int >= 0 (0 = no evaluation); received: eval_every=True"),
        ("eval_num_samples", 1, "`eval_num_samples` must be an int >= 2; received: eval_num_samples=1"),
        ("eval_stats", "", "`eval_stats` must be None or a file path; received: eval_stats=''"),
        ("inception_weights", 3, "`inception_weights` must be None or a file path; received: inception_weights=3"),
    ],
)
def test_bad_settings_raise_naming_the_value(field, value, message, tmp_path):
    with pytest.raises(ValueError) as info:
        tiny_config(tmp_path, **{field: value})
    assert str(info.value) == message


def test_evaluation_is_off_by_default(tmp_path):
    config = tiny_config(tmp_path)
    assert config.eval_every == 0
    callbacks = loop.make_callbacks(config, loop.make_manager(config, NO_GAN))
    assert "EvaluationCallback" not in [type(c).__name__ for c in callbacks]


def test_callback_settings_and_cached_real_statistics(tmp_path, monkeypatch):
    weights = small_weights_file(tmp_path / "small.weights.h5")
    calls = []
    compute = feature_stats.compute_dataset_statistics
    monkeypatch.setattr(
        feature_stats, "compute_dataset_statistics", lambda *a, **k: calls.append(k) or compute(*a, **k)
    )
    config = _config(tmp_path / "run", inception_weights=weights, ema_decay=0.9)

    callbacks = loop.make_callbacks(config, loop.make_manager(config, NO_GAN))
    names = [type(c).__name__ for c in callbacks]
    assert names[-2:] == ["EvaluationCallback", "CheckpointSaver"]  # Evaluates before the step is saved.
    callback = callbacks[-2]
    assert (callback.every_n_steps, callback.num_samples, callback.batch_size, callback.seed) == (2, 10, 10, 0)
    assert callback.log_dir == os.path.join(config.model_dir, "logs", "eval")
    assert callback.extractor.weights_sha256 == file_sha256(weights)
    cache = os.path.join(config.model_dir, REAL_STATS_FILENAME)
    with np.load(cache) as data:
        assert int(data["count"]) == 10 and data["features"].shape == (10, SMALL_FEATURES)
        np.testing.assert_allclose(callback.real_statistics[0], data["mu"])
        np.testing.assert_array_equal(callback.real_features_for_kid, data["features"])
    assert calls == [{"num_samples": 10, "keep_features": 10, "progress": False}]

    # A rerun (a resume) reads the cache; other settings or random weights recompute it.
    again = evaluation_callback(config)
    np.testing.assert_array_equal(again.real_statistics[1], callback.real_statistics[1])
    assert len(calls) == 1
    more = evaluation_callback(_config(tmp_path / "run", inception_weights=weights, eval_num_samples=20))
    assert len(calls) == 2 and more.real_features_for_kid.shape == (20, SMALL_FEATURES)
    random = evaluation_callback(_config(tmp_path / "run", inception_weights="random", eval_num_samples=20))
    evaluation_callback(_config(tmp_path / "run", inception_weights="random", eval_num_samples=20))
    assert len(calls) == 4 and random.extractor.weights_sha256 == "random"


def test_eval_stats_file_replaces_the_computation(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_stats, "compute_dataset_statistics", None)  # Must not be called.
    rng = np.random.default_rng(0)
    features = rng.standard_normal((12, SMALL_FEATURES)).astype("float32")
    with_features = tmp_path / "with_features.npz"
    provenance = {"extractor": {"network": DOMAIN_NETWORK}}
    StatisticsFile(features.mean(0), np.cov(features, rowvar=False), 12, features, provenance).save(with_features)
    callback = evaluation_callback(_config(tmp_path / "run", eval_stats=str(with_features), inception_weights="random"))
    np.testing.assert_allclose(callback.real_statistics[0], features.mean(0))
    np.testing.assert_array_equal(callback.real_features_for_kid, features)
    # Without features: FID works, KID is not computed.
    mu_sigma = tmp_path / "mu_sigma.npz"
    StatisticsFile(np.zeros(SMALL_FEATURES), np.eye(SMALL_FEATURES), 12, provenance=provenance).save(mu_sigma)
    callback = evaluation_callback(_config(tmp_path / "run", eval_stats=str(mu_sigma), inception_weights="random"))
    assert callback.real_features_for_kid is None
    # keras_sagan's older mu/sigma/count file came from the removed Keras InceptionV3: refused.
    np.savez(mu_sigma, mu=np.zeros(SMALL_FEATURES), sigma=np.eye(SMALL_FEATURES), count=np.int64(12))
    with pytest.raises(ValueError, match=r"mu_sigma.npz': was computed with Keras' InceptionV3, which keras_sagan"):
        evaluation_callback(_config(tmp_path / "run", eval_stats=str(mu_sigma), inception_weights="random"))
    # pytorch-fid style (mu and sigma only): the 2015 network's statistics, refused with another network.
    np.savez(mu_sigma, mu=np.zeros(SMALL_FEATURES), sigma=np.eye(SMALL_FEATURES))
    with pytest.raises(ValueError, match=r"mu_sigma.npz': was computed with inception-2015-12-05/pool3, not fashion"):
        evaluation_callback(_config(tmp_path / "run", eval_stats=str(mu_sigma), inception_weights="random"))
    assert not os.path.exists(tmp_path / "run" / REAL_STATS_FILENAME)


def test_missing_or_wrong_files_raise_naming_the_setting(tmp_path, monkeypatch):
    missing = str(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=f"eval_stats='{missing}': cannot read real statistics"):
        evaluation_callback(_config(tmp_path, eval_stats=missing, inception_weights="random"))
    wrong_keys = tmp_path / "wrong_keys.npz"
    np.savez(wrong_keys, mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"wrong_keys.npz': cannot read real statistics: it holds \['mean'\]"):
        evaluation_callback(_config(tmp_path, eval_stats=str(wrong_keys), inception_weights="random"))
    wrong_dim = tmp_path / "wrong_dim.npz"
    StatisticsFile(np.zeros(2048), np.eye(2048), 3, provenance={"extractor": {"network": DOMAIN_NETWORK}}).save(
        wrong_dim
    )
    with pytest.raises(ValueError, match=r"holds mu \(2048,\).*the Inception features are 128-d"):
        evaluation_callback(_config(tmp_path, eval_stats=str(wrong_dim), inception_weights="random"))

    nope = str(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match=f"^domain classifier weights not found: {nope}; "):
        evaluation_callback(_config(tmp_path, inception_weights=nope))
    with pytest.raises(ValueError, match=f"^FID Inception weights file not found: '{nope}'; download https://"):
        evaluation_callback(_config(tmp_path, inception="fid", inception_weights=nope))


@pytest.mark.slow
def test_tiny_run_logs_eval_fid_to_tensorboard(tmp_path):
    """The example script with the 2015 FID Inception network (random weights): eval/* at step 2 in logs/eval."""
    model_dir = tmp_path / "run"
    args = [
        *TINY_FLAGS,
        "--steps=2",
        "--log_every=2",
        "--sample_every=2",
        "--checkpoint_every=2",
        "--ema_decay=0.9",
        "--export_dir=",
        "--eval_every=2",
        "--eval_num_samples=10",
        "--inception_weights=random",
        f"--model_dir={model_dir}",
    ]
    # One BLAS thread: FID's 2048x2048 eigendecompositions run ~15x slower with 2 threads on a busy 2-core machine.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"real statistics for evaluation: 10 demo images, saved to {model_dir / 'real_stats.npz'}" in proc.stdout

    events = event_accumulator.EventAccumulator(str(model_dir / "logs" / "eval"), size_guidance={"tensors": 0})
    events.Reload()
    assert {"eval/fid", "eval/kid", "eval/is"} <= set(events.Tags()["tensors"])
    fids = events.Tensors("eval/fid")
    assert [e.step for e in fids] == [2]
    assert all(np.isfinite(float(tf.make_ndarray(e.tensor_proto))) for e in fids)
    assert [e.step for e in events.Tensors("eval/kid")] == [2]
