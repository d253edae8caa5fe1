"""StatisticsFile: round trip, the three old schemas, TTUR/pytorch-fid mu/sigma files, refusals and notes."""

import json
import os

import numpy as np
import pytest

from keras_sagan.errors import UsageError
from keras_sagan.metrics import StatisticsFile, StreamingStatistics
from keras_sagan.metrics.feature_stats import KERAS_INCEPTION, RECOMPUTE
from keras_sagan.metrics.networks import DOMAIN_NETWORK, FID_NETWORK

DIM = 5


class Extractor:
    """The attributes `StatisticsFile.load` compares: a stand-in for `make_extractor`'s networks."""

    def __init__(self, feature_dim=DIM, network="net", weights_sha256="abc", resize_method="bilinear"):
        self.feature_dim = feature_dim
        self.network = network
        self.weights_sha256 = weights_sha256
        self.resize_method = resize_method


def _features(n=40, seed=0):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _provenance():
    extractor = {"network": "net", "feature_dim": DIM, "weights_sha256": "abc", "image_size": 299, "resize": "bilinear"}
    return {"extractor": extractor, "image_size": 32, "num_samples": 40, "count": 40, "data": {"dataset": "demo"}}


def test_round_trip_keeps_everything_and_writes_the_path_as_given(tmp_path):
    features = _features()
    stats = StatisticsFile(
        features.mean(0, dtype=np.float64), np.cov(features, rowvar=False), 40, features, _provenance()
    )
    path = tmp_path / "sub" / "real"  # No suffix, and a folder that does not exist yet.
    assert stats.save(path) == os.fspath(path)
    assert sorted(os.listdir(tmp_path / "sub")) == ["real"]  # No .npz added, no temporary file left.
    with np.load(path) as data:  # Readable by any tool that wants mu and sigma.
        np.testing.assert_array_equal(data["mu"], features.astype(np.float64).mean(0))
        assert json.loads(str(data["provenance"])) == _provenance()
    loaded = StatisticsFile.load(path, Extractor(), image_size=32)
    for name in ("mu", "sigma", "features"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(stats, name))
    assert (loaded.count, loaded.provenance, loaded.loaded_from) == (40, _provenance(), os.fspath(path))
    assert loaded.features.dtype == np.float32 and loaded.mu.dtype == np.float64
    assert loaded.notes == []


def test_save_replaces_an_existing_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "real.npz"
    StatisticsFile(np.zeros(DIM), np.eye(DIM), 3).save(path)
    # A failure while writing leaves the old file in place and no temporary file.
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        StatisticsFile(np.ones(DIM), np.eye(DIM), 4).save(path)
    assert os.listdir(tmp_path) == ["real.npz"]
    assert StatisticsFile.load(path).count == 3


def _old_files():
    """keras_sagan's files from before this schema, every one computed by Keras' InceptionV3."""
    features = _features()
    mu, sigma = features.mean(0), np.cov(features, rowvar=False)
    key = json.dumps({"dataset": "folder", "image_folder": "faces", "image_size": 64, "num_samples": 40})
    return {
        "training's real_stats.npz": {"mu": mu, "sigma": sigma, "count": 40, "features": features, "key": key},
        "evaluate --stats_out": {"mu": mu, "sigma": sigma, "count": 40, "image_size": 32, "data": "demo"},
        "StreamingStatistics.save": {"mu": mu, "sigma": sigma, "count": 40},
    }


@pytest.mark.parametrize("name", list(_old_files()))
def test_files_of_the_removed_keras_inception_are_refused_in_one_line(tmp_path, name):
    path = tmp_path / "real_stats.npz"
    np.savez(path, **_old_files()[name])
    for extractor in (None, Extractor(network=FID_NETWORK)):
        with pytest.raises(UsageError) as info:
            StatisticsFile.load(path, extractor, what="eval_stats")
        assert str(info.value) == (
            f"eval_stats={os.fspath(path)!r}: was computed with Keras' InceptionV3, which keras_sagan no longer has; "
            f"{RECOMPUTE} --inception fid (the 2015 Inception) or --inception fashion_mnist"
        )


def test_a_schema_file_naming_the_keras_inception_is_refused(tmp_path):
    path = tmp_path / "real.npz"
    provenance = {**_provenance(), "extractor": {**_provenance()["extractor"], "network": KERAS_INCEPTION}}
    StatisticsFile(np.zeros(DIM), np.eye(DIM), 10, provenance=provenance).save(path)
    with pytest.raises(UsageError, match="^path=.*: was computed with Keras' InceptionV3, which keras_sagan no longer"):
        StatisticsFile.load(path)


def test_ttur_and_pytorch_fid_mu_sigma_files_load_with_fid_only(tmp_path):
    path = tmp_path / "fid_stats_celeba.npz"
    np.savez(path, mu=np.arange(DIM, dtype=np.float32), sigma=np.eye(DIM, dtype=np.float32))
    loaded = StatisticsFile.load(path, Extractor(network=FID_NETWORK), image_size=64, what="--stats_in")
    np.testing.assert_array_equal(loaded.mu, np.arange(DIM))
    assert loaded.mu.dtype == np.float64 and loaded.count is None and loaded.features is None
    assert loaded.network == FID_NETWORK
    assert len(loaded.notes) == 2
    assert "read as TTUR/pytorch-fid statistics of the 2015 FID Inception network" in loaded.notes[0]
    assert loaded.notes[1] == f"--stats_in={os.fspath(path)!r} holds no `features`, so KID is not computed"
    with pytest.raises(UsageError) as info:  # Another network's statistics.
        StatisticsFile.load(path, Extractor(network=DOMAIN_NETWORK), what="--stats_in")
    assert str(info.value).startswith(f"--stats_in={os.fspath(path)!r}: was computed with {FID_NETWORK}, not")
    assert "pass --inception fid" in str(info.value) and "\n" not in str(info.value)


def test_mismatches_are_refused_in_one_line_that_says_how_to_recompute(tmp_path):
    path = tmp_path / "real.npz"
    StatisticsFile(np.zeros(DIM), np.eye(DIM), 10, provenance=_provenance()).save(path)
    with pytest.raises(UsageError) as info:
        StatisticsFile.load(path, Extractor(feature_dim=2048), what="eval_stats")
    message = str(info.value)
    assert message.startswith(f"eval_stats={os.fspath(path)!r}: holds mu (5,) and sigma (5, 5); the Inception")
    assert "features are 2048-d" in message and "--stats_out FILE" in message and "\n" not in message
    with pytest.raises(UsageError, match=r"was computed with net, not other-net; recompute it"):
        StatisticsFile.load(path, Extractor(network="other-net"))
    # Other weights or another resize: refused too, one line each.
    with pytest.raises(UsageError, match=r"was computed with another --inception_weights \(abc; now def\); mixing"):
        StatisticsFile.load(path, Extractor(weights_sha256="def"))
    with pytest.raises(UsageError, match=r"was computed with another resize \(bilinear; now clean\); mixing"):
        StatisticsFile.load(path, Extractor(resize_method="clean"))


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ({"mean": np.zeros(3)}, r"cannot read real statistics: it holds \['mean'\], not `mu` and `sigma`; recompute"),
        ({"mu": np.zeros(3), "sigma": np.eye(4)}, r"cannot read real statistics: `mu` and `sigma` must have shapes"),
        (
            {"mu": np.zeros(3), "sigma": np.eye(3), "features": np.zeros((4, 2))},
            r"`features.shape` must be \(n, 3\); received: features.shape=\(4, 2\)",
        ),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path, arrays, expected):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UsageError, match=expected) as info:
        StatisticsFile.load(path, what="eval_stats")
    assert str(info.value).startswith(f"eval_stats={os.fspath(path)!r}: ") and "\n" not in str(info.value)


def test_missing_and_non_npz_files(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(UsageError) as info:
        StatisticsFile.load(missing, what="--stats_in")
    assert str(info.value) == f"--stats_in={os.fspath(missing)!r}: cannot read real statistics: no such file"
    text = tmp_path / "notes.txt"
    text.write_text("not statistics\nsecond line\n")
    with pytest.raises(UsageError, match="cannot read real statistics") as info:
        StatisticsFile.load(text)
    assert "\n" not in str(info.value)


def test_from_streaming_and_back():
    x = np.random.default_rng(3).standard_normal((30, DIM))
    stats = StreamingStatistics(DIM)
    stats.update(x[:20])
    saved = StatisticsFile.from_streaming(stats, provenance={"count": 20})
    np.testing.assert_allclose(saved.sigma, np.cov(x[:20], rowvar=False), rtol=1e-12)
    resumed = saved.to_streaming()
    resumed.update(x[20:])
    np.testing.assert_allclose(resumed.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(resumed.covariance, np.cov(x, rowvar=False), rtol=1e-10)
