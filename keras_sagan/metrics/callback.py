"""`EvaluationCallback`: FID, KID, IS and precision/recall during training, logged to TensorBoard; and its wiring.

`make_evaluation_callback` builds it from training's `eval_*` settings: the network of
`networks.make_extractor`, and real statistics from a file or `feature_stats.real_statistics` (cached
in the run), so training and `keras-sagan evaluate` compute, cache and check them the same way.
"""

from __future__ import annotations

import math
import os
from typing import Any

import keras
import numpy as np

from keras_sagan.errors import bad_value
from keras_sagan.metrics.feature_stats import (
    RealStatistics,
    StatisticsFile,
    real_statistics,
    resolve_real_statistics,
)
from keras_sagan.metrics.generator_metrics import PRDC_KEYS, evaluate_generator
from keras_sagan.metrics.networks import Extractor, make_extractor
from keras_sagan.metrics.prdc import DEFAULT_K

EVAL_BATCH_SIZE = 100
"""Largest batch of images per feature-network call during evaluation in training."""


class EvaluationCallback(keras.callbacks.Callback):
    """Computes FID and KID every `every_n_steps` training batches.

    The model is a `SAGAN` or anything with its two public members: `step` (the training
    step, which continues after a restored checkpoint) and `sampling_generator()` (the EMA
    generator when there is one). After each batch the callback reads `model.step` and
    evaluates when it is a multiple of `every_n_steps` (once per step value), sampling
    `model.sampling_generator()` and comparing with precomputed real statistics (and, for
    KID, real features).

    Results are written as TensorBoard scalars `eval/fid`, `eval/kid`, `eval/precision`,
    `eval/recall`, `eval/density`, `eval/coverage` (and `eval/is`
    when the extractor gives logits) into `log_dir`, added to the batch `logs` under the
    same names, added to the epoch `logs` of an epoch in which an evaluation ran, and
    appended to `self.history` as `(step, results_dict)`.

    Args:
        real_statistics: a `StatisticsFile`, a `StreamingStatistics`, a statistics file
            path, or `(mu, sigma)`; compute them once with `real_statistics(...)`.
        extractor: `"fid"` or `"fashion_mnist"` (that network with its published weights,
            see `make_extractor`), an extractor that `make_extractor` built, or a callable /
            small keras model (see `extract_features`).
        every_n_steps: int. Evaluation period in training steps.
        num_samples: int. Generated images per evaluation. Defaults to `5000`.
        batch_size: int. Generator batch size. Defaults to `100`.
        log_dir: str or None. TensorBoard directory; `None` writes no summaries.
            Defaults to `None`.
        real_features_for_kid: array `(n, D)` or None. Real features for KID; without
            them KID is NaN and not logged. Defaults to `None` (a `StatisticsFile`'s own
            `features`).
        kid_subset_size: int. KID subset size. Defaults to `1000`.
        kid_num_subsets: int. KID subsets. Defaults to `100`.
        seed: int. Sampling seed: the same latents at every evaluation. Defaults to `0`.
        progress: bool. Show a progress bar while evaluating. Defaults to `False`.
        prdc_k: int. Nearest neighbour of precision/recall/density/coverage, logged as
            `eval/precision`, `eval/recall`, `eval/density`, `eval/coverage` with KID.
            Defaults to `5`.

    Example:

    ```python
    extractor = make_extractor()  # The 2015 FID Inception network.
    real = StatisticsFile.load("celeba64_fid.npz", extractor)
    callback = EvaluationCallback(real, extractor, every_n_steps=5000, log_dir="runs/sagan/logs/eval")
    gan.fit(dataset, epochs=10, callbacks=[callback])
    ```
    """

    def __init__(
        self,
        real_statistics: RealStatistics,
        extractor: Extractor,
        every_n_steps: int,
        num_samples: int = 5000,
        batch_size: int = 100,
        log_dir: str | os.PathLike | None = None,
        real_features_for_kid: Any | None = None,
        kid_subset_size: int = 1000,
        kid_num_subsets: int = 100,
        seed: int = 0,
        progress: bool = False,
        prdc_k: int = DEFAULT_K,
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("every_n_steps", every_n_steps, 1),
            ("num_samples", num_samples, 2),
            ("batch_size", batch_size, 1),
            ("kid_subset_size", kid_subset_size, 2),
            ("kid_num_subsets", kid_num_subsets, 1),
            ("prdc_k", prdc_k, 1),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
                raise ValueError(bad_value(name, value, f"an int >= {minimum}"))
        if isinstance(extractor, str):  # "fid" or "fashion_mnist": that network's published weights.
            extractor = make_extractor(network=extractor)
        if not callable(extractor) and not hasattr(extractor, "features_and_logits"):
            raise ValueError(bad_value("extractor", extractor, "callable"))
        if real_features_for_kid is None and isinstance(real_statistics, StatisticsFile):
            real_features_for_kid = real_statistics.features
        self.real_statistics = real_statistics
        self.extractor = extractor
        self.every_n_steps = int(every_n_steps)
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.real_features_for_kid = real_features_for_kid
        self.kid_subset_size = int(kid_subset_size)
        self.kid_num_subsets = int(kid_num_subsets)
        self.seed = seed
        self.progress = progress
        self.prdc_k = int(prdc_k)

        self._real_mu_sigma = resolve_real_statistics(real_statistics)
        if real_features_for_kid is not None:
            feats = np.asarray(real_features_for_kid)
            if feats.ndim != 2 or feats.shape[1] != self._real_mu_sigma[0].shape[0]:
                raise ValueError(
                    bad_value(
                        "real_features_for_kid.shape",
                        feats.shape,
                        f"(n, {self._real_mu_sigma[0].shape[0]}) to match `real_statistics`",
                    )
                )
        self.history: list[tuple[int, dict[str, float]]] = []
        self._last_evaluated_step: int | None = None
        self._evaluated_this_epoch: dict[str, float] | None = None
        self._writer: Any = None

    def set_model(self, model: keras.Model) -> None:
        if not callable(getattr(model, "sampling_generator", None)) or not hasattr(model, "step"):
            raise ValueError(
                bad_value("model", type(model).__name__, "a model with `step` and `sampling_generator()` (a SAGAN)")
            )
        super().set_model(model)

    def evaluate(self, step: int) -> dict[str, float]:
        """Runs one evaluation of `model.sampling_generator()`, logs it at `step` and returns the results dict."""
        results = evaluate_generator(
            self.model.sampling_generator(),
            num_samples=self.num_samples,
            batch_size=self.batch_size,
            extractor=self.extractor,
            real_statistics=self._real_mu_sigma,
            real_features_for_kid=self.real_features_for_kid,
            seed=self.seed,
            progress=self.progress,
            kid_num_subsets=self.kid_num_subsets,
            kid_subset_size=self.kid_subset_size,
            max_kid_features=self.num_samples,
            prdc_k=self.prdc_k,
        )
        scalars = self._scalars(results)
        if self.log_dir is not None:
            import tensorflow as tf  # Only to write summaries: importing this module loads no TensorFlow.

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for tag, value in scalars.items():
                    tf.summary.scalar(tag, value, step=step)
            self._writer.flush()
        self.history.append((step, results))
        return results

    @staticmethod
    def _scalars(results: dict[str, float]) -> dict[str, float]:
        scalars = {"eval/fid": results["fid"], "eval/kid": results["kid_mean"]}
        scalars.update({f"eval/{key}": results[key] for key in PRDC_KEYS})
        if not math.isnan(results["is_mean"]):
            scalars["eval/is"] = results["is_mean"]
        return {k: v for k, v in scalars.items() if not math.isnan(v)}

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._evaluated_this_epoch = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.step))  # A variable, a tensor or an int.
        if step % self.every_n_steps != 0 or step == self._last_evaluated_step:
            return
        self._last_evaluated_step = step
        scalars = self._scalars(self.evaluate(step))
        self._evaluated_this_epoch = scalars
        if logs is not None:
            logs.update(scalars)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and self._evaluated_this_epoch:
            logs.update(self._evaluated_this_epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


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
    """The `EvaluationCallback` of training's `eval_*` settings: the feature network and the real statistics.

    Args:
        data_spec: `DataSpec`. The training images, whose statistics are computed (and cached in
            `cache_path`) when `stats_path` is `None`.
        image_size: int. The generator's image size.
        every: int. `eval_every`: steps between evaluations.
        num_samples: int. `eval_num_samples`: images generated per evaluation, and most real
            images read.
        stats_path: path or None. `eval_stats`: a statistics file to use instead.
        inception_weights: str, path or None. See `make_extractor`.
        inception: str. `"fid"` (the 2015 network of published numbers) or `"fashion_mnist"`.
            Defaults to `"fid"`.
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
