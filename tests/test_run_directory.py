"""`keras_sagan.run_directory`: the layout, the config file and the checkpoint's object names."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_sagan
from keras_sagan import run_directory
from keras_sagan.run_directory import RunDirectory, RunDirectoryError


def test_layout(tmp_path):
    run = RunDirectory(tmp_path / "r")
    base = str(tmp_path / "r")
    assert run.config_path == os.path.join(base, "config.json")
    assert run.checkpoints_dir == os.path.join(base, "checkpoints")
    assert run.logs_dir == os.path.join(base, "logs")
    assert run.eval_logs_dir == os.path.join(base, "logs", "eval")
    assert run.samples_dir == os.path.join(base, "samples")
    assert run.export_dir == os.path.join(base, "export")
    assert run.real_stats_path == os.path.join(base, "real_stats.npz")


def test_config_round_trip_is_atomic_json(tmp_path):
    run = RunDirectory(tmp_path / "r")
    run.write_config({"z_dim": 16}, {"conv_dim": 8}, {"steps": 5})
    with open(run.config_path, encoding="utf-8") as f:
        assert json.load(f) == {"generator": {"z_dim": 16}, "discriminator": {"conv_dim": 8}, "train": {"steps": 5}}
    assert run.read_config()["train"] == {"steps": 5}
    assert os.listdir(run.path) == ["config.json"]  # No temp file left.


def test_read_config_errors_are_one_line(tmp_path):
    run = RunDirectory(tmp_path)
    with pytest.raises(RunDirectoryError, match="cannot read"):
        run.read_config()
    (tmp_path / "config.json").write_text('{"train": {}}')
    with pytest.raises(RunDirectoryError, match='has no "generator" config'):
        run.read_config()


def test_checkpoint_holds_every_variable_under_its_names(tmp_path):
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, seed=0)
    gan.compile(ema_decay=0.9)
    run = RunDirectory(tmp_path)
    run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), {})
    prefix = run.make_manager(run_directory.make_checkpoint(gan), keep=1).save(checkpoint_number=7)
    assert run.latest_checkpoint() == prefix == os.path.join(run.checkpoints_dir, "ckpt-7")
    children = run_directory.checkpoint_children(prefix)
    assert set(children) == {
        "step",
        "generator",
        "discriminator",
        "ema_generator",
        "g_optimizer",
        "d_optimizer",
        "seed_state",
        "save_counter",
    }
    assert children["generator"] == len(gan.generator.variables)
    assert children["discriminator"] == len(gan.discriminator.variables)
    # A restore into a fresh SAGAN brings every generator and discriminator variable back.
    fresh = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, seed=1)
    fresh.compile(ema_decay=0.9)
    manager = run.make_manager(run_directory.make_checkpoint(fresh), keep=1)
    assert run_directory.restore_latest(run_directory.make_checkpoint(fresh), manager) == prefix
    for new, old in zip(
        fresh.generator.variables + fresh.discriminator.variables, gan.generator.variables + gan.discriminator.variables
    ):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))


def test_locate_accepts_the_checkpoints_folder_and_names_what_is_missing(tmp_path):
    with pytest.raises(RunDirectoryError, match="no such run directory"):
        RunDirectory.locate(tmp_path / "missing")
    with pytest.raises(RunDirectoryError, match="no checkpoint found"):
        RunDirectory.locate(tmp_path)
    run = RunDirectory(tmp_path)
    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), run.checkpoints_dir, 1).save()
    with pytest.raises(RunDirectoryError, match="no config.json"):
        RunDirectory.locate(tmp_path)
    run.write_config({}, {}, {})
    assert RunDirectory.locate(run.checkpoints_dir).path == str(tmp_path)
