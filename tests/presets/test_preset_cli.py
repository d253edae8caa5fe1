"""`keras-sagan export --format preset`, and `sample`/`info`/`load_generator` on presets: by folder, by registered
name, and through the offline `hf://` cache in a fresh process, all giving the run's own images."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_checks import cli_error
from hub_caches import lay_out_hf_cache
from PIL import Image
from run_fixtures import ema_sagan

import keras_sagan
import keras_sagan.export.preset
from keras_sagan import cli
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.export import loading
from keras_sagan.models import presets
from keras_sagan.run_directory import RunDirectory
from keras_sagan.training.sagan import SAGAN

IMAGES = np.random.RandomState(5).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")


def _same_networks(gan, reference, z):
    """The three networks of `gan` give `reference`'s outputs exactly."""
    for name in ("generator", "ema_generator"):
        expected = np.asarray(getattr(reference, name)(z, training=False))
        np.testing.assert_array_equal(np.asarray(getattr(gan, name)(z, training=False)), expected)
    expected = np.asarray(reference.discriminator(IMAGES, training=False))
    np.testing.assert_array_equal(np.asarray(gan.discriminator(IMAGES, training=False)), expected)


def test_export_preset_from_a_tensorflow_checkpoint_run(exported):
    gan = SAGAN.from_preset(exported["preset"])
    _same_networks(gan, exported["gan"], exported["z"])
    metadata = json.load(open(os.path.join(exported["preset"], "metadata.json")))
    assert metadata["step"] == 3  # write_run's checkpoint number.
    assert metadata["certificate"] == {"scores": {"fid": 3.25}}


def test_export_preset_from_a_state_checkpoint_run(tmp_path, capsys):
    gan = ema_sagan(seed=4)
    run = RunDirectory(str(tmp_path / "run"))
    run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), {"dataset": "demo"})
    CheckpointManager(gan, run.checkpoints_dir, max_to_keep=2).save(5)
    metadata_file = tmp_path / "certificate.json"
    metadata_file.write_text(json.dumps({"certificate": {"scores": {"fid": 9.5}}, "sampling": {"truncation": 0.5}}))
    argv = ["export", "--checkpoint", run.path, "--format", "preset", "--out", str(tmp_path / "p")]
    assert cli.main(argv + ["--metadata", str(metadata_file)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'p'}\n"
    z = np.random.RandomState(1).randn(2, 128).astype("float32")
    _same_networks(SAGAN.from_preset(str(tmp_path / "p")), gan, z)
    metadata = json.load(open(tmp_path / "p" / "metadata.json"))
    assert (metadata["step"], metadata["dataset"], metadata["sampling"]) == (5, "demo", {"truncation": 0.5})
    assert "already exists" in cli_error(capsys, argv)  # Never overwritten.


def test_export_metadata_errors(exported, tmp_path, capsys):
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    argv = ["export", "--checkpoint", exported["run"], "--out", str(tmp_path / "out")]
    err = cli_error(capsys, argv + ["--format", "preset", "--metadata", str(listed)])
    assert "`--metadata` must be a JSON file holding an object" in err
    assert "cannot read --metadata" in cli_error(capsys, argv + ["--format", "preset", "--metadata", "missing.json"])
    err = cli_error(capsys, argv[:-1] + [str(tmp_path / "g.onnx"), "--format", "onnx", "--metadata", str(listed)])
    assert "`--metadata` must be a JSON file" in err  # The file is read first; an object then meets the format:
    listed.write_text("{}")
    err = cli_error(capsys, argv[:-1] + [str(tmp_path / "g.onnx"), "--format", "onnx", "--metadata", str(listed)])
    assert "`metadata` applies to format 'preset' only" in err


def _grid(path):
    return np.asarray(Image.open(path))


def test_sample_by_folder_by_name_and_from_the_run_are_the_same(exported, tmp_path, monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "tiny_test", {"description": "test", "weights": exported["preset"]})
    grids = {}
    for key, model in (("run", exported["run"]), ("folder", exported["preset"]), ("name", "tiny_test")):
        out = str(tmp_path / f"{key}.png")
        assert cli.main(["sample", "--model", model, "--num", "4", "--seed", "3", "--out", out]) == 0
        grids[key] = _grid(out)
    np.testing.assert_array_equal(grids["folder"], grids["run"])
    np.testing.assert_array_equal(grids["name"], grids["run"])
    loaded = loading.load_generator("tiny_test")
    assert (loaded.kind, loaded.step) == ("preset", 3)
    np.testing.assert_array_equal(np.asarray(loaded(exported["z"])), exported["ema_images"])


def test_sample_through_the_offline_hf_cache_in_a_fresh_process(exported, tmp_path):
    cache = str(tmp_path / "hf")
    lay_out_hf_cache(cache, "me/tiny", exported["preset"])
    reference = str(tmp_path / "run.png")
    assert cli.main(["sample", "--model", exported["run"], "--num", "4", "--seed", "3", "--out", reference]) == 0
    out = str(tmp_path / "hf.png")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": cache}
    result = subprocess.run(
        [sys.executable, "-m", "keras_sagan", "sample", "--model", "hf://me/tiny", "--num", "4", "--seed", "3"]
        + ["--out", out],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(_grid(out), _grid(reference))


def test_info_on_a_preset(exported, capsys):
    assert cli.main(["info", "--model", exported["preset"]]) == 0
    out = capsys.readouterr().out
    assert "networks: generator, training_generator, discriminator (model.weights.h5 holds the EMA generator)" in out
    assert 'scores: {"fid": 3.25}' in out and "dataset: not recorded" in out
    assert json.loads(out.split("metadata: ")[1].splitlines()[0])["step"] == 3


def test_unknown_bare_name_lists_the_registered_presets(capsys):
    err = cli_error(capsys, ["sample", "--model", "fashion_mnist3", "--out", "x.png"])
    assert "received: preset='fashion_mnist3'" in err and "'celeba64'" in err


def test_savedmodel_cannot_become_a_preset(exported, tmp_path, capsys):
    base = str(tmp_path / "saved")
    assert cli.main(["export", "--checkpoint", exported["run"], "--out", base]) == 0
    capsys.readouterr()
    err = cli_error(capsys, ["export", "--checkpoint", base, "--format", "preset", "--out", str(tmp_path / "p")])
    assert "a preset is written from a run directory, a .keras file, a Generator or a SAGAN" in err


def test_keras_file_becomes_a_generator_only_preset(exported, tmp_path):
    keras_file = str(tmp_path / "g.keras")
    exported["gan"].ema_generator.save(keras_file)
    folder = keras_sagan.export.preset.export_preset(keras_file, str(tmp_path / "p"))
    generator = keras_sagan.Generator.from_preset(folder)
    np.testing.assert_array_equal(np.asarray(generator(exported["z"], training=False)), exported["ema_images"])
    assert json.load(open(os.path.join(folder, "metadata.json")))["networks"] == ["generator"]


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_from_preset_rejects_non_paths(network):
    cls = keras_sagan.Generator if network == "generator" else keras_sagan.Discriminator
    with pytest.raises(ValueError, match=r"received: preset=3"):
        cls.from_preset(3)
