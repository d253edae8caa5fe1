"""`train()` on runs gone wrong: an unreadable newest checkpoint, a stale export, changed settings on
resume, a divergence. In process, with a tiny model; each test works on a copy of one trained run."""

import json
import os
import shutil

import numpy as np
import pytest

from keras_sagan import cli
from keras_sagan.checkpoint.state_file import read_state
from keras_sagan.cli import train as train_cli
from keras_sagan.errors import UsageError
from keras_sagan.export.loading import read_export_step
from keras_sagan.training import loop
from keras_sagan.training.config import TrainConfig

TINY = {"conv_dim": 8, "z_dim": 16, "batch_size": 4, "num_samples": 4, "log_every": 2, "sample_every": 100}


def config(model_dir, **overrides):
    """A tiny run's config; no export unless `export_dir` is given (a SavedModel costs seconds)."""
    return TrainConfig(model_dir=os.fspath(model_dir), **{**TINY, "checkpoint_every": 2, "export_dir": "", **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run at step 4 with ckpt-2, ckpt-4 and export/1 (step 4), trained with EMA."""
    model_dir = tmp_path_factory.mktemp("trained") / "run"
    loop.train(config(model_dir, steps=4, ema_decay=0.9, export_dir=None))
    return model_dir


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def _ckpt(run, step):
    return os.path.join(run, "checkpoints", f"ckpt-{step}.state.npz")


def _damage(run, how, step=4):
    path = _ckpt(run, step)
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    elif how == "random-bytes":
        size = os.path.getsize(path)
        with open(path, "wb") as f:
            f.write(np.random.default_rng(0).bytes(size))
    else:  # Gone: rotated away by another process, say.
        os.remove(path)


@pytest.mark.parametrize("how", ["truncated", "random-bytes", "deleted"])
def test_an_unreadable_newest_checkpoint_resumes_from_the_previous_one(run, how, capsys):
    _damage(run, how)
    result = loop.train(config(run, steps=5, ema_decay=0.9))
    err = capsys.readouterr().err
    assert result.initial_step == 2 and result.step == 5
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    if how == "deleted":  # Not listed at all: nothing to warn about.
        assert not warnings, err
    else:
        assert len(warnings) == 1 and "ckpt-4.state.npz is unreadable" in warnings[0], err


def test_export_and_sample_fall_back_past_an_unreadable_checkpoint(run, tmp_path, capsys):
    _damage(run, "truncated")
    assert cli.main(["sample", "--model", str(run), "--num", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "export")]) == 0
    err = capsys.readouterr().err
    assert err.count("ckpt-4.state.npz is unreadable") == 2 and "Traceback" not in err
    assert read_export_step(str(tmp_path / "export" / "1")) == 2  # The checkpoint it fell back to.


def test_another_configuration_is_still_refused_and_all_unreadable_too(run):
    with pytest.raises(UsageError, match="does not match this configuration"):
        loop.train(config(run, steps=5, ema_decay=0.9, conv_dim=16))
    _damage(run, "truncated")
    _damage(run, "random-bytes", step=2)
    with pytest.raises(UsageError, match="no readable checkpoint in .*2 found"):
        loop.train(config(run, steps=5, ema_decay=0.9))


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_a_broken_or_missing_config_json_cannot_switch_off_the_resume_rules(run, damage):
    # The rules read the record inside the checkpoint, not config.json.
    if damage == "garbage":
        (run / "config.json").write_text("{not json")
    else:
        os.remove(run / "config.json")
    refusal = "`loss` cannot change on resume: .*ckpt-4.state.npz was trained with loss='hinge'"
    with pytest.raises(UsageError, match=refusal):
        loop.train(config(run, steps=5, ema_decay=0.9, loss="wgan-gp"))
    assert os.path.isfile(_ckpt(run, 4)) and os.path.isfile(_ckpt(run, 2))  # Nothing rotated out.


def test_a_stale_export_is_exported_again(run, capsys):
    export = os.path.join(run, "export")
    assert read_export_step(os.path.join(export, "1")) == 4
    loop.train(config(run, steps=6, ema_decay=0.9))  # Trained on, but not exported (a full disk, say).
    result = loop.train(config(run, steps=6, ema_decay=0.9, export_dir=None))  # Only the export is due.
    assert result.export_path == os.path.join(os.path.abspath(export), "2")
    assert read_export_step(result.export_path) == 6
    again = loop.train(config(run, steps=6, ema_decay=0.9, export_dir=None))  # Up to date: the shortcut holds.
    assert again.export_path == result.export_path
    assert "generator of step 6 is already exported" in capsys.readouterr().out


def test_sigint_during_the_export_says_so(run, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "export_generator", interrupted)
    assert train_cli.run(config(run, steps=5, ema_decay=0.9, export_dir=None)) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "during the export" in err and "checkpoint of step 5 is saved" in err
    assert "before training began" not in err


def test_changed_learning_rates_are_applied_on_resume(run, capsys):
    result = loop.train(config(run, steps=5, ema_decay=0.9, g_lr=1e-2, d_lr=3e-2))
    np.testing.assert_allclose(float(result.gan.g_optimizer.learning_rate.numpy()), 1e-2, rtol=1e-6)
    np.testing.assert_allclose(float(result.gan.d_optimizer.learning_rate.numpy()), 3e-2, rtol=1e-6)
    # The optimizer's only float scalar is its learning rate (iterations is an int64).
    stored = read_state(_ckpt(run, 5)).groups["g_optimizer"]
    scalars = [float(array) for array in stored if array.shape == () and array.dtype.kind == "f"]
    assert np.isclose(scalars, 1e-2, rtol=1e-6).sum() == 1 and not np.isclose(scalars, 1e-4, rtol=1e-3).any()
    assert json.loads(open(os.path.join(run, "config.json")).read())["train"]["g_lr"] == 1e-2
    out = capsys.readouterr().out
    assert "resuming with g_lr=0.01 (the checkpoint's was 0.0001)" in out and "d_lr=0.03" in out


def test_changed_d_steps_and_ema_decay_are_applied_and_told(run, capsys):
    result = loop.train(config(run, steps=5, ema_decay=0.5, d_steps=3))
    assert int(result.gan.d_optimizer.iterations.numpy()) == 4 + 3  # 4 steps at d_steps=1, then one at 3.
    assert result.gan.ema_decay == 0.5
    out = capsys.readouterr().out
    assert "resuming with d_steps=3 (the previous run's was 1)" in out
    assert "resuming with ema_decay=0.5 (the previous run's was 0.9)" in out


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"ema_decay": 0.9, "loss": "wgan-gp"}, "`loss` cannot change on resume"),
        ({"ema_decay": None}, "`ema_decay` cannot turn EMA off on resume"),
    ],
    ids=["loss", "ema-off"],
)
def test_a_changed_loss_or_ema_switch_is_refused_in_one_line(run, overrides, fragment):
    with pytest.raises(UsageError, match=fragment) as info:
        loop.train(config(run, steps=5, **overrides))
    assert "\n" not in str(info.value)


def test_turning_ema_on_is_refused_in_one_line(tmp_path):
    loop.train(config(tmp_path / "run", steps=2, export_dir=""))
    with pytest.raises(UsageError, match="`ema_decay` cannot turn EMA on on resume"):
        loop.train(config(tmp_path / "run", steps=3, ema_decay=0.9))
