"""The divergence guard: a run whose losses turn non-finite stops at once, and no NaN is ever checkpointed.

`DivergenceGuard` is a `keras.callbacks.Callback` for any `gan.fit()`. After every batch it
checks every loss and metric in the logs; the first NaN or infinity sets `diverged` and
`model.stop_training`, so `fit()` ends after that batch. `CheckpointSaver` (given the guard)
then saves nothing more, and it never saves weights that are not all finite
(`nonfinite_variables`), so no good checkpoint is rotated out by a bad one.

`train()` turns it into `TrainingDiverged` (one line naming the step and the last good
checkpoint; `keras-sagan train` exits with status 3), or, with `divergence_rollbacks=N`, into up
to N rollbacks: the last good checkpoint is restored and both learning rates are multiplied by
`ROLLBACK_LR_FACTOR` (`rollback`).

Everything here reads values through `keras.ops` and NumPy, so it works on every backend.

Example:

```python
guard = DivergenceGuard()
gan.fit(dataset, steps_per_epoch=1000, callbacks=[guard])
if guard.diverged:
    print(guard.diverged.describe())
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import keras
import numpy as np

from keras_sagan.training.steps import current_step

__all__ = ["DivergenceGuard", "Divergence", "TrainingDiverged", "rollback", "training_variables"]

ROLLBACK_LR_FACTOR = 0.1
"""Each rollback multiplies both learning rates by this."""


@dataclasses.dataclass
class Divergence:
    """Where a run diverged: `step`, and `values` `{log name: the non-finite value}`."""

    step: int
    values: dict

    def describe(self) -> str:
        found = ", ".join(f"{name}={value}" for name, value in sorted(self.values.items()))
        return f"non-finite {found} at step {self.step}"


class TrainingDiverged(RuntimeError):
    """A loss or metric turned non-finite; training stopped and nothing from then on was saved.

    Attributes:
        step: int. The step whose logs were non-finite.
        checkpoint: str or None. The last good checkpoint (None: none was saved).
    """

    def __init__(self, divergence: Divergence, checkpoint: str | None, rollbacks: int = 0):
        good = f"the last good checkpoint is {checkpoint}" if checkpoint else "no good checkpoint was saved"
        tried = f" after {rollbacks} rollback(s)" if rollbacks else ""
        super().__init__(f"training diverged{tried}: {divergence.describe()}; {good} (nothing later was saved)")
        self.step = divergence.step
        self.checkpoint = checkpoint


def _finite(value) -> bool:
    try:
        array = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError):
        return True  # Not a number (a string log entry): nothing to check.
    return bool(np.all(np.isfinite(array)))


def _scalar(value):
    array = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
    return float(array) if array.size == 1 else "[non-finite values]"


def training_variables(model) -> list:
    """The variables a `SAGAN` checkpoint holds: the model's weights and both optimizers' variables."""
    variables = list(getattr(model, "weights", []))
    for name in ("g_optimizer", "d_optimizer"):
        optimizer = getattr(model, name, None)
        if optimizer is not None:
            variables += list(getattr(optimizer, "variables", []))
    # Once each: SAGAN also tracks d_optimizer's variables among its own weights.
    return list({id(variable): variable for variable in variables}.values())


class DivergenceGuard(keras.callbacks.Callback):
    """Stops `fit()` after the first batch whose logs hold a non-finite loss or metric.

    Args:
        keys: names of the logs to check, or None for every numeric log. Defaults to `None`.
        print_fn: callable taking one line, told when the guard trips; None prints it.
            `train()` passes a no-op and reports `TrainingDiverged` itself.

    Attributes:
        diverged: `Divergence` or None. Reset by each `fit()`.
    """

    def __init__(self, keys: Iterable[str] | None = None, print_fn: Callable[[str], None] | None = None):
        super().__init__()
        self.keys = None if keys is None else tuple(keys)
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self.diverged = None

    def on_train_begin(self, logs=None):
        self.diverged = None

    def on_train_batch_end(self, batch, logs=None):
        if self.diverged is not None:
            return
        logs = logs or {}
        keys = self.keys if self.keys is not None else sorted(logs)
        bad = {key: _scalar(logs[key]) for key in keys if key in logs and not _finite(logs[key])}
        if bad:
            self.diverged = Divergence(current_step(self.model), bad)
            self.model.stop_training = True
            self.print_fn(f"{self.diverged.describe()}: stopping; nothing from this step on is saved")


def rollback(model, restore: Callable[[str], None], checkpoint: str, factor: float = ROLLBACK_LR_FACTOR):
    """Restores `checkpoint` through `restore(path)` and lowers both learning rates by `factor`.

    The restore brings back the checkpoint's own learning rates; the lowered rates are those
    times `factor`. Returns the new `(g_lr, d_lr)`.
    """
    if not 0 < factor < 1:
        raise ValueError(f"`factor` must be in (0, 1); received: factor={factor!r}")
    optimizers = (model.g_optimizer, model.d_optimizer)
    lowered = [float(keras.ops.convert_to_numpy(optimizer.learning_rate)) * factor for optimizer in optimizers]
    restore(checkpoint)
    for optimizer, rate in zip(optimizers, lowered):
        optimizer.learning_rate = rate
    return lowered[0], lowered[1]
