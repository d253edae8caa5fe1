"""Every training flag (`keras_sagan.training.flags`) reaches the TrainConfig and changes what the run builds."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from small_network import SMALL_FEATURES, small_weights_file
from tensorflow.python.framework import config as tf_config
from training_loop_helpers import NO_GAN, TINY_FLAGS, evaluation_callback

import keras_sagan.data
from keras_sagan import backend
from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.state_file import read_state
from keras_sagan.metrics import StatisticsFile
from keras_sagan.metrics import callback as callback_module
from keras_sagan.metrics.domain import DomainClassifierExtractor
from keras_sagan.metrics.networks import DOMAIN_NETWORK
from keras_sagan.run_directory import REAL_STATS_FILENAME, RunDirectory
from keras_sagan.training import builders, loop
from keras_sagan.training import config as config_lib
from keras_sagan.training import flags as train_flags
from keras_sagan.training.guard import TrainingDiverged

DEFAULT = train_flags.parse(["train"])


def _parse(args):
    return train_flags.parse(["train", *TINY_FLAGS, *args])


def _gan(config):
    return builders.build_gan(config, tf.distribute.get_strategy())


def _dataset_kwargs(config, monkeypatch):
    calls = []
    monkeypatch.setattr(keras_sagan.data, "load_dataset", lambda name, **kwargs: calls.append((name, kwargs)))
    builders.build_dataset(config, tf.distribute.get_strategy(), config.seed)
    ((name, kwargs),) = calls
    return {"name": name, **kwargs}


def _callbacks(config):
    return {type(c).__name__: c for c in loop.make_callbacks(config, loop.make_manager(config, NO_GAN))}


def _during_train(config, monkeypatch):
    """Runs `train` with the run itself replaced; returns what was in force inside it."""
    seen = {}

    def fake_train(config):
        seen["policy"] = keras.config.dtype_policy().name
        seen["deterministic"] = tf_config.is_op_determinism_enabled()
        seen["generator_policy"] = _gan(config).generator.dtype_policy.name

    monkeypatch.setattr(loop, "_train", fake_train)
    monkeypatch.setattr(loop, "configure_cpu_replicas", lambda n: seen.setdefault("cpu_replicas", n))
    loop.train(config)
    assert keras.config.dtype_policy().name == "float32" and not tf_config.is_op_determinism_enabled()
    return seen


def _rollbacks(config, monkeypatch):
    """How many times a run that diverges (learning rates 10) rolls back before it gives up."""
    calls = []
    rollback = loop.rollback
    monkeypatch.setattr(loop, "rollback", lambda *args, **kwargs: calls.append(1) or rollback(*args, **kwargs))
    diverging = dataclasses.replace(
        config, g_lr=10.0, d_lr=10.0, batch_size=8, steps=12, checkpoint_every=1, export_dir="", sample_every=100
    )
    with pytest.raises(TrainingDiverged, match="after 2 rollback"):
        loop.train(diverging)
    # Each rollback divided both rates by 10, and config.json says what ran last.
    with open(os.path.join(config.model_dir, "config.json")) as f:
        assert json.load(f)["train"]["g_lr"] == pytest.approx(0.1, rel=1e-6)
    for path in reading.checkpoint_paths(RunDirectory(config.model_dir)):  # Nothing non-finite was saved.
        for name, arrays in read_state(path).groups.items():
            for array in arrays:
                assert array.dtype.kind != "f" or np.all(np.isfinite(array)), (path, name)
    return len(calls)


def _evaluation(config, monkeypatch):
    """make_callbacks' EvaluationCallback, with the small Fashion-MNIST network, run from the model dir.

    Evaluation settings the case leaves at their defaults become small ones (random weights)."""
    monkeypatch.chdir(config.model_dir)
    small = {"eval_every": 2, "eval_num_samples": 10, "inception_weights": "random", "inception": "fashion_mnist"}
    config = dataclasses.replace(
        config, **{k: v for k, v in small.items() if getattr(config, k) == getattr(DEFAULT, k)}
    )
    return _callbacks(config)["EvaluationCallback"]


class _Recorder:
    """Stands in for a strategy class: records how `make_strategy` built it."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _multiworker(config, monkeypatch):
    """The strategy `make_strategy` builds for `config`, with MultiWorkerMirroredStrategy recorded."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", _Recorder)
    strategy = builders.make_strategy("multiworker", config.collective_timeout)
    resolver = strategy.kwargs["cluster_resolver"]
    assert isinstance(resolver, tf.distribute.cluster_resolver.TFConfigClusterResolver)
    return strategy


def _tpu(config, monkeypatch):
    """make_strategy("tpu") connects to the local TPU, initialises it and builds a TPUStrategy on it."""
    initialised = []
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", initialised.append)
    monkeypatch.setattr(tf.distribute, "TPUStrategy", _Recorder)
    strategy = builders.make_strategy(config.strategy)
    (resolver,) = strategy.args
    return isinstance(resolver, tf.distribute.cluster_resolver.TPUClusterResolver) and initialised == [resolver]


def _multihost(config, monkeypatch):
    """The settings `make_strategy` hands to JAX's joining of the processes (recorded; nothing joins)."""
    from keras_sagan.backend import jax as jax_backend

    calls = []

    class Recorded(Exception):
        pass

    def record(**kwargs):
        calls.append(kwargs)
        raise Recorded

    monkeypatch.setattr(jax_backend, "initialize_processes", record)
    monkeypatch.setattr(backend, "_own_module", lambda: jax_backend)  # This suite runs on TensorFlow.
    with pytest.raises(Recorded):
        builders.make_strategy(config.strategy, config.collective_timeout, loop._processes(config))
    return calls[0]


def _real_count(config):
    with np.load(os.path.join(config.model_dir, REAL_STATS_FILENAME)) as data:
        return int(data["count"])


def _given_stats(config, monkeypatch):
    monkeypatch.chdir(config.model_dir)
    provenance = {"extractor": {"network": DOMAIN_NETWORK}}
    StatisticsFile(np.full(SMALL_FEATURES, 7.0), np.eye(SMALL_FEATURES), 9, provenance=provenance).save(
        "given_stats.npz"
    )
    callback = _evaluation(config, monkeypatch)
    return callback.real_statistics[0][0] == 7.0 and not os.path.exists(REAL_STATS_FILENAME)


def _given_weights(config, monkeypatch):
    monkeypatch.chdir(config.model_dir)
    saved = small_weights_file("small.weights.h5")
    extractor = _evaluation(config, monkeypatch).extractor
    expected = DomainClassifierExtractor(saved).model.get_weights()
    return all(np.array_equal(a, b) for a, b in zip(extractor.model.get_weights(), expected))


class _Stop(Exception):
    pass


def _given_network(config, monkeypatch):
    """--inception=fashion_mnist builds the small network; the default asks make_extractor for the FID network."""
    small_network = _evaluation(config, monkeypatch).extractor.network == DOMAIN_NETWORK
    asked = []

    def record(weights, network):
        asked.append(network)
        raise _Stop

    monkeypatch.setattr(callback_module, "make_extractor", record)
    with pytest.raises(_Stop):
        evaluation_callback(dataclasses.replace(config, inception=DEFAULT.inception, eval_every=2))
    return small_network and asked == ["fid"]


# flag argv, TrainConfig field, expected value, check(config, monkeypatch) of the effect.
CASES = [
    ("--dataset=celeba", "dataset", "celeba", lambda c, m: _dataset_kwargs(c, m)["name"] == "celeba"),
    # data_dir, image_folder and download only go with their dataset (TrainConfig refuses them otherwise).
    ("--dataset=celeba --data_dir=/tfds", "data_dir", "/tfds",
     lambda c, m: _dataset_kwargs(c, m)["data_dir"] == "/tfds"),
    ("--dataset=folder --image_folder=/imgs", "image_folder", "/imgs",
     lambda c, m: _dataset_kwargs(c, m)["path"] == "/imgs"),
    ("--dataset=celeba --download", "download", True, lambda c, m: _dataset_kwargs(c, m)["download"] is True),
    ("--preset=cifar10_32", "preset", "cifar10_32", lambda c, m: _gan(c).generator.architecture == "resnet"),
    ("--image_size=64", "image_size", 64,
     lambda c, m: _gan(c).generator.image_size == 64 and _dataset_kwargs(c, m)["image_size"] == 64),
    ("--conv_dim=16", "conv_dim", 16, lambda c, m: _gan(c).discriminator.conv_dim == 16),
    ("--z_dim=32", "z_dim", 32, lambda c, m: _gan(c).generator.z_dim == 32),
    ("--attention_variant=sagan", "attention_variant", "sagan",
     lambda c, m: _gan(c).generator.attention_layers[0].variant == "sagan"),
    ("--channels=1", "channels", 1,
     lambda c, m: _gan(c).discriminator.channels == 1 and _dataset_kwargs(c, m)["channels"] == 1),
    ("--batch_size=8", "batch_size", 8,
     lambda c, m: _dataset_kwargs(c, m)["global_batch_size"] == 8
     and _callbacks(c)["ProgressLogger"].global_batch_size == 8),
    ("--steps=7", "steps", 7, lambda c, m: _callbacks(c)["ProgressLogger"].total_steps == 7),
    ("--g_lr=0.0002", "g_lr", 2e-4, lambda c, m: abs(float(_gan(c).g_optimizer.learning_rate) - 2e-4) < 1e-9),
    ("--d_lr=0.0003", "d_lr", 3e-4, lambda c, m: abs(float(_gan(c).d_optimizer.learning_rate) - 3e-4) < 1e-9),
    ("--beta1=0.5", "beta1", 0.5, lambda c, m: _gan(c).g_optimizer.beta_1 == 0.5 == _gan(c).d_optimizer.beta_1),
    ("--beta2=0.99", "beta2", 0.99, lambda c, m: _gan(c).g_optimizer.beta_2 == 0.99 == _gan(c).d_optimizer.beta_2),
    ("--d_steps=2", "d_steps", 2, lambda c, m: _gan(c).d_steps == 2),
    ("--loss=wgan-gp", "loss", "wgan-gp",
     lambda c, m: (lambda g: g.loss_name == "wgan-gp" and g.gp_weight == 10)(_gan(c))),
    ("--ema_decay=0.99", "ema_decay", 0.99,
     lambda c, m: (lambda g: g.ema_decay == 0.99 and g.ema_generator is not None)(_gan(c))),
    ("--ema_decay=0.99 --ema_statistics=moving", "ema_statistics", "moving",
     lambda c, m: _gan(c).ema_statistics == "moving"),
    ("--divergence_rollbacks=2", "divergence_rollbacks", 2, lambda c, m: _rollbacks(c, m) == 2),
    ("--seed=5", "seed", 5,
     lambda c, m: _gan(c).seed == 5 and _dataset_kwargs(c, m)["seed"] == 5
     and _callbacks(c)["SampleGridWriter"].seed == 5),
    ("--deterministic", "deterministic", True, lambda c, m: _during_train(c, m)["deterministic"]),
    ("--mixed_precision=mixed_bfloat16", "mixed_precision", "mixed_bfloat16",
     lambda c, m: _during_train(c, m)["generator_policy"] == "mixed_bfloat16"),
    ("--jit_compile=true", "jit_compile", True, lambda c, m: _gan(c).jit_compile is True),
    ("--strategy=mirrored", "strategy", "mirrored",
     lambda c, m: isinstance(builders.make_strategy(c.strategy), tf.distribute.MirroredStrategy)),
    ("--strategy=multiworker", "strategy", "multiworker",
     lambda c, m: _multiworker(c, m).kwargs["communication_options"].timeout_seconds is None),
    ("--strategy=tpu", "strategy", "tpu", _tpu),
    ("--collective_timeout=30", "collective_timeout", 30.0,
     lambda c, m: _multiworker(c, m).kwargs["communication_options"].timeout_seconds == 30.0),
    ("--strategy=multihost", "strategy", "multihost",
     lambda c, m: _multihost(c, m) == {"coordinator_address": None, "num_processes": None, "process_id": None,
                                       "timeout": 60.0}),
    ("--strategy=multihost --coordinator_address=10.0.0.1:1234", "coordinator_address", "10.0.0.1:1234",
     lambda c, m: _multihost(c, m)["coordinator_address"] == "10.0.0.1:1234"),
    ("--strategy=multihost --num_processes=4", "num_processes", 4,
     lambda c, m: _multihost(c, m)["num_processes"] == 4),
    ("--strategy=multihost --process_id=1", "process_id", 1, lambda c, m: _multihost(c, m)["process_id"] == 1),
    ("--strategy=multihost --coordinator_timeout=5", "coordinator_timeout", 5.0,
     lambda c, m: _multihost(c, m)["timeout"] == 5.0),
    ("--cpu_replicas=2", "cpu_replicas", 2, lambda c, m: _during_train(c, m)["cpu_replicas"] == 2),
    ("--progress_bar", "progress_bar", True, lambda c, m: "ProgressLogger" not in _callbacks(c)),
    ("--model_dir=/tmp/elsewhere", "model_dir", "/tmp/elsewhere",
     lambda c, m: _callbacks(c)["TensorBoardLogger"].log_dir == "/tmp/elsewhere/logs"
     and loop.make_manager(c, NO_GAN).directory == "/tmp/elsewhere/checkpoints"),
    ("--log_every=7", "log_every", 7,
     lambda c, m: _callbacks(c)["ProgressLogger"].every == 7 == _callbacks(c)["TensorBoardLogger"].scalar_every),
    ("--sample_every=7", "sample_every", 7,
     lambda c, m: _callbacks(c)["SampleGridWriter"].every == 7 == _callbacks(c)["TensorBoardLogger"].image_every),
    ("--checkpoint_every=7", "checkpoint_every", 7, lambda c, m: _callbacks(c)["CheckpointSaver"].every == 7),
    ("--keep_checkpoints=7", "keep_checkpoints", 7,
     lambda c, m: loop.make_manager(c, NO_GAN).max_to_keep == 7),
    ("--num_samples=9", "num_samples", 9, lambda c, m: _callbacks(c)["SampleGridWriter"].num_samples == 9),
    ("--export_dir=/tmp/serving/sagan", "export_dir", "/tmp/serving/sagan",
     lambda c, m: c.resolved_export_dir == "/tmp/serving/sagan"),
    ("--eval_every=3", "eval_every", 3,
     lambda c, m: _evaluation(c, m).every_n_steps == 3
     and "EvaluationCallback" not in _callbacks(dataclasses.replace(c, eval_every=0))),
    ("--eval_num_samples=8", "eval_num_samples", 8,
     lambda c, m: _evaluation(c, m).num_samples == 8 and _real_count(c) == 8),
    ("--eval_stats=given_stats.npz", "eval_stats", "given_stats.npz", _given_stats),
    ("--inception_weights=small.weights.h5", "inception_weights", "small.weights.h5", _given_weights),
    ("--inception=fashion_mnist", "inception", "fashion_mnist", _given_network),
]  # fmt: skip


def _flag_name(case):
    """The flag a case tests: the last one of its argv (the ones before it only make it valid)."""
    return case[0].split()[-1].split("=")[0].lstrip("-")


@pytest.mark.parametrize("argv, field, value, effect", CASES, ids=[case[0].split()[-1].split("=")[0] for case in CASES])
def test_flag_sets_its_field_and_changes_the_run(argv, field, value, effect, monkeypatch, tmp_path):
    argv = argv.split()
    if not any(arg.startswith("--model_dir=") for arg in argv):
        argv.append(f"--model_dir={tmp_path}")
    config = _parse(argv)
    assert getattr(config, field) == value != getattr(DEFAULT, field)
    assert effect(config, monkeypatch)


def test_every_flag_has_a_case_and_documented_help():
    fv = train_flags.new_flag_values()
    names = set(fv) - {train_flags.CONFIG_FLAG}  # --config has its own tests (test_config.py).
    tested = {_flag_name(case) for case in CASES}
    assert names == tested
    text = fv.get_help()
    for group in config_lib.SECTIONS:
        assert f"{train_flags.GROUP} ({group}):" in text
    for name in names:
        assert (f"--{name}" in text or f"--[no]{name}" in text) and len(fv[name].help) > 15, name


def test_every_strategy_choice_has_a_case():
    fv = train_flags.new_flag_values()
    choices = set(fv["strategy"].parser.enum_values)
    assert choices == set(config_lib.STRATEGIES)
    tested = {case[0].split()[0].split("=")[1] for case in CASES if case[0].startswith("--strategy=")}
    assert tested == choices - {DEFAULT.strategy}


def test_defaults_are_the_readme_demo():
    assert (DEFAULT.dataset, DEFAULT.preset, DEFAULT.resolved_image_size) == ("demo", "celeba64", 32)
    assert DEFAULT.resolved_model_dir == "runs/celeba64_demo"
    assert DEFAULT.resolved_export_dir == "runs/celeba64_demo/export"
    assert DEFAULT.ema_decay is None and DEFAULT.jit_compile == "auto"
    assert train_flags.parse(["train", "--export_dir="]).resolved_export_dir is None
    assert train_flags.parse(["train", "--jit_compile=false"]).jit_compile is False
    assert train_flags.parse(["train", "--ema_decay=0"]).ema_decay is None  # 0 is off, as before.


def test_cpu_replicas_cannot_change_a_running_tensorflow():
    found = len(tf.config.list_logical_devices("CPU"))
    builders.configure_cpu_replicas(found)  # The count in force: accepted.
    with pytest.raises(ValueError, match=f"cpu_replicas={found + 1} needs to be set before"):
        builders.configure_cpu_replicas(found + 1)


def test_the_training_package_serves_the_owners_names():
    from keras_sagan import images
    from keras_sagan.training import TrainConfig, make_grid, train

    assert TrainConfig is config_lib.TrainConfig and train is loop.train
    assert make_grid is images.make_grid
