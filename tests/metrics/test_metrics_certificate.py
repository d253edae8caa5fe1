"""Tests for the Fashion-MNIST quality protocol (keras_sagan.metrics.certificate) and the domain network's input."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from idx_files import write_split

import keras_sagan
from keras_sagan.metrics import certificate, domain
from keras_sagan.metrics.networks import file_sha256


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    """200 test images of blobs at class-dependent places, labels 0..9."""
    folder = tmp_path_factory.mktemp("fmnist_test")
    rng = np.random.default_rng(0)
    images = np.zeros((200, 28, 28), np.uint8)
    for i in range(200):
        row, col = 4 + 2 * (i % 10), 6 + rng.integers(0, 10)
        images[i, row : row + 6, col : col + 8] = rng.integers(120, 256)
    write_split(folder, "test", images, (np.arange(200) % 10).astype(np.uint8))
    return str(folder)


@pytest.fixture(scope="module")
def extractor():
    return domain.DomainClassifierExtractor("random")


@pytest.fixture(scope="module")
def generator():
    g = keras_sagan.Generator(image_size=32, conv_dim=8, z_dim=16, channels=1)
    g.build()
    return g


def test_class_shares_and_prdc_of_a_set_against_itself():
    features = np.random.default_rng(1).standard_normal((300, 8))
    logits = np.eye(10)[np.arange(300) % 3]  # classes 0, 1, 2 only: 100 each
    scores = certificate.score(features, features, logits)
    assert scores["class_fractions"][:3] == [pytest.approx(1 / 3, abs=1e-5)] * 3
    assert scores["min_class_fraction"] == 0.0
    assert scores["precision"] == scores["recall"] == 1.0
    assert abs(scores["fid"]) < 1e-6


def test_a_certificate_holds_on_a_rerun_and_names_what_moved(generator, extractor, test_split):
    kwargs = dict(num_fakes=200, num_real=200, seed=3, data_dir=test_split, extractor=extractor)
    recorded = certificate.certify(generator, **kwargs)
    assert recorded["protocol"]["num_fakes"] == 200 and recorded["protocol"]["sampling"] == "moving"
    assert recorded["protocol"]["feature_network_sha256"] == "random"
    again = certificate.certify(generator, **kwargs)
    assert certificate.check_certificate(recorded, again) == []
    json.dumps(recorded)  # JSON-able, as it is stored in a preset's metadata

    moved = json.loads(json.dumps(recorded))
    moved["scores"]["fid"] *= 1.5
    problems = certificate.check_certificate(moved, again)
    assert len(problems) == 1 and problems[0].startswith("fid moved from")
    moved = json.loads(json.dumps(recorded))
    moved["protocol"]["seed"] = 4
    assert certificate.check_certificate(moved, again) == ["protocol seed: certificate 4, measured 3"]


def test_standing_sampler_leaves_the_generator_unchanged(generator):
    before = [keras.ops.convert_to_numpy(v).copy() for v in generator.variables]
    sample = certificate.sampler(generator, "standing", batch_size=8)
    z = certificate.noise(4, 16, 0)
    assert tuple(sample(z).shape) == (4, 32, 32, 1)
    for value, variable in zip(before, generator.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)
    with pytest.raises(ValueError, match="unknown sampling 'eval'"):
        certificate.sampler(generator, "eval")


def test_domain_network_input_path(extractor):
    rgb = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    grey = rgb.mean(-1, keepdims=True)
    expected = np.clip(tf.image.resize(grey, (32, 32), antialias=True).numpy(), -1, 1)
    np.testing.assert_allclose(extractor.preprocess(rgb), expected, atol=1e-6)
    features, logits = extractor.features_and_logits(rgb)
    assert features.shape == (2, domain.FEATURE_DIM) and logits.shape == (2, domain.NUM_CLASSES)
    with pytest.raises(ValueError, match=r"\(B, H, W, 1 or 3\)"):
        extractor.preprocess(np.zeros((2, 32, 32, 2)))


def test_shipped_weights_match_their_pinned_hash():
    assert file_sha256(domain.WEIGHTS_FILE) == domain.WEIGHTS_SHA256
    assert domain.TEST_ACCURACY >= 0.93


@pytest.mark.skipif(
    not __import__("os").path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="needs `apt-get install dataset-fashion-mnist` (.ci/run installs it)",
)
def test_shipped_classifier_reaches_its_recorded_test_accuracy():
    from keras_sagan.data.mnist import load_mnist_arrays, mnist_to_model

    images, labels = load_mnist_arrays("fashion_mnist", "test", "/usr/share/datasets/fashion-mnist")
    extractor = domain.DomainClassifierExtractor()
    predictions = np.concatenate(
        [np.argmax(extractor(mnist_to_model(images[i : i + 1000], 32).numpy())[1], 1) for i in range(0, 10000, 1000)]
    )
    assert np.mean(predictions == labels) == pytest.approx(domain.TEST_ACCURACY, abs=1e-4)


def test_certify_command_writes_checks_and_reports_a_moved_number(tmp_path, capsys, generator, test_split):
    from cli_checks import cli_error

    from keras_sagan import cli

    model = str(tmp_path / "g.keras")
    generator.save(model)
    cert = str(tmp_path / "cert.json")
    common = ["--model", model, "--data_dir", test_split]
    assert (
        cli.main(["certify", *common, "--write", cert, "--num_fakes", "100", "--num_real", "200", "--seed", "1"]) == 0
    )
    written = json.load(open(cert))
    assert (
        written["protocol"]["num_fakes"] == 100
        and written["protocol"]["feature_network_sha256"] == domain.WEIGHTS_SHA256
    )
    capsys.readouterr()
    assert cli.main(["certify", *common, "--certificate", cert]) == 0
    assert json.loads(capsys.readouterr().out)["holds"] is True
    written["scores"]["recall"] = written["scores"]["recall"] + 0.5
    json.dump(written, open(cert, "w"))
    assert cli.main(["certify", *common, "--certificate", cert]) == 1
    err = capsys.readouterr().err
    assert err.startswith("certificate does not hold: recall moved from") and err.count("\n") == 1
    cli_error(capsys, ["certify", *common])  # a .keras file carries no certificate
    cli_error(capsys, ["certify", *common, "--write", cert, "--num_fakes", "3"])


def test_shipped_preset_samples_offline_by_name(tmp_path, capsys):
    from keras_sagan import cli

    generator = keras_sagan.Generator.from_preset("fashion_mnist32")
    assert (generator.image_size, generator.channels) == (32, 1)
    assert keras_sagan.list_presets()["fashion_mnist32"]["scores"]["fid"] > 0
    out = str(tmp_path / "grid.png")
    assert cli.main(["sample", "--model", "fashion_mnist32", "--num", "4", "--seed", "0", "--out", out]) == 0
    loaded = keras_sagan.load_generator("fashion_mnist32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.keras_generator(certificate.noise(2, 128, 0), training=False)),
        keras.ops.convert_to_numpy(generator(certificate.noise(2, 128, 0), training=False)),
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not __import__("os").path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="needs `apt-get install dataset-fashion-mnist` (.ci/run installs it)",
)
def test_shipped_certificate_holds(capsys):
    from keras_sagan import cli

    assert cli.main(["certify", "--model", "fashion_mnist32"]) == 0
    assert json.loads(capsys.readouterr().out)["holds"] is True
