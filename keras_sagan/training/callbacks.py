"""The control callbacks of a SAGAN run: progress lines, checkpoints, a clean stop on Ctrl-C.

Every callback numbers steps with the train step (`current_step`, see `keras_sagan.training.steps`),
so the count continues across resumed runs. The summaries and sample grids (`TensorBoardLogger`,
`SampleGridWriter`) live in `keras_sagan.training.tensorboard`.

Example:

```python
from keras_sagan.training.tensorboard import SampleGridWriter, TensorBoardLogger

gan.fit(
    dataset,
    steps_per_epoch=1000,
    callbacks=[
        ProgressLogger(total_steps=1000, global_batch_size=64, every=50),
        TensorBoardLogger("runs/sagan/logs", global_batch_size=64),
        SampleGridWriter("runs/sagan/samples", every=500),
        CheckpointSaver(manager, every=500),
        InterruptHandler(),
    ],
)
```
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence

import keras

from keras_sagan.checkpoint.names import nonfinite_variables
from keras_sagan.errors import UsageError, os_error_line
from keras_sagan.training.guard import training_variables
from keras_sagan.training.steps import IntervalMeans, StepCallback, Throughput, current_step

__all__ = ["CheckpointSaveError", "CheckpointSaver", "InterruptHandler", "ProgressLogger"]


class ProgressLogger(StepCallback):
    """Prints one line every `every` steps: step/total, d_loss, g_loss and images per second.

    The losses are means over the interval; images per second is `global_batch_size` times the
    batches of the interval over its wall time (the first interval includes graph tracing).

    Args:
        total_steps: int. The run's final step, shown after the slash.
        global_batch_size: int. Images per step over all replicas.
        every: int. Steps between lines. Defaults to `50`.
        print_fn: callable taking one string. Defaults to `print` (flushed).
    """

    def __init__(self, total_steps: int, global_batch_size: int, every: int = 50, print_fn: Callable | None = None):
        super().__init__()
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self.every = every
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self.means = IntervalMeans()
        self.throughput = Throughput(global_batch_size)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.means.reset()
        self.throughput.reset()

    def on_step(self, step, batches, logs):
        if step % self.every and step != self.total_steps:
            return
        means = self.means.update(batches, logs)
        rate = self.throughput.update(batches)
        parts = [f"step {step}/{self.total_steps}"]
        parts += [f"{key} {means[key]:.4f}" for key in ("d_loss", "g_loss") if key in means]
        parts.append(f"{rate:.1f} images/s")
        line = "  ".join(parts)
        self.print_fn(line)


class CheckpointSaver(StepCallback):
    """Saves through `manager` every `every` steps and at the end of training.

    Checkpoints are numbered by step (`ckpt-<step>.state.npz`, `keras_sagan.checkpoint`). Each is
    written to a temporary and renamed into place, so a process killed mid-save still resumes from
    the previous checkpoint. The end-of-training save also runs when training stops early
    (`model.stop_training`, as `InterruptHandler` sets it).

    Never a bad checkpoint: nothing is saved once `guard` (a `DivergenceGuard`) has tripped, nor
    when any weight or optimizer variable is NaN or infinite (`skipped` lists those steps), so no
    good checkpoint is rotated out by a bad one. A save that fails for lack of space (or any
    other write error) raises a one-line `CheckpointSaveError` naming the directory; the previous
    checkpoint stays.

    Under `MultiWorkerMirroredStrategy` every worker saves at the same steps (reading a
    sync-on-read variable is a collective op); only the chief's manager writes the file.

    Args:
        manager: `keras_sagan.checkpoint.manager.CheckpointManager`.
        every: int. Steps between checkpoints. Defaults to `500`.
        guard: `DivergenceGuard` or None. No save after it trips. Defaults to `None`.
    """

    def __init__(self, manager, every: int = 500, guard=None):
        super().__init__()
        self.manager = manager
        self.every = every
        self.guard = guard
        self.saved = []
        self.skipped = []

    def on_step(self, step, batches, logs):
        if step % self.every == 0:
            self.save(step)

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        if not self.saved or self.saved[-1][0] != step:
            self.save(step)

    def save(self, step: int) -> str | None:
        """Saves now, numbered `step`; returns the checkpoint's path (None: not saved, see the class doc)."""
        diverged = self.guard is not None and self.guard.diverged is not None
        if diverged or (self.model is not None and nonfinite_variables(training_variables(self.model))):
            self.skipped.append(step)
            return None
        try:
            path = self.manager.save(checkpoint_number=step)
        except OSError as err:
            raise CheckpointSaveError(
                f"cannot save the checkpoint of step {step} in {self.manager.directory}: "
                f"{os_error_line(err)}; the previous checkpoint "
                f"({self.manager.latest_checkpoint or 'none'}) is kept; free space there and rerun to resume"
            ) from None
        self.saved.append((step, path))
        return path


class CheckpointSaveError(UsageError):
    """A checkpoint could not be written (a full disk, say); one line naming the directory."""


class InterruptHandler(keras.callbacks.Callback):
    """Turns SIGINT (Ctrl-C) and SIGTERM during `fit()` into a clean stop after the current step.

    The first signal sets `interrupted` and nothing else (it may land inside a JAX step, where the
    model's state must not be touched); the end of the running step sets `model.stop_training`
    (with `agree`, the next agreement sets it, on every worker at the same step); `fit()` then
    ends, and `CheckpointSaver.on_train_end` saves. A second signal raises `KeyboardInterrupt`
    at once. The previous handlers are back after training. Handlers can
    only be installed from the main thread; elsewhere this callback does nothing.

    With several workers, a signal reaches them at different steps, or reaches only one. `agree`
    is then called by every worker after every step with its own "stop" flag and returns whether
    any worker wants to stop (`distributed.make_stop_agreement`), so all stop after the same step
    and save together; a worker stopped by another reports `interrupted = "peer"`.

    Args:
        signals: the signals to catch. Defaults to SIGINT and SIGTERM.
        print_fn: callable taking one string, told when a signal arrives. Defaults to printing
            to stdout.
        agree: callable `(bool) -> bool` or None. The all-worker "any stops?" decision; `None`
            (one worker) uses the local flag.
    """

    def __init__(
        self,
        signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
        print_fn: Callable | None = None,
        agree: Callable[[bool], bool] | None = None,
    ):
        super().__init__()
        self.signals = tuple(signals)
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self.agree = agree
        self.interrupted = None
        self._unsaid = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.interrupted is not None:
            raise KeyboardInterrupt
        # Only the flag: this runs wherever Python is when the signal lands, also inside fit()'s call
        # of a JAX step after it consumed the previous state, where `self.model` (which syncs the
        # model's state on JAX) would attach those deleted buffers to the variables.
        # `on_train_batch_end` stops fit() after the running step.
        self.interrupted = signal.Signals(signum).name
        message = f"{self.interrupted} received: saving a checkpoint after this step (send it again to abort at once)"
        try:
            self.print_fn(message)
        except RuntimeError:  # It landed inside a print to the same stream ("reentrant call"): say it after the step.
            self._unsaid = message

    def on_train_begin(self, logs=None):
        self.interrupted = None
        self._unsaid = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        if self._unsaid is not None:
            message, self._unsaid = self._unsaid, None
            self.print_fn(message)
        stop = self.interrupted is not None
        # With several workers only the agreement stops training, so all stop after the same step.
        if self.agree is not None and self.agree(stop) and not stop:
            self.interrupted = "peer"
            self.print_fn("another worker was interrupted: saving a checkpoint after this step")
            stop = True
        if stop:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
