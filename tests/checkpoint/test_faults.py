"""Faults around a run's checkpoints and its directory, each closed (issue 19's replay of bad inputs).

- a `--model_dir` that cannot be created or locked: one line, exit status 2;
- a run read while it trains: a checkpoint rotated away between listing and reading falls back to the next;
- what killed saves leave (`*.tmp-*`, TensorFlow's `ckpt-N_temp/`) goes on the next save, and a checkpoint
  no index names is still rotated;
- a folder this user may not read is "permission denied", not "no such model path".
"""

import os
import shutil

import keras
import numpy as np
import pytest
from cli_checks import cli_error

import keras_sagan
from keras_sagan.atomic_file import temporary_name
from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.checkpoint.state_file import read_state
from keras_sagan.export import loading
from keras_sagan.run_directory import RunDirectory

TINY = ["--dataset=demo", "--conv_dim=8", "--z_dim=16", "--image_size=32", "--batch_size=4", "--steps=1"]


@pytest.fixture(scope="module")
def gan():
    keras.utils.set_random_seed(0)
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, z_dim=16, seed=0)
    gan.compile()
    return gan


def _unwritable(tmp_path, how):
    if how == "name-too-long":
        return tmp_path / ("x" * 300) / "run"
    if how == "parent-is-a-file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "run"
    if how == "proc":
        return "/proc/keras_sagan_test/run"
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder; the other cases cover the same code path")
    (tmp_path / "ro").mkdir(mode=0o555)
    return tmp_path / "ro" / "run"


@pytest.mark.parametrize("how", ["name-too-long", "parent-is-a-file", "proc", "read-only-parent"])
def test_train_with_a_model_dir_that_cannot_be_created_is_one_line_exit_2(tmp_path, capsys, how):
    model_dir = _unwritable(tmp_path, how)
    err = cli_error(capsys, ["train", *TINY, f"--model_dir={model_dir}"], status=2)
    assert "cannot create model_dir" in err and str(model_dir) in err, err
    assert "[Errno" not in err


def test_a_checkpoint_rotated_away_while_reading_falls_back_to_the_next(gan, tmp_path, monkeypatch):
    run = RunDirectory(tmp_path / "run")
    manager = CheckpointManager(gan, run.checkpoints_dir, max_to_keep=3)
    for step in (1, 2, 3):
        manager.save(step)
    real_open = reading.open_checkpoint

    def rotated_first(path):
        # A training run deletes the newest two between our listing and our read.
        if reading.checkpoint_step(path) in (3, 2) and os.path.exists(path):
            os.remove(path)
        return real_open(path)

    monkeypatch.setattr(reading, "open_checkpoint", rotated_first)
    warnings = []
    opened, _ = reading.open_newest(run, warn=warnings.append)
    assert reading.checkpoint_step(opened.path) == 1 and not warnings  # Gone is not damage: no warning.


def test_when_every_listed_checkpoint_vanished_the_run_is_listed_again(gan, tmp_path, monkeypatch):
    run = RunDirectory(tmp_path / "run")
    manager = CheckpointManager(gan, run.checkpoints_dir, max_to_keep=1)
    manager.save(1)
    real_open = reading.open_checkpoint

    def overtaken(path):
        if reading.checkpoint_step(path) == 1 and os.path.exists(path):
            manager.save(2)  # The trainer saves step 2 and rotates step 1 out.
        return real_open(path)

    monkeypatch.setattr(reading, "open_checkpoint", overtaken)
    opened, _ = reading.open_newest(run)
    assert reading.checkpoint_step(opened.path) == 2


def test_sample_of_a_run_whose_newest_checkpoint_vanishes_uses_the_next(gan, tmp_path, monkeypatch, capsys):
    run = RunDirectory(tmp_path / "run")
    run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), {})
    manager = CheckpointManager(gan, run.checkpoints_dir, max_to_keep=2)
    manager.save(4)
    manager.save(5)
    real_read = read_state

    def rotated(path):
        if path.endswith("ckpt-5.state.npz") and os.path.exists(path):
            os.remove(path)
        return real_read(path)

    monkeypatch.setattr(reading, "read_state", rotated)
    generator, path, _ = loading.load_run_generator(run.path)
    assert path.endswith("ckpt-4.state.npz")
    for mine, saved in zip(generator.weights, gan.generator.weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(saved))
    assert capsys.readouterr().err == ""


def test_leftovers_of_killed_saves_go_and_an_unindexed_legacy_checkpoint_is_rotated(gan, tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    killed_tmp = temporary_name(directory / "ckpt-9.state.npz")
    open(killed_tmp, "wb").close()
    (directory / "ckpt-7_temp").mkdir()  # A TensorFlow save killed by an older keras_sagan.
    (directory / "ckpt-7_temp" / "part-0.data").write_bytes(b"half")
    for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001"):  # Written just before a SIGKILL: no index names it.
        (directory / name).write_bytes(b"old")
    (directory / "notes.txt").write_text("the user's")
    manager = CheckpointManager(gan, str(directory), max_to_keep=2)
    manager.save(2)
    assert sorted(os.listdir(directory)) == [
        "ckpt-1.data-00000-of-00001", "ckpt-1.index", "ckpt-2.state.npz", "notes.txt"
    ]  # fmt: skip
    manager.save(3)
    assert sorted(os.listdir(directory)) == ["ckpt-2.state.npz", "ckpt-3.state.npz", "notes.txt"]


def test_a_folder_without_read_permission_is_permission_denied(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "old_run_792570a"), run)
    # Root reads any folder whatever its mode, so the permission check is stubbed to deny `run` only.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and str(path) != str(run))
    err = cli_error(capsys, ["sample", "--model", str(run), "--out", str(tmp_path / "s.png")])
    assert "permission denied" in err and "no such" not in err, err
    # A path inside such a folder: `os.path.exists` says False there (tests/test_run_directory.py).


def test_a_config_json_edited_to_another_size_is_one_line(gan, tmp_path, capsys):
    run = RunDirectory(tmp_path / "run")
    config = gan.generator.get_config()
    run.write_config({**config, "conv_dim": 16}, gan.discriminator.get_config(), {})
    CheckpointManager(gan, run.checkpoints_dir, max_to_keep=1).save(3)
    err = cli_error(capsys, ["sample", "--model", run.path, "--out", str(tmp_path / "s.png")])
    assert "does not match the generator described by config.json" in err and "has shape" in err, err
