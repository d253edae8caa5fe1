"""The reliability issue's bad inputs and broken runs, as a user meets them on the command line: each is
one line on stderr naming the value and what is accepted, exit status 2 (3 for a diverged run)."""

import fcntl
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from cli_checks import cli_error  # noqa: E402

import keras_sagan
from keras_sagan.atomic_file import temporary_name
from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.checkpoint.state_file import read_state
from keras_sagan.cli import train as train_cli
from keras_sagan.export.formats import ExportError
from keras_sagan.export.loading import ModelLoadError
from keras_sagan.export.saved_model import EXPORT_LOCK, MARKER_FILENAME, export_generator
from keras_sagan.run_directory import RunDirectory

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.getcwd()}
TINY = ["--conv_dim=8", "--z_dim=16", "--image_size=32", "--batch_size=8", "--sample_every=1000", "--log_every=1"]


def _one_line(capsys, argv, status=2):
    return cli_error(capsys, argv, status)


@pytest.fixture(scope="module")
def generator():
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8, z_dim=16)
    generator.build()
    return generator


@pytest.fixture(scope="module")
def saved_model(generator, tmp_path_factory):
    return export_generator(generator, tmp_path_factory.mktemp("export") / "base")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--cols", "-3"], ["`--cols` must be an int >= 1", "--cols=-3"]),
        (["--cols", "0"], ["`--cols` must be an int >= 1", "--cols=0"]),
        (["--truncation", "nan"], ["`--truncation` must be a finite number", "nan"]),
        (["--labels", "abc"], ["`--labels` must be integer class labels", "'abc'"]),
        (["--out", "{tmp}"], ["`--out` must be a .png file path", "{tmp}"]),
    ],
    ids=["cols-negative", "cols-zero", "truncation-nan", "labels-abc", "out-directory"],
)
def test_sample_arguments(saved_model, tmp_path, capsys, args, fragments):
    args = [arg.format(tmp=tmp_path) for arg in args]
    argv = ["sample", "--model", saved_model, "--out", str(tmp_path / "x.png"), *args]
    err = _one_line(capsys, argv)
    for fragment in fragments:
        assert fragment.format(tmp=tmp_path) in err, err


def test_export_and_sample_refuse_a_diverged_generator(generator, saved_model, tmp_path, capsys, monkeypatch):
    kernel = generator.to_rgb.kernel
    good = kernel.numpy()
    kernel.assign(np.full_like(good, np.nan))
    try:
        with pytest.raises(ModelLoadError, match="non-finite weights"):
            export_generator(generator, tmp_path / "nan_export")
        assert not (tmp_path / "nan_export" / "1").exists()
        generator.save(tmp_path / "nan.keras")
    finally:
        kernel.assign(good)
    err = _one_line(capsys, ["sample", "--model", str(tmp_path / "nan.keras"), "--out", str(tmp_path / "x.png")])
    assert "non-finite weights" in err and not (tmp_path / "x.png").exists()
    # A SavedModel holds no Keras weights to check: its images are.
    nan_images = {"images": tf.fill((1, 32, 32, 3), np.nan), "images_uint8": tf.zeros((1, 32, 32, 3), tf.uint8)}
    monkeypatch.setattr(tf.saved_model, "load", _with_sample(tf.saved_model.load, nan_images))
    err = _one_line(capsys, ["sample", "--model", saved_model, "--num", "1", "--out", str(tmp_path / "x.png")])
    assert "generated non-finite images" in err and not (tmp_path / "x.png").exists()


def _with_sample(load, outputs):
    def patched(path):
        loaded = load(path)
        signatures = dict(loaded.signatures)
        signatures["sample"] = lambda **inputs: outputs
        return type("Loaded", (), {"signatures": signatures})()

    return patched


def test_export_removes_the_temporaries_of_killed_exports(generator, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    # A killed export's `atomic_directory` temporary, and the names of exports before it (`.tmp-<hex>`, with host/pid).
    strays = [os.path.basename(temporary_name(base / "1")), f".tmp-{'a' * 32}", f".tmp-host-1-{'b' * 32}"]
    for name in strays:
        (base / name).mkdir()
    assert os.path.basename(export_generator(generator, base)) == "1"
    assert sorted(os.listdir(base)) == sorted(["1", EXPORT_LOCK, MARKER_FILENAME])


def test_an_export_into_a_base_path_being_written_is_one_line_and_keeps_its_temporary(generator, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    running = base / os.path.basename(temporary_name(base / "1"))
    running.mkdir()
    with open(base / EXPORT_LOCK, "a") as held:  # Another export's lock (a second open file conflicts, as a process).
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ExportError, match=r"another export is writing to .*base \(it holds .*\.lock\); wait"):
            export_generator(generator, base)
    assert running.is_dir() and not (base / "1").exists()


def test_an_export_without_space_is_one_line_and_leaves_nothing(generator, tmp_path, monkeypatch):
    def full_disk(module, path, signatures=None):
        os.makedirs(path, exist_ok=True)
        raise tf.errors.ResourceExhaustedError(None, None, "saved_model.pb; No space left on device\ndetail")

    monkeypatch.setattr(tf.saved_model, "save", full_disk)
    with pytest.raises(ExportError) as info:
        export_generator(generator, tmp_path / "base")
    assert "\n" not in str(info.value) and "no space left" in str(info.value)
    assert sorted(os.listdir(tmp_path / "base")) == sorted([EXPORT_LOCK, MARKER_FILENAME])


def test_sigint_while_tensorflow_loads_is_one_line(monkeypatch, capsys):
    def interrupted(argv, prog):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "_main", interrupted)
    assert train_cli.main(["--steps=1"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "before training began" in err


@pytest.mark.slow
def test_divergence_exits_3_keeps_a_finite_checkpoint_and_exports_nothing(tmp_path):
    run = tmp_path / "div"
    argv = [*TINY, f"--model_dir={run}", "--steps=12", "--checkpoint_every=1", "--d_lr=10", "--g_lr=10"]
    proc = subprocess.run(
        [sys.executable, "-m", "keras_sagan", "train", *argv], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    step = int(errors[0].split(" at step ")[1].split(";")[0])
    good = errors[0].split("the last good checkpoint is ")[1].split(" ")[0]
    assert os.path.abspath(good).startswith(str(run)) and reading.checkpoint_step(good) < step
    assert not (run / "export").exists()
    names = sorted(os.listdir(run / "checkpoints"))
    assert names and os.path.basename(good) in names
    for name in names:
        for group, arrays in read_state(str(run / "checkpoints" / name)).groups.items():
            assert all(a.dtype.kind != "f" or np.all(np.isfinite(a)) for a in arrays), (name, group)


@pytest.mark.slow
def test_a_resume_with_another_architecture_is_one_line_without_tensorflow_warnings(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "keras_sagan", "train", *TINY, f"--model_dir={run}", "--export_dir="]
    assert train_cli.main([*command[4:], "--steps=1"]) == 0  # The first run: in this process.
    proc = subprocess.run([*command, "--steps=2", "--conv_dim=16"], env=ENV, capture_output=True, text=True)
    assert proc.returncode == 2
    # TensorFlow's "unrestored values" warnings came after the error line, at exit.
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "WARNING:tensorflow"))]
    assert len(lines) == 1 and "does not match this configuration" in lines[0], proc.stderr[-3000:]


def test_sample_export_and_info_refuse_a_run_whose_checkpoint_diverged(tmp_path, capsys):
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, z_dim=16, seed=0)
    gan.compile()
    gan.generator.to_rgb.kernel.assign(np.full(gan.generator.to_rgb.kernel.shape, np.nan, "float32"))
    run = RunDirectory(tmp_path / "run")  # As an older keras_sagan left a diverged run: NaN saved.
    run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), {})
    CheckpointManager(gan, run.checkpoints_dir, max_to_keep=1).save(checkpoint_number=12)
    for argv in (
        ["sample", "--model", run.path, "--out", str(tmp_path / "x.png")],
        ["export", "--checkpoint", run.path, "--out", str(tmp_path / "export")],
        ["info", "--model", run.path],
    ):
        err = _one_line(capsys, argv)
        assert "ckpt-12" in err and "non-finite weights" in err, err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "export" / "1").exists()
