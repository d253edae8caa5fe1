"""End-to-end `train()` on the demo faces with a tiny model: outputs, resume, exact restore, determinism."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from training_loop_helpers import snapshot, tiny_config, training_variables

from keras_sagan.checkpoint import reading
from keras_sagan.training import builders, loop


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run")
    config = tiny_config(model_dir, steps=4, ema_decay=0.9)
    result = loop.train(config)
    return config, result, snapshot(result.gan)


def test_train_counts_steps_and_writes_every_output(first_run):
    config, result, _ = first_run
    model_dir = config.model_dir
    assert result.step == 4 and result.initial_step == 0
    assert int(result.gan.g_optimizer.iterations.numpy()) == 4
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(result.logs)

    grids = sorted(os.listdir(os.path.join(model_dir, "samples")))
    assert grids == ["step_000002.png", "step_000004.png"]
    with Image.open(os.path.join(model_dir, "samples", "step_000004.png")) as grid:
        # 4 samples of 32x32 in a 2x2 grid with 1-pixel padding.
        assert grid.size == (67, 67) and grid.mode == "RGB"

    assert sorted(os.listdir(os.path.join(model_dir, "checkpoints"))) == ["ckpt-2.state.npz", "ckpt-4.state.npz"]
    assert result.checkpoint.endswith("ckpt-4.state.npz")

    with open(os.path.join(model_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["generator"]["conv_dim"] == 8 and saved["train"]["steps"] == 4


def test_tensorboard_has_every_tag(first_run):
    config, _, _ = first_run
    events = event_accumulator.EventAccumulator(os.path.join(config.model_dir, "logs"), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    expected = {
        "loss/d", "loss/g", "d/real", "d/fake", "perf/images_per_second",
        "gamma/G8", "gamma/G16", "gamma/D4", "gamma/D8",
        "sigma/generator/initial/0", "sigma/generator/up0/0", "sigma/generator/up1/0",
        "sigma/generator/max", "sigma/generator/mean",
        "sigma/discriminator/down0/0", "sigma/discriminator/down2/0", "sigma/discriminator/max",
        "samples", "attention/G16",
    }  # fmt: skip
    assert expected <= tags, expected - tags
    assert [e.step for e in events.Tensors("loss/d")] == [2, 4]
    # The interval mean of steps 3-4 is consistent with the fit() running mean over 1-4.
    d_losses = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("loss/d")]
    np.testing.assert_allclose(np.mean(d_losses), first_run[1].logs["d_loss"], rtol=1e-5)
    # 4 samples x (image + 3 queries) tiles of 32 + 1 pixels, nearest-upscaled x2 to >= 256.
    encoded = tf.make_ndarray(events.Tensors("attention/G16")[-1].tensor_proto)
    assert tf.io.decode_png(encoded[2]).shape == (266, 266, 3)
    # 2 x 2 samples: 67 pixels, upscaled x4.
    encoded = tf.make_ndarray(events.Tensors("samples")[-1].tensor_proto)
    assert tf.io.decode_png(encoded[2]).shape == (268, 268, 3)


def test_export_matches_the_sampling_generator(first_run):
    config, result, _ = first_run
    assert result.export_path == os.path.join(os.path.abspath(config.model_dir), "export", "1")
    served = tf.saved_model.load(result.export_path).signatures["serving_default"]
    z = np.random.default_rng(1).standard_normal((3, 16)).astype("float32")
    images = served(z=tf.constant(z))["images"].numpy()
    # EMA is on, so the EMA generator is the one exported, not the raw one.
    np.testing.assert_allclose(images, result.gan.ema_generator(z, training=False).numpy(), atol=1e-5)
    assert np.abs(images - result.gan.generator(z, training=False).numpy()).max() > 1e-4


def test_restore_brings_every_variable_back_exactly(first_run):
    config, result, trained = first_run
    fresh = builders.build_gan(config, tf.distribute.get_strategy())
    variables = training_variables(fresh)
    assert set(variables) == set(trained)
    for variable in variables.values():  # Make every value wrong first.
        variable.assign(np.array(variable.numpy()) + 1)
    restored, _ = reading.open_newest(config.run_directory, use=lambda found: reading.restore_gan(fresh, found))
    assert restored.path.endswith("ckpt-4.state.npz")
    wrong = [name for name, v in variables.items() if not np.array_equal(v.numpy(), trained[name])]
    assert not wrong, wrong
    assert int(fresh.g_optimizer.iterations.numpy()) == 4
    # The noise stream continues where training left off.
    assert np.array_equal(fresh.seed_generator.state.numpy(), result.gan.seed_generator.state.numpy())


def test_rerun_resumes_and_continues_the_step_count(first_run, capsys):
    config, _, trained = first_run
    capsys.readouterr()
    result = loop.train(tiny_config(config.model_dir, steps=8, ema_decay=0.9))
    out = capsys.readouterr().out
    assert f"resumed from {os.path.join(config.model_dir, 'checkpoints', 'ckpt-4.state.npz')} at step 4" in out
    assert "step 6/8" in out and "step 8/8" in out and "step 2/" not in out
    assert result.initial_step == 4 and result.step == 8
    assert result.checkpoint.endswith("ckpt-8.state.npz")
    samples = sorted(os.listdir(os.path.join(config.model_dir, "samples")))
    assert samples[-2:] == ["step_000006.png", "step_000008.png"]
    # Rerunning the finished command does no step and does not export the same weights again.
    export_dir = os.path.join(os.path.abspath(config.model_dir), "export")
    assert result.export_path == os.path.join(export_dir, "2")  # New weights: a new version.
    again = loop.train(tiny_config(config.model_dir, steps=8, ema_decay=0.9))
    assert again.initial_step == again.step == 8 and again.logs == {}
    assert again.export_path == result.export_path
    assert sorted(os.listdir(export_dir)) == [".keras_sagan_export.lock", "1", "2", "keras_sagan_model.json"]
    assert "nothing to train" in capsys.readouterr().out


def test_a_checkpoint_of_another_model_is_a_one_line_error(first_run):
    config, _, _ = first_run
    with pytest.raises(ValueError, match=r"cannot resume from .*ckpt-\d+\.state\.npz: it does not match") as info:
        loop.train(tiny_config(config.model_dir, steps=20, conv_dim=16, export_dir=""))
    assert "\n" not in str(info.value)


def test_same_seed_and_deterministic_give_identical_weights(tmp_path):
    def run(name, seed):
        config = tiny_config(tmp_path / name, steps=3, seed=seed, deterministic=True, export_dir="")
        return snapshot(loop.train(config).gan)

    first, second, other = run("a", 3), run("b", 3), run("c", 4)
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not all(np.array_equal(first[k], other[k]) for k in first if k.startswith("generator/"))
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()  # Switched back off after the run.


def test_bad_settings_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="image_folder"):
        tiny_config(tmp_path, dataset="folder")
    with pytest.raises(ValueError, match="`preset` must be one of .*'nope'"):
        tiny_config(tmp_path, preset="nope")
    with pytest.raises(ValueError, match=re.escape("`steps` must be an int >= 1; received: steps=0")):
        tiny_config(tmp_path, steps=0)
    with pytest.raises(ValueError, match="`mixed_precision` must be one of"):
        tiny_config(tmp_path, mixed_precision="float16")
    with pytest.raises(ValueError, match="`loss` must be one of"):
        tiny_config(tmp_path, loss="least-squares")  # Refused when the config is built, before train().
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the 2 logical CPUs of tests/conftest.py")
    with pytest.raises(ValueError, match="does not divide across 2 replicas"):
        loop.train(tiny_config(tmp_path, strategy="mirrored", batch_size=5))
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


@pytest.mark.parametrize(
    "ending, goodbye",
    [("returns", True), ("stopped through the agreement", True), ("crashes", False), ("aborted at once", False)],
)
def test_the_run_tells_its_peers_when_it_ended_in_order(tmp_path, monkeypatch, ending, goodbye):
    """`backend.leave_processes` (process 0's peer watch, multi-host JAX): said after a run that returned or stopped
    together on a signal (`TrainingInterrupted`); not after a crash, which process 0 must see as a dead peer, nor
    after a second Ctrl-C, which must not wait for the others."""
    calls = []
    monkeypatch.setattr(loop.backend, "leave_processes", lambda: calls.append("goodbye"))

    def run(config, strategy, gan, chief):
        if ending == "stopped through the agreement":
            raise loop.TrainingInterrupted(2, str(tmp_path / "ckpt-2.state.npz"), "peer")
        if ending == "crashes":
            raise OSError("disk gone")
        if ending == "aborted at once":
            raise KeyboardInterrupt
        return "result"

    monkeypatch.setattr(loop, "_run", run)
    config = tiny_config(tmp_path / "run")
    if ending == "returns":
        assert loop.train(config) == "result"
    else:
        expected = {"stopped through the agreement": loop.TrainingInterrupted, "crashes": OSError}
        with pytest.raises(expected.get(ending, KeyboardInterrupt)):
            loop.train(config)
    assert calls == (["goodbye"] if goodbye else [])
