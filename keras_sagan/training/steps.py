"""How the training callbacks count steps: the train step, a once-per-step callback base, interval means.

Every callback numbers steps with the SAGAN's train step (`model.step`, the generator optimizer's
`iterations`: one per train step, restored with a checkpoint), so the count continues across
resumed runs. They read the batch `logs` of `SAGAN.train_step`, whose `d_loss`, `g_loss`,
`d_real` and `d_fake` are running means since the start of `fit()`; `IntervalMeans` turns them
back into means over each log interval.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras

LOSS_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
"""The running-mean metrics of `SAGAN.train_step`'s logs."""


def current_step(model: keras.Model) -> int:
    """Returns the train step: `model.step` when the model has one, else `model.g_optimizer.iterations`."""
    step = getattr(model, "step", None)
    if isinstance(step, int):  # SAGAN.step: already read.
        return step
    if step is None:
        step = model.g_optimizer.iterations
    return int(keras.ops.convert_to_numpy(step))


class IntervalMeans:
    """Turns running means since the start of `fit()` into means over each interval.

    After `n` steps a running mean `m_n` equals `sum / n`, so the mean over steps `(a, b]` is
    `(b * m_b - a * m_a) / (b - a)`.
    """

    def __init__(self, keys: Sequence[str] = LOSS_KEYS):
        self.keys = tuple(keys)
        self.reset()

    def reset(self):
        self._count = 0
        self._sums = dict.fromkeys(self.keys, 0.0)

    def update(self, count: int, logs: dict) -> dict[str, float]:
        """`count` steps since `fit()` began; returns the means since the previous call."""
        means = {}
        for key in self.keys:
            if key not in logs:
                continue
            total = float(logs[key]) * count
            if count > self._count:
                means[key] = (total - self._sums[key]) / (count - self._count)
            self._sums[key] = total
        self._count = count
        return means


class Throughput:
    """Images per second between successive calls, from the batch count and the wall clock."""

    def __init__(self, global_batch_size: int):
        self.global_batch_size = global_batch_size
        self.reset()

    def reset(self):
        self._batches, self._time = 0, time.perf_counter()

    def update(self, batches: int) -> float:
        now = time.perf_counter()
        rate = self.global_batch_size * (batches - self._batches) / max(now - self._time, 1e-9)
        self._batches, self._time = batches, now
        return rate


class StepCallback(keras.callbacks.Callback):
    """Calls `on_step(step, batches, logs)` once for each new train step.

    `step` is `current_step(model)`; `batches` counts the train steps run since `fit()` began
    (the updates behind the running means in `logs`). The two differ by the restored step, and
    under `mixed_float16` also by the steps whose gradients overflowed: loss scaling skips those
    updates and `iterations` does not advance, so no new step is reported for them.
    """

    def on_train_begin(self, logs=None):
        self._start_step = self._seen_step = current_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if step != self._seen_step:
            self._seen_step = step
            self.on_step(step, batch + 1, logs or {})

    def on_step(self, step: int, batches: int, logs: dict) -> None:
        pass
