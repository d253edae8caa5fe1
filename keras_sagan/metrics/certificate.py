"""The Fashion-MNIST quality protocol: scores on the domain network, and the certificate a shipped model carries.

One protocol, named in every number it gives (`protocol()`):

- feature network: `keras_sagan.metrics.domain` (its weights' SHA-256 recorded);
- real images: the Fashion-MNIST **test** split (10,000), mapped to the model's size exactly as
  training maps images (`keras_sagan.data.mnist`: pad 28->32, then resize), then to the network's
  32x32 (a resize only when the model is not 32x32);
- fakes: `num_fakes` images from noise `z ~ N(0, 1)` drawn by NumPy's `default_rng(seed)`, in
  batches of 100, with the stated BatchNorm statistics (`keras_sagan.models.batch_norm_statistics`);
- numbers: FID on the 128-d features, KID (100 subsets of 1,000), precision/recall/density/coverage
  (k=5, on the first 5,000 real and fake features), and each class's share of the fakes by the
  classifier's argmax.

`certify(generator, ...)` measures a generator under the protocol and returns the certificate;
`check_certificate(certificate, measured)` lists each number that moved beyond its tolerance.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from keras_sagan.metrics.domain import NETWORK, NUM_CLASSES, DomainClassifierExtractor
from keras_sagan.metrics.frechet import frechet_distance
from keras_sagan.metrics.kid import kernel_inception_distance
from keras_sagan.metrics.prdc import precision_recall_density_coverage

SAMPLING = ("moving", "batch", "standing")
"""BatchNorm statistics a generator samples with (see `keras_sagan.models.batch_norm_statistics`)."""
PRDC_COUNT = 5000
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
BATCH = 100
SCORES = ("fid", "kid", "precision", "recall", "density", "coverage", "min_class_fraction")
TOLERANCE = {"fid": 0.02, "kid": 0.02, "precision": 0.02, "recall": 0.02, "density": 0.02, "coverage": 0.02}
"""Relative change each score may show on another machine before a certificate fails (float32 round-off)."""
ABSOLUTE_TOLERANCE = {"kid": 2e-4, "min_class_fraction": 0.005}


def protocol(
    extractor: DomainClassifierExtractor, image_size: int, num_real: int, num_fakes: int, seed: int, sampling: str
) -> dict[str, Any]:
    """The protocol record every score carries."""
    return {
        "feature_network": NETWORK,
        "feature_network_sha256": extractor.weights_sha256,
        "real": f"fashion_mnist test split, first {num_real} images",
        "real_mapping": "pad 28->32 (2 black pixels per side)"
        + (f", resize to {image_size}" if image_size != 32 else ""),
        "feature_resize": "none" if image_size == 32 else f"bilinear antialiased {image_size}->32",
        "num_real": num_real,
        "num_fakes": num_fakes,
        "noise": f"numpy default_rng({seed}).standard_normal, batches of {BATCH}",
        "seed": seed,
        "sampling": sampling,
        "kid": f"{KID_SUBSETS} subsets of {KID_SUBSET_SIZE}, polynomial kernel",
        "prdc": f"k=5 on the first {PRDC_COUNT} real and fake features",
    }


def real_features(
    extractor: DomainClassifierExtractor, image_size: int, num_real: int = 10000, data_dir: str | None = None
) -> np.ndarray:
    """Features of the first `num_real` Fashion-MNIST test images, mapped as training maps them."""
    from keras_sagan.data.mnist import load_mnist_arrays, mnist_to_model

    images, _ = load_mnist_arrays("fashion_mnist", "test", data_dir)
    if len(images) < num_real:
        raise ValueError(f"num_real={num_real} but the test split has {len(images)} images")
    features = []
    for start in range(0, num_real, BATCH):
        batch = mnist_to_model(images[start : min(start + BATCH, num_real)], image_size).numpy()
        features.append(extractor.features_and_logits(batch)[0])
    return np.concatenate(features)


def noise(num: int, z_dim: int, seed: int) -> np.ndarray:
    """The protocol's noise: `(num, z_dim)` float32 from NumPy's `default_rng(seed)`."""
    return np.random.default_rng(seed).standard_normal((num, z_dim)).astype(np.float32)


def sampler(generator, sampling: str, batch_size: int = 64, seed: int = 0) -> Callable[[np.ndarray], Any]:
    """Returns `z -> images` for `generator` with the given BatchNorm statistics.

    `"standing"` recalibrates a copy of `generator` (100 batches of `batch_size`); the generator
    itself is never changed.
    """
    from keras_sagan.models import batch_norm_statistics

    if sampling == "moving":
        return lambda z: generator(z, training=False)
    if sampling == "batch":
        return lambda z: batch_norm_statistics.sample_with_batch_statistics(generator, z)
    if sampling == "standing":
        copy = generator.__class__.from_config(generator.get_config())
        copy.build()
        copy.set_weights(generator.get_weights())
        batch_norm_statistics.recalibrate(copy, num_batches=100, batch_size=batch_size, seed=seed)
        return lambda z: copy(z, training=False)
    raise ValueError(f"unknown sampling {sampling!r}; expected one of {', '.join(SAMPLING)}")


def fake_features(sample: Callable[[np.ndarray], Any], extractor, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and logits of `sample(z)` in batches of `BATCH`."""
    import keras

    features, logits = [], []
    for start in range(0, len(z), BATCH):
        images = keras.ops.convert_to_numpy(sample(z[start : start + BATCH]))
        f, lg = extractor.features_and_logits(images)
        features.append(f)
        logits.append(lg)
    return np.concatenate(features), np.concatenate(logits)


def score(real: np.ndarray, fake: np.ndarray, fake_logits: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """FID, KID, PRDC and class shares of fake features against real ones (the protocol's numbers)."""
    fid = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    subset = min(KID_SUBSET_SIZE, len(real), len(fake))
    kid, kid_std = kernel_inception_distance(real, fake, num_subsets=KID_SUBSETS, subset_size=subset, seed=seed)
    prdc = precision_recall_density_coverage(real[:PRDC_COUNT], fake[:PRDC_COUNT])
    shares = np.bincount(np.argmax(fake_logits, axis=1), minlength=NUM_CLASSES) / len(fake_logits)
    return {
        "fid": float(fid),
        "kid": float(kid),
        "kid_std": float(kid_std),
        **{key: float(value) for key, value in prdc.items()},
        "class_fractions": [round(float(x), 5) for x in shares],
        "min_class_fraction": float(shares.min()),
    }


def certify(
    generator,
    num_fakes: int = 10000,
    num_real: int = 10000,
    seed: int = 0,
    sampling: str = "moving",
    data_dir: str | None = None,
    extractor: DomainClassifierExtractor | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Measures `generator` under the protocol: `{"protocol": ..., "scores": ..., "measured": ...}`.

    Args:
        generator: a 1-channel (or 3-channel) `Generator` trained on Fashion-MNIST.
        num_fakes: int. Generated images. Defaults to `10000`.
        num_real: int. Test images. Defaults to `10000`.
        seed: int. Noise seed. Defaults to `0`.
        sampling: str. One of `SAMPLING`. Defaults to `"moving"`.
        data_dir: str or None. Where the IDX files are (see `keras_sagan.data.mnist`).
        extractor: the domain network; `None` builds the shipped one.
        batch_size: int. Batch of the standing-statistics passes. Defaults to `64`.
    """
    extractor = extractor or DomainClassifierExtractor()
    start = time.time()
    real = real_features(extractor, generator.image_size, num_real, data_dir)
    fake, logits = fake_features(
        sampler(generator, sampling, batch_size, seed), extractor, noise(num_fakes, generator.z_dim, seed)
    )
    return {
        "protocol": protocol(extractor, generator.image_size, num_real, num_fakes, seed, sampling),
        "scores": score(real, fake, logits, seed),
        "measured": {
            "seconds": round(time.time() - start, 1),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
    }


def check_certificate(certificate: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Compares a measured certificate with the recorded one: one line per number that moved too far.

    The protocols must be equal; each score in `SCORES` may move by its relative `TOLERANCE` or
    its `ABSOLUTE_TOLERANCE`, whichever is larger. An empty list means the certificate holds.
    """
    problems = []
    for key, value in certificate["protocol"].items():
        if measured["protocol"].get(key) != value:
            problems.append(f"protocol {key}: certificate {value!r}, measured {measured['protocol'].get(key)!r}")
    for key in SCORES:
        recorded, now = certificate["scores"][key], measured["scores"][key]
        allowed = max(TOLERANCE.get(key, 0.0) * abs(recorded), ABSOLUTE_TOLERANCE.get(key, 0.0))
        if abs(now - recorded) > allowed:
            problems.append(
                f"{key} moved from {recorded:.6g} to {now:.6g} (by {now - recorded:+.3g}; allowed ±{allowed:.3g})"
            )
    return problems
