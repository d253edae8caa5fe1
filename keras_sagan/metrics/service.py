"""Evaluation as one service: real statistics of a `DataSpec` (with a cache), and the training callback's wiring.

`keras-sagan evaluate` and training's `EvaluationCallback` both get their real statistics from
`real_statistics` (or a file through `StatisticsFile.load`) and their network from
`make_extractor`, so the two compute, cache and check them the same way.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from keras_sagan.errors import UsageError, one_line
from keras_sagan.metrics.callback import EvaluationCallback
from keras_sagan.metrics.evaluate import MAX_KID_FEATURES, Extractor, compute_dataset_statistics
from keras_sagan.metrics.extractor import RANDOM_WEIGHTS, extractor_provenance, make_extractor
from keras_sagan.metrics.statistics_file import StatisticsFile

"""Real (and generated) feature vectors kept for KID: 10k x 2048 float32 is 80 MB."""

EVAL_BATCH_SIZE = 100
"""Largest batch of images per InceptionV3 call during evaluation in training."""

_MATCHED = ("data", "image_size", "num_samples", "seed", "extractor")


def real_statistics(
    data_spec: Any,
    extractor: Extractor,
    *,
    image_size: int,
    num_samples: int,
    batch_size: int = 100,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    progress: bool | str = False,
) -> StatisticsFile:
    """Feature statistics of up to `num_samples` real images of `data_spec`, in one pass.

    Args:
        data_spec: `keras_sagan.data.DataSpec`. The images, read at `image_size`, shuffled with
            `seed`, without repeating (a smaller dataset gives fewer images, and a note).
        extractor: see `make_extractor` (or any extractor of `extract_features`).
        image_size: int. Side of the images (the generator's size).
        num_samples: int. Most images read; the first `min(num_samples, MAX_KID_FEATURES)`
            feature vectors are kept for KID.
        batch_size: int. Images per extractor call. Defaults to `100`.
        seed: int. Shuffle seed of the images. Defaults to `0`.
        cache: path or None. A statistics file to reuse when its provenance matches (data spec,
            image size, `num_samples`, `seed`, extractor and weights hash), else to compute and
            save. Statistics of random weights (or an extractor without a weights hash) are
            never reused. Defaults to `None` (no cache).
        progress: bool or str. Show a progress bar; a str is printed first, once the dataset
            is built (so a bad dataset fails before anything is printed). Defaults to `False`.

    Returns:
        A `StatisticsFile`; `notes` hold warnings (the dataset ended early), and `loaded_from`
        is the cache path when it was reused.
    """
    provenance = {
        "data": data_spec.describe(),
        "image_size": int(image_size),
        "num_samples": int(num_samples),
        "seed": seed,
        "extractor": extractor_provenance(extractor),
    }
    weights = provenance["extractor"]["weights_sha256"]
    if cache is not None and weights not in (None, RANDOM_WEIGHTS) and os.path.isfile(cache):
        try:
            stored = StatisticsFile.load(cache)
        except UsageError:  # A damaged or foreign file: compute it again.
            stored = None
        if stored is not None and all(stored.provenance.get(key) == provenance[key] for key in _MATCHED):
            return stored
    dataset = data_spec.load(image_size, batch_size, seed, repeat=False)
    if isinstance(progress, str):
        print(progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats, features = compute_dataset_statistics(
            dataset,
            extractor,
            num_samples=num_samples,
            keep_features=min(num_samples, MAX_KID_FEATURES),
            progress=bool(progress),
        )
    result = StatisticsFile.from_streaming(stats, features, {**provenance, "count": stats.count})
    # E.g. "The dataset ended after 100 images"; other warnings (TensorFlow's) are not ours to tell.
    result.notes = [one_line(str(w.message)) for w in caught if issubclass(w.category, UserWarning)]
    if cache is not None:
        result.save(cache)
    return result


def make_evaluation_callback(
    data_spec: Any,
    *,
    image_size: int,
    every: int,
    num_samples: int,
    stats_path: str | os.PathLike | None,
    inception_weights: str | os.PathLike | None,
    inception: str = "fid",
    cache_path: str | os.PathLike | None,
    log_dir: str | os.PathLike | None,
    seed: int,
) -> EvaluationCallback:
    """The `EvaluationCallback` of training's `eval_*` settings: InceptionV3 and the real statistics.

    Args:
        data_spec: `DataSpec`. The training images, whose statistics are computed (and cached in
            `cache_path`) when `stats_path` is `None`.
        image_size: int. The generator's image size.
        every: int. `eval_every`: steps between evaluations.
        num_samples: int. `eval_num_samples`: images generated per evaluation, and most real
            images read.
        stats_path: path or None. `eval_stats`: a statistics file to use instead.
        inception_weights: str, path or None. See `make_extractor`.
        inception: str. `"fid"` (the 2015 network of published numbers) or `"keras"`. Defaults to
            `"fid"`.
        cache_path: path or None. The run's real-statistics cache.
        log_dir: path or None. TensorBoard directory of the `eval/*` scalars.
        seed: int. Seed of the real images' order and of the latents.

    Raises:
        UsageError: one line naming the setting (`eval_stats=...`, `--inception_weights FILE`).
    """
    extractor = make_extractor(inception_weights, inception)
    if stats_path:
        real = StatisticsFile.load(stats_path, extractor, image_size, what="eval_stats")
    else:
        real = real_statistics(
            data_spec,
            extractor,
            image_size=image_size,
            num_samples=num_samples,
            batch_size=min(EVAL_BATCH_SIZE, num_samples),
            seed=seed,
            cache=cache_path,
        )
        if real.loaded_from is not None:
            print(f"real statistics for evaluation: {real.loaded_from} ({real.count} images)", flush=True)
        else:
            saved = f", saved to {os.fspath(cache_path)}" if cache_path is not None else ""
            print(f"real statistics for evaluation: {real.count} {data_spec.name} images{saved}", flush=True)
    for note in real.notes:
        print(f"warning: {note}", flush=True)
    return EvaluationCallback(
        (real.mu, real.sigma),
        extractor,
        every_n_steps=every,
        num_samples=num_samples,
        batch_size=min(EVAL_BATCH_SIZE, num_samples),
        log_dir=log_dir,
        real_features_for_kid=real.features,  # None (a file without them): KID is not logged.
        seed=seed,
    )
