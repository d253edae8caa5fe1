"""Runs written before the state-file format still load and resume (`keras_sagan.checkpoint.legacy`).

`old_run_792570a/` is a whole run directory (config.json + checkpoints/) written by keras_sagan at commit
792570a: `train --dataset=demo --conv_dim=8 --image_size=32 --z_dim=16 --steps=2 --batch_size=4
--ema_decay=0.999 --keep_checkpoints=1` on TensorFlow, `tf.train.Checkpoint` files and TF's index.
Its values are read back here with TensorFlow's own checkpoint reader, the independent reference.
"""

import gc
import json
import logging
import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.state_file import read_state
from keras_sagan.export.loading import ModelLoadError, load_run_generator
from keras_sagan.run_directory import RunDirectory
from keras_sagan.training import loop
from keras_sagan.training.config import TrainConfig

pytestmark = pytest.mark.tensorflow  # Restoring tf.train.Checkpoint files needs the TensorFlow backend.

FIXTURE = pathlib.Path(__file__).with_name("old_run_792570a")
PREFIX = FIXTURE / "checkpoints" / "ckpt-2"


@pytest.fixture
def old_run(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "run")
    return tmp_path / "run"


def _stored(name=""):
    """The tensors stored under the top-level object `name` (every one for ""), as a list of arrays.

    A variable reachable from two objects (the generator's kernels are also the optimizer's) is stored
    under one path only.
    """
    reader = tf.train.load_checkpoint(str(PREFIX))
    keys = [k for k in reader.get_variable_to_shape_map() if k.startswith(name) and k.endswith("VARIABLE_VALUE")]
    return [reader.get_tensor(k) for k in keys]


def _assert_each_weight_is_stored(weights, stored):
    unmatched = list(stored)
    for weight in weights:
        value = np.asarray(weight)
        index = next((i for i, s in enumerate(unmatched) if s.shape == value.shape and np.array_equal(s, value)), None)
        assert index is not None, f"{weight.path} is not the stored value"
        unmatched.pop(index)


def test_an_old_run_loads_its_ema_generator(old_run):
    generator, path, key = load_run_generator(str(old_run))
    assert (os.path.basename(path), key) == ("ckpt-2", "ema_generator")
    _assert_each_weight_is_stored(generator.weights, _stored("ema_generator/"))


def test_an_old_run_resumes_at_its_step_and_continues_in_the_new_format(old_run):
    restored_generator, _, _ = load_run_generator(str(old_run), "generator")
    config = TrainConfig(
        dataset="demo", preset="celeba64", image_size=32, conv_dim=8, z_dim=16, batch_size=4, ema_decay=0.999,
        steps=3, keep_checkpoints=1, sample_every=1000, export_dir="", model_dir=str(old_run),
    )  # fmt: skip
    result = loop.train(config)
    assert (result.initial_step, result.step) == (2, 3)
    # The legacy checkpoint and TF's index were rotated out by the first save in the new format.
    assert os.listdir(old_run / "checkpoints") == ["ckpt-3.state.npz"]
    record = read_state(str(old_run / "checkpoints" / "ckpt-3.state.npz")).record
    assert record["train"]["ema_decay"] == 0.999 and record["generator"]["conv_dim"] == 8
    # What was restored at step 2 is what TensorFlow's reader finds in the file.
    _assert_each_weight_is_stored(restored_generator.weights, _stored())


def test_an_old_run_with_a_config_of_another_size_is_one_line_without_tensorflow_warnings(old_run, caplog):
    config = json.loads((old_run / "config.json").read_text())
    config["generator"]["conv_dim"] = 16
    (old_run / "config.json").write_text(json.dumps(config))
    for key in ("ema_generator", "generator"):
        with caplog.at_level(logging.WARNING, logger="tensorflow"):
            with pytest.raises(ModelLoadError) as info:
                load_run_generator(str(old_run), key)
            gc.collect()  # TensorFlow tells unmatched values when its restore status is collected.
        assert "\n" not in str(info.value) and "does not match the generator" in str(info.value)
        assert f"{key}'s variable shapes differ" in str(info.value)
        assert not [r for r in caplog.records if "could not be found" in r.getMessage()]


def test_an_old_run_without_a_readable_config_cannot_resume_blind(old_run):
    # An old checkpoint carries no record of its settings: config.json is then the only one.
    (old_run / "config.json").write_text("{broken")
    config = TrainConfig(dataset="demo", image_size=32, conv_dim=8, z_dim=16, batch_size=4, steps=3,
                         ema_decay=0.999, loss="wgan-gp", export_dir="", model_dir=str(old_run))  # fmt: skip
    with pytest.raises(ValueError, match="predates the settings record") as info:
        loop.train(config)
    assert "\n" not in str(info.value)
    assert reading.latest_checkpoint(RunDirectory(old_run)).endswith("ckpt-2")


def test_an_old_checkpoint_named_by_the_index_without_files_is_unreadable_and_skipped(old_run):
    index = old_run / "checkpoints" / "checkpoint"
    # TensorFlow's index written just before a crash: it names ckpt-5, whose files never landed.
    index.write_text(f'model_checkpoint_path: "ckpt-5"\nall_model_checkpoint_paths: "{old_run}/checkpoints/ckpt-2"\n'
                     'all_model_checkpoint_paths: "ckpt-5"\n')  # fmt: skip
    warnings = []
    opened, _ = reading.open_newest(RunDirectory(old_run), warn=warnings.append)
    assert os.path.basename(opened.path) == "ckpt-2" and opened.children["ema_generator"] > 0
    assert len(warnings) == 1 and "ckpt-5 is unreadable (ckpt-5.index is missing)" in warnings[0], warnings
