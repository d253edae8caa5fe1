"""`keras_sagan.run_directory`: the layout, the config file, creating and locking a run."""

import json
import os

import pytest

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


def test_make_and_lock_name_an_unusable_model_dir_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match=r"cannot create model_dir .*file/run: Not a directory"):
        RunDirectory(tmp_path / "file" / "run").make()
    with pytest.raises(RunDirectoryError, match="cannot create model_dir .*File name too long"):
        RunDirectory(tmp_path / ("x" * 300)).lock()


def test_missing_path_reason_tells_permission_denied_from_absent(tmp_path, monkeypatch):
    assert run_directory.missing_path_reason(str(tmp_path / "absent" / "run")) == "no such file or directory"
    locked = tmp_path / "locked"
    (locked / "run").mkdir(parents=True)
    # Root reads any folder whatever its mode, so the permission check is stubbed: deny `locked` only.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and str(path) != str(locked))
    assert run_directory.missing_path_reason(str(locked)) == f"permission denied: {locked} cannot be read by this user"
