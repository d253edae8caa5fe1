"""`python -m keras_sagan evaluate`: FID/IS/KID JSON from SavedModels and checkpoints, every option, one-line errors.

Most cases run the small Fashion-MNIST network (`--inception fashion_mnist`, 128-d) with fixed random
weights, so they run in about a second; one subprocess runs the 2015 FID Inception network with random weights.
"""

import argparse
import copy
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from PIL import Image
from run_fixtures import ema_sagan, write_run

import keras_sagan
from keras_sagan import cli
from keras_sagan.export import saved_model
from keras_sagan.metrics import StatisticsFile, networks
from keras_sagan.metrics.domain import FEATURE_DIM, DomainClassifierExtractor

METRICS = ("fid", "is_mean", "is_std", "kid_mean", "kid_std", "precision", "recall", "density", "coverage")
KEYS = {*METRICS, "num_samples", "num_real_samples", "model", "inception", "inception_resize", "inception_weights"}


def _small_network(args):
    """Most cases run the small Fashion-MNIST network: `--inception fashion_mnist` unless given."""
    return list(args) if "--inception" in args else [*args, "--inception", "fashion_mnist"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A fixed random weights file of the Fashion-MNIST network, so that separate runs use the same network."""
    path = str(tmp_path_factory.mktemp("network") / "random.weights.h5")
    DomainClassifierExtractor("random").model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """`(checkpoint_dir, saved_base)`: a checkpointed SAGAN (EMA unlike G) and its export (EMA weights)."""
    gan = ema_sagan()
    run = str(tmp_path_factory.mktemp("runs") / "celeba")
    write_run(run, gan, checkpoint_number=1)
    saved = str(tmp_path_factory.mktemp("saved") / "celeba")
    saved_model.export_generator(run, saved)
    return run, saved


def _evaluate(capsys, *args):
    """Runs `evaluate`; returns `(results, stderr)` after checking stdout is one JSON line."""
    assert cli.main(["evaluate", *_small_network(args)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1, captured.out
    return json.loads(captured.out), captured.err


def _error(capsys, *args):
    assert cli.main(["evaluate", *_small_network(args)]) == cli.EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured
    return captured.err


@pytest.fixture(scope="module")
def baseline(models, weights):
    """`(argv, results, stderr)`: the SavedModel at seed 0 on 20 demo faces, run once for the module."""
    argv = ["--model", models[1], "--data", "demo", "--num_samples", "20", "--batch_size", "10"]
    argv += ["--inception_weights", weights]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert cli.main(["evaluate", *_small_network(argv)]) == 0
    assert out.getvalue().count("\n") == 1, out.getvalue()
    return argv, json.loads(out.getvalue()), err.getvalue()


def test_saved_model_and_checkpoint_print_the_same_json(models, baseline, capsys):
    argv, results, err = baseline
    assert set(results) == KEYS and results["inception"] == "fashion_mnist"
    assert all(np.isfinite(results[key]) for key in METRICS)
    assert results["num_samples"] == results["num_real_samples"] == 20
    assert results["model"] == f"saved_model {os.path.join(models[1], '1')}"
    assert "generated images:" in err and "20/20" in err  # The progress bars are on stderr.

    checkpoint_args = ["--model", models[0], *argv[2:]]
    from_checkpoint, _ = _evaluate(capsys, *checkpoint_args)
    assert from_checkpoint["model"].startswith(f"checkpoint {models[0]}")
    assert from_checkpoint["model"].endswith("(ema_generator)")
    for key in METRICS:
        assert from_checkpoint[key] == pytest.approx(results[key], rel=1e-4, abs=1e-6), key


def test_seed_changes_the_numbers_and_repeats_them(baseline, capsys):
    argv, first, _ = baseline
    assert _evaluate(capsys, *argv, "--seed", "0")[0] == first
    other, _ = _evaluate(capsys, *argv, "--seed", "1")
    assert other["fid"] != first["fid"] and other["is_mean"] != first["is_mean"]


def test_num_samples_and_batch_size(baseline, capsys, monkeypatch):
    batches = []
    original = DomainClassifierExtractor.features_and_logits
    monkeypatch.setattr(
        DomainClassifierExtractor,
        "features_and_logits",
        lambda self, images: batches.append(int(images.shape[0])) or original(self, images),
    )
    argv = baseline[0]
    args = argv[:4] + argv[-2:]  # --model, --data and --inception_weights only.
    results, _ = _evaluate(capsys, *args, "--num_samples", "13", "--batch_size", "5")
    assert batches == [5, 5, 3, 5, 5, 3]  # Real images, then generated ones.
    assert results["num_samples"] == results["num_real_samples"] == 13
    # The demo set has 100 faces: more samples than that use them all, and say so.
    results, err = _evaluate(capsys, *args, "--num_samples", "110", "--batch_size", "50")
    assert (results["num_samples"], results["num_real_samples"]) == (110, 100)
    assert "warning: The dataset ended after 100 images; asked for num_samples=110." in err


def test_stats_out_then_stats_in(baseline, tmp_path, capsys):
    argv, first, _ = baseline
    path = str(tmp_path / "stats" / "real")  # No .npz suffix: written as given.
    results, err = _evaluate(capsys, *argv, "--stats_out", path)
    assert results == first and f"real statistics saved to {path}" in err
    saved = StatisticsFile.load(path)
    assert saved.count == 20 and saved.features.shape == (20, FEATURE_DIM)
    assert saved.provenance["image_size"] == 32 and saved.provenance["data"] == {"dataset": "demo"}
    assert saved.provenance["num_samples"] == 20 and saved.provenance["seed"] == 0
    with open(argv[-1], "rb") as f:  # The --inception_weights file.
        assert saved.provenance["extractor"]["weights_sha256"] == hashlib.sha256(f.read()).hexdigest()
    mu, sigma = saved.mu, saved.sigma

    args = ["--model", argv[1], *argv[4:]]  # No --data.
    reused, err = _evaluate(capsys, *args, "--stats_in", path)
    assert reused == first and "real images" not in err

    # Without features, from other-sized images: same FID, no KID, two warnings.
    other = str(tmp_path / "mu_sigma.npz")
    partial_stats = StatisticsFile(mu, sigma, provenance={**saved.provenance, "image_size": 64})
    partial_stats.save(other)
    partial, err = _evaluate(capsys, *args, "--stats_in", other)
    assert partial["fid"] == first["fid"] and partial["kid_mean"] is None and partial["num_real_samples"] is None
    assert "holds no `features`, so KID is not computed" in err and "computed from 64x64 images" in err

    # keras_sagan's older files came from the removed Keras InceptionV3: refused, saying what to do.
    np.savez(other, mu=mu, sigma=sigma, image_size=32)
    err = _error(capsys, *args, "--stats_in", other)
    assert f"--stats_in={other!r}: was computed with Keras' InceptionV3, which keras_sagan no longer has" in err
    assert "--inception fid (the 2015 Inception) or --inception fashion_mnist" in err
    StatisticsFile(np.zeros(2048), np.eye(2048), provenance=saved.provenance).save(other)  # Another size.
    assert "the Inception features are 128-d" in _error(capsys, *args, "--stats_in", other)
    assert "does not apply with --stats_in" in _error(capsys, *args, "--stats_in", path, "--stats_out", other)
    missing = str(tmp_path / "no.npz")
    assert f"--stats_in={missing!r}: cannot read real statistics: no such file" in _error(
        capsys, *args, "--stats_in", missing
    )
    assert "`--image_folder` applies only with --data" in _error(
        capsys, *args, "--stats_in", path, "--image_folder", str(tmp_path)
    )
    with pytest.raises(SystemExit) as info:  # argparse: --data and --stats_in are exclusive.
        cli.main(["evaluate", *args, "--stats_in", path, "--data", "demo"])
    assert info.value.code == 2


def test_image_folder_and_data_dir(baseline, tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    argv = baseline[0]
    args = ["--model", argv[1], "--inception_weights", argv[-1], "--num_samples", "10", "--batch_size", "5"]
    results, err = _evaluate(capsys, *args, "--data", "folder", "--image_folder", str(folder))
    assert results["num_real_samples"] == 10 and "real images (folder, 32x32)" in err
    demo, _ = _evaluate(capsys, *args, "--data", "demo")
    assert results["fid"] != demo["fid"]

    empty = tmp_path / "tfds"
    empty.mkdir()
    err = _error(capsys, *args, "--data", "celeba", "--data_dir", str(empty))
    assert f"CelebA is not prepared in {empty}" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--data", "demo", "--image_folder", "x"],
            "`--image_folder` applies only to --data='folder'; received: --data='demo', --image_folder='x'",
        ),
        (["--data", "folder"], "`--image_folder` must be a folder of images when --data='folder'"),
        (
            ["--data", "demo", "--data_dir", "x"],
            "`--data_dir` applies only to --data='celeba' or --data='fashion_mnist' or --data='mnist'; "
            "received: --data='demo', --data_dir='x'",
        ),
        (["--data", "demo", "--num_samples", "1"], "`--num_samples` must be an int >= 2; received: --num_samples=1"),
        (["--data", "demo", "--batch_size", "0"], "`--batch_size` must be an int >= 1; received: --batch_size=0"),
    ],
)
def test_bad_arguments_are_one_line_errors(models, args, message, capsys):
    assert message in _error(capsys, "--model", models[1], *args)


def test_missing_model_is_a_one_line_error(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    assert f"no such model path: {missing}" in _error(capsys, "--model", missing, "--data", "demo")


def test_inception_weights(models, tmp_path, monkeypatch, capsys):
    args = ["--model", models[1], "--data", "demo", "--num_samples", "10", "--batch_size", "10"]
    missing = str(tmp_path / "nope.h5")
    err = _error(capsys, *args, "--inception_weights", missing)
    assert f"domain classifier weights not found: {missing}" in err
    err = _error(capsys, *args, "--inception", "fid", "--inception_weights", missing)
    assert f"FID Inception weights file not found: {missing!r}" in err and networks.FID_WEIGHTS_URL in err
    # Random weights run, and say that the numbers mean nothing.
    results, err = _evaluate(capsys, *args, "--inception_weights", "random")
    assert results["inception_weights"] == "random" and np.isfinite(results["fid"])
    assert "warning: --inception_weights random: a randomly initialised fashion_mnist network" in err


def test_conditional_saved_model_gets_labels(tmp_path, weights, capsys):
    generator = keras_sagan.build_generator("cifar10_32", conv_dim=4, num_classes=10)
    base = str(tmp_path / "cifar")
    saved_model.export_generator(generator, base)
    args = ["--data", "demo", "--num_samples", "10", "--batch_size", "5", "--inception_weights", weights]
    results, _ = _evaluate(capsys, "--model", base, *args)
    assert np.isfinite(results["fid"])
    # A version directory away from its base's keras_sagan_model.json: the class count is unknown.
    shutil.copytree(os.path.join(base, "1"), tmp_path / "alone")
    assert "number of classes is unknown" in _error(capsys, "--model", str(tmp_path / "alone"), *args)


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["evaluate", "--help"])
    assert info.value.code == 0
    capsys.readouterr()
    parser = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    # Each option's own help text, as --help prints it (argparse fills in %(default)s).
    helps = {
        a.option_strings[0]: " ".join((a.help % {"default": a.default}).split())
        for a in parser.choices["evaluate"]._actions
        if a.option_strings and a.help
    }
    for option, default in (
        ("--data", "Default None"),
        ("--stats_in", "Default None"),
        ("--num_samples", "Default 50000"),
        ("--batch_size", "Default 100"),
        ("--inception_weights", "Default None: for fid the Keras cache"),
        ("--stats_out", "Default None"),
        ("--seed", "Default 0"),
        ("--data_dir", "Default None"),
        ("--image_folder", "Default None"),
        ("--inception", "Default fid."),
        ("--prdc_k", "Default 5."),
        ("--inception_resize", "Default bilinear."),
    ):
        assert default in helps[option], (option, helps[option])


def test_prdc_k(baseline, capsys, monkeypatch):
    from keras_sagan.metrics import generator_metrics, prdc

    argv, first, _ = baseline
    used = []

    def recording(real, fake, k=prdc.DEFAULT_K):
        used.append(k)
        return prdc.precision_recall_density_coverage(real, fake, k=k)

    monkeypatch.setattr(generator_metrics, "precision_recall_density_coverage", recording)
    other, _ = _evaluate(capsys, *argv, "--prdc_k", "2")
    # k reaches the metric (density can be 0 for every k on these tiny untrained fakes), and FID is untouched.
    assert used == [2] and prdc.DEFAULT_K != 2
    assert other["fid"] == first["fid"]
    assert all(0.0 <= other[key] <= 1.0 for key in ("precision", "recall", "coverage"))
    err = _error(capsys, *argv, "--prdc_k", "20")
    assert "`--prdc_k` must be below --num_samples (20); received: --prdc_k=20" in err
    assert "`--prdc_k` must be an int >= 1; received: --prdc_k=0" in _error(capsys, *argv, "--prdc_k", "0")


def test_the_fid_network_and_statistics_of_another_network(models, baseline, tmp_path, capsys, monkeypatch):
    """`--inception fid`: the 2015 network, with random weights; its statistics refuse `fashion_mnist`."""
    from keras_sagan.metrics import fid_network

    # One network for the whole test: the CLI's own path, with the ~10 s build done once.
    built = {"bilinear": fid_network.fid_inception("random")}
    built["clean"] = copy.copy(built["bilinear"])  # The same network, with clean-fid's resize.
    built["clean"].resize_method, built["clean"]._forwards = "clean", {}
    monkeypatch.setattr(fid_network, "fid_inception", lambda weights, resize: built[resize])
    args = ["--model", models[1], "--num_samples", "4", "--batch_size", "4", "--prdc_k", "2"]
    stats = str(tmp_path / "fid_real.npz")
    fid_random = ["--inception", "fid", "--inception_weights", "random"]
    results, err = _evaluate(capsys, *args, "--data", "demo", *fid_random, "--stats_out", stats)
    assert results["inception"] == "fid" and all(np.isfinite(results[key]) for key in METRICS)
    assert "randomly initialised fid network" in err
    assert StatisticsFile.load(stats).provenance["extractor"]["network"] == "inception-2015-12-05/pool3"
    err = _error(capsys, *args, "--stats_in", stats, "--inception_weights", baseline[0][-1])  # fashion_mnist.
    assert "was computed with inception-2015-12-05/pool3, not fashion_mnist_classifier/features" in err
    assert "pass --inception fid" in err
    # A TTUR / pytorch-fid file (mu and sigma only) is the 2015 network's: accepted with fid, not fashion_mnist.
    ttur = str(tmp_path / "fid_stats_cifar10_train.npz")
    saved = StatisticsFile.load(stats)
    np.savez(ttur, mu=saved.mu, sigma=saved.sigma)
    with_ttur, err = _evaluate(capsys, *args, "--stats_in", ttur, *fid_random)
    assert np.isfinite(with_ttur["fid"]) and with_ttur["kid_mean"] is None and with_ttur["precision"] is None
    assert "read as TTUR/pytorch-fid statistics" in err
    # --inception_resize clean reaches the extractor: statistics of the bilinear resize are refused. (What
    # the clean resize computes is tested against clean-fid in test_metrics_fid_inception.py.)
    err = _error(capsys, *args, "--stats_in", stats, *fid_random, "--inception_resize", "clean")
    assert "was computed with another resize (bilinear; now clean); mixing them makes FID meaningless" in err
    err = _error(capsys, *args, "--data", "demo", "--inception", "fashion_mnist", "--inception_resize", "clean")
    assert "--inception fashion_mnist resizes only 'bilinear'; received: resize='clean'" in err
    small_weights = ["--inception_weights", baseline[0][-1]]
    assert "was computed with inception-2015-12-05/pool3" in _error(capsys, *args, "--stats_in", ttur, *small_weights)


def test_fid_weights_offline_is_one_line(models, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    url = "http://127.0.0.1:9/pt_inception-2015-12-05-6726825d.pth"  # Refused at once: never the network.
    monkeypatch.setattr(networks, "FID_WEIGHTS_URL", url)
    assert cli.main(["evaluate", "--model", models[1], "--data", "demo", "--inception", "fid"]) == cli.EXIT_ERROR
    out, err = capsys.readouterr()
    attempt, error = err.splitlines()  # Keras' "Downloading data from URL", then the one-line error.
    assert out == "" and attempt == f"Downloading data from {url}" and error.startswith("error: ")
    assert f"cannot get the FID Inception weights from {url}" in error and "--inception_weights FILE" in error


@pytest.mark.slow
def test_the_fid_network_with_random_weights_in_a_process(models, tmp_path):
    """The smoke-test path as a user runs it: stdout is only the JSON, progress is on stderr."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1"}  # See test_loop_eval.py.
    args = ["--model", models[1], "--data", "demo", "--num_samples", "10", "--batch_size", "10"]
    proc = subprocess.run(
        [sys.executable, "-m", "keras_sagan", "evaluate", *args, "--inception_weights", "random"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert all(np.isfinite(results[key]) for key in METRICS) and results["num_samples"] == 10
    assert "10/10" in proc.stderr and "Traceback" not in proc.stderr
