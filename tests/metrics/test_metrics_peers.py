"""FID, KID, precision/recall/density/coverage against the peer libraries, on the same features.

clean-fid runs in a subprocess (imported beside TensorFlow it can segfault); prdc is plain NumPy and
scikit-learn, so it runs here.
"""

import json
import subprocess
import sys

import numpy as np
import prdc
import pytest

from keras_sagan.errors import UsageError
from keras_sagan.metrics import frechet_distance, kernel_inception_distance
from keras_sagan.metrics.prdc import precision_recall_density_coverage

_CLEANFID = """
import json, sys, numpy as np
from cleanfid import fid
data = np.load(sys.argv[1])
real, fake = data["real"].astype(np.float64), data["fake"].astype(np.float64)
mu1, mu2 = real.mean(0), fake.mean(0)
s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
out = {"fid": float(fid.frechet_distance(mu1, s1, mu2, s2))}
for seed, subsets, size in ((0, 7, 40), (3, 5, 60)):
    np.random.seed(seed)
    out[f"kid_{seed}"] = float(fid.kernel_distance(real, fake, num_subsets=subsets, max_subset_size=size))
print(json.dumps(out))
"""


def _features(seed, n, d=64, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)  # Correlated features, as Inception's are.
    return ((rng.normal(size=(n, d)) @ mixing) * scale + shift).astype(np.float32)


@pytest.fixture(scope="module")
def features():
    return _features(0, 120), _features(1, 100, shift=0.2, scale=1.1)


@pytest.fixture(scope="module")
def cleanfid(features, tmp_path_factory):
    path = tmp_path_factory.mktemp("cleanfid") / "features.npz"
    np.savez(path, real=features[0], fake=features[1])
    proc = subprocess.run([sys.executable, "-c", _CLEANFID, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fid_equals_cleanfid(features, cleanfid):
    real, fake = (f.astype(np.float64) for f in features)
    ours = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    assert cleanfid["fid"] > 1.0  # Distinct sets: a number that a wrong formula would miss.
    assert ours == pytest.approx(cleanfid["fid"], rel=1e-6)


@pytest.mark.parametrize("seed, subsets, size", [(0, 7, 40), (3, 5, 60)])
def test_kid_equals_cleanfid_on_the_same_seeded_subsets(features, cleanfid, seed, subsets, size):
    mean, _ = kernel_inception_distance(*features, num_subsets=subsets, subset_size=size, seed=seed)
    assert cleanfid[f"kid_{seed}"] > 0
    assert mean == pytest.approx(cleanfid[f"kid_{seed}"], rel=1e-6)


@pytest.mark.parametrize("k", [5, 2, 9])
def test_prdc_equals_the_prdc_package(features, k):
    real, fake = features
    theirs = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    ours = precision_recall_density_coverage(real, fake, k=k)
    assert set(ours) == set(theirs)
    for key in ours:
        assert ours[key] == pytest.approx(float(theirs[key]), rel=1e-6, abs=1e-12), key
    # The shifted set is measurably different: some of these are away from their ideal values.
    assert ours["precision"] < 1.0 or ours["coverage"] < 1.0


def test_prdc_of_a_set_with_itself():
    real = _features(2, 50)
    scores = precision_recall_density_coverage(real, real, k=3)
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0


@pytest.mark.parametrize(
    "real, fake, k, message",
    [
        (np.zeros((5, 3)), np.zeros((9, 3)), 5, r"`k` must be below the number of samples of each set \(5 real"),
        (np.zeros((9, 3)), np.zeros((9, 4)), 2, r"must have shapes \(n, d\) with the same d"),
        (np.zeros((9, 3)), np.zeros((9, 3)), 0, r"`k` must be an int >= 1; received: k=0"),
    ],
)
def test_prdc_bad_inputs_are_one_line(real, fake, k, message):
    with pytest.raises(UsageError, match=message) as info:
        precision_recall_density_coverage(real, fake, k=k)
    assert "\n" not in str(info.value)
