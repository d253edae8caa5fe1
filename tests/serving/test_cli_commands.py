"""`python -m keras_sagan export|sample|info`, from checkpoints and SavedModels, and its one-line errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from cli_checks import cli_error  # noqa: E402
from PIL import Image
from run_fixtures import ema_sagan, write_run

import keras_sagan
from keras_sagan import cli
from keras_sagan.export import loading, saved_model

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`(model_dir, gan)`: a checkpointed SAGAN whose EMA weights differ from its generator's."""
    gan = ema_sagan()
    model_dir = str(tmp_path_factory.mktemp("runs") / "celeba")
    write_run(model_dir, gan)
    return model_dir, gan


@pytest.fixture(scope="module")
def saved(run, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("saved") / "demo")
    assert cli.main(["export", "--checkpoint", run[0], "--out", base]) == 0
    return base


def _z():
    return np.random.RandomState(0).randn(4, 128).astype("float32")


def test_export_from_checkpoint_uses_ema(run, saved, capsys):
    _, gan = run
    assert saved_model.list_versions(saved) == [1]
    images = tf.saved_model.load(os.path.join(saved, "1")).signatures["serving_default"](z=tf.constant(_z()))
    np.testing.assert_allclose(images["images"].numpy(), np.asarray(gan.ema_generator(_z(), training=False)), atol=1e-5)
    assert not np.allclose(images["images"].numpy(), np.asarray(gan.generator(_z(), training=False)), atol=1e-3)


def test_export_from_checkpoints_subfolder_with_version(run, tmp_path, capsys):
    base = str(tmp_path / "demo")
    assert (
        cli.main(["export", "--checkpoint", os.path.join(run[0], "checkpoints"), "--out", base, "--version", "7"]) == 0
    )
    assert capsys.readouterr().out.strip() == os.path.join(base, "7")
    err = cli_error(capsys, ["export", "--checkpoint", run[0], "--out", base, "--version", "7"])
    assert "Version 7 already exists" in err


def test_export_without_ema_uses_generator(tmp_path):
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, seed=1)
    gan.compile()
    write_run(str(tmp_path / "run"), gan)
    generator, _, key = loading.load_run_generator(str(tmp_path / "run"))
    assert key == "generator"
    np.testing.assert_allclose(
        np.asarray(generator(_z(), training=False)), np.asarray(gan.generator(_z(), training=False)), atol=1e-6
    )
    for restored, original in zip(generator.weights, gan.generator.weights):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())


def test_sample_png_from_saved_model_equals_from_checkpoint(run, saved, tmp_path, capsys):
    args = ["--num", "6", "--seed", "3", "--truncation", "0.7"]
    assert cli.main(["sample", "--model", saved, *args, "--out", str(tmp_path / "a.png")]) == 0
    assert cli.main(["sample", "--model", run[0], *args, "--out", str(tmp_path / "b.png")]) == 0
    a = np.asarray(Image.open(tmp_path / "a.png"))
    b = np.asarray(Image.open(tmp_path / "b.png"))
    assert a.shape == (1 + 2 * 33, 1 + 3 * 33, 3)  # 6 images of 32 px: 3 columns, 2 rows, 1 px padding (one grid)
    np.testing.assert_array_equal(a, b)
    # The grid's first cell is the sample signature's first image.
    outputs = tf.saved_model.load(os.path.join(saved, "1")).signatures["sample"](
        num_images=tf.constant(6), seed=tf.constant(3, tf.int64), truncation=tf.constant(0.7)
    )
    np.testing.assert_array_equal(a[1:33, 1:33], outputs["images_uint8"].numpy()[0])


def test_sample_labels_on_unconditional_model(saved, tmp_path, capsys):
    err = cli_error(
        capsys, ["sample", "--model", saved, "--num", "2", "--labels", "1", "--out", str(tmp_path / "x.png")]
    )
    assert "unconditional" in err
    assert not os.path.exists(tmp_path / "x.png")


def test_an_os_error_keeps_its_errno_text_and_path(saved, tmp_path, capsys):
    (tmp_path / "file").write_text("")  # `--out` under a file: `os.makedirs` cannot make that folder.
    out = tmp_path / "file" / "x.png"
    err = cli_error(capsys, ["sample", "--model", saved, "--num", "1", "--out", str(out)])
    assert err == f"error: [Errno 17] File exists: '{tmp_path / 'file'}'\n"  # Was `error: FileExistsError`.


def test_sample_num_above_cap(saved, tmp_path, capsys):
    err = cli_error(capsys, ["sample", "--model", saved, "--num", "5000", "--out", str(tmp_path / "x.png")])
    assert str(saved_model.MAX_IMAGES) in err


def test_info_saved_model(saved, capsys):
    assert cli.main(["info", "--model", saved]) == 0
    out = capsys.readouterr().out
    assert "version: 1" in out
    assert "signature 'serving_default' (method tensorflow/serving/predict)" in out
    assert "signature 'sample' (method tensorflow/serving/predict)" in out
    assert "input  z: float32 [None, 128]" in out
    assert "input  seed: int64 []" in out
    assert "output images_uint8: uint8 [None, 32, 32, 3]" in out
    assert '"conv_dim": 8' in out


def test_info_checkpoint(run, capsys):
    assert cli.main(["info", "--model", run[0]]) == 0
    out = capsys.readouterr().out
    assert "ckpt-3" in out and "weights exported: ema_generator" in out


def test_bad_model_paths(saved, tmp_path, capsys):
    assert "no such model path" in cli_error(capsys, ["info", "--model", str(tmp_path / "missing")])
    os.makedirs(tmp_path / "empty")
    assert "neither a SavedModel" in cli_error(capsys, ["sample", "--model", str(tmp_path / "empty"), "--out", "x.png"])
    os.makedirs(tmp_path / "corrupt" / "1")
    with open(tmp_path / "corrupt" / "1" / "saved_model.pb", "wb") as f:
        f.write(b"\x00garbage")
    assert "corrupt SavedModel" in cli_error(capsys, ["info", "--model", str(tmp_path / "corrupt")])
    assert "corrupt SavedModel" in cli_error(capsys, ["sample", "--model", str(tmp_path / "corrupt"), "--out", "x.png"])
    shutil.copytree(os.path.join(saved, "1"), tmp_path / "novars" / "1")
    shutil.rmtree(tmp_path / "novars" / "1" / "variables")
    assert "cannot load SavedModel" in cli_error(
        capsys, ["sample", "--model", str(tmp_path / "novars"), "--out", str(tmp_path / "x.png")]
    )
    assert not os.path.exists(tmp_path / "x.png")


def test_bad_checkpoints(run, tmp_path, capsys):
    shutil.copytree(os.path.join(run[0], "checkpoints"), tmp_path / "noconfig" / "checkpoints")
    err = cli_error(capsys, ["export", "--checkpoint", str(tmp_path / "noconfig"), "--out", str(tmp_path / "out")])
    assert "no config.json" in err
    # Configs that do not describe the checkpointed generator: other shapes, or
    # fewer layers (a partial restore would silently export a different model).
    shutil.copytree(run[0], tmp_path / "mismatch")
    for change in ({"conv_dim": 16}, {"attention_resolutions": [8]}):
        with open(tmp_path / "mismatch" / "config.json", "w", encoding="utf-8") as f:
            json.dump({"generator": run[1].generator.get_config() | change}, f)
        err = cli_error(capsys, ["export", "--checkpoint", str(tmp_path / "mismatch"), "--out", str(tmp_path / "out")])
        assert "does not match the generator described by config.json" in err
    assert saved_model.list_versions(tmp_path / "out") == []


def test_module_entry_point(saved, tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "keras_sagan", "info", "--model", saved],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "signature 'sample'" in ok.stdout, ok.stderr[-2000:]
    bad = subprocess.run(
        [sys.executable, "-m", "keras_sagan", "sample", "--model", str(tmp_path / "nope"), "--out", "x.png"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    # TensorFlow's own import-time log lines aside, the error is one line.
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: no such model path: {tmp_path / 'nope'}"]


def test_sample_conditional_labels(tmp_path, capsys):
    generator = keras_sagan.build_generator("cifar10_32", conv_dim=4, num_classes=10)
    base = saved_model.export_generator(generator, tmp_path / "cifar")
    out = str(tmp_path / "c.png")
    assert cli.main(["sample", "--model", base, "--num", "3", "--labels", "4", "--out", out]) == 0
    assert cli.main(["sample", "--model", base, "--num", "3", "--labels", "4,4", "4", "--out", out + "2.png"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(out + "2.png")))
    assert cli.main(["sample", "--model", base, "--num", "3", "--out", str(tmp_path / "random.png")]) == 0
    assert "--labels needs 1 or --num (3) values" in cli_error(
        capsys, ["sample", "--model", base, "--num", "3", "--labels", "1", "2", "--out", out]
    )
    assert "labels must be in [0, 10)" in cli_error(
        capsys, ["sample", "--model", base, "--num", "3", "--labels", "12", "--out", out]
    )
