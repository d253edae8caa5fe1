"""What a resumed run does with settings that differ from the ones its checkpoint was trained with.

`train()` compares the new `TrainConfig` with the one the restored checkpoint was saved with (the
record inside it, `keras_sagan.checkpoint.state_file`, so a broken or missing `config.json` cannot
switch these rules off; for an older checkpoint without a record, `config.json`, which must then be
readable) and with the restored optimizers, option by option:

- `g_lr`, `d_lr`: applied. The restore brings back the checkpoint's rates; the configured ones
  are set on the optimizers after it (lowering a rate is the usual fix for a run going wrong).
- `d_steps`: applied (it is not in the checkpoint; more or fewer D updates per G update).
- `ema_decay`, a new value: applied (the EMA weights are kept; only their decay changes).
- `ema_decay` turning EMA on or off: refused. Off would drop the EMA weights (what is sampled
  and exported); on would start them from nothing.
- `loss`: refused. D's logits and both Adam states were trained for the other objective.

Each applied change is told in one line; a refusal is one `UsageError` line. `config.json` is
then rewritten with what actually runs.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keras_sagan.checkpoint.names import CHECKPOINT_EMA_GENERATOR
from keras_sagan.checkpoint.reading import OpenedCheckpoint
from keras_sagan.errors import UsageError
from keras_sagan.run_directory import RunDirectory

_NEW_DIR = "use another model_dir, or the setting the checkpoint was trained with"


def previous_settings(run: RunDirectory, checkpoint: OpenedCheckpoint) -> dict:
    """The train settings `checkpoint` was saved with: its record's, else (an older file) `config.json`'s.

    An older checkpoint whose run has no readable `config.json` is refused in one line: nothing
    would tell what it was trained with.
    """
    if checkpoint.record is not None:
        return dict(checkpoint.record.get("train") or {})
    try:
        train = run.read_config().get("train")
        if not isinstance(train, dict):
            raise UsageError(f'{run.config_path} has no "train" section')
    except UsageError as err:
        raise UsageError(
            f"cannot resume from {checkpoint.path}: it predates the settings record in checkpoints, and {err}; "
            f"restore {run.config_path} or {_NEW_DIR}"
        ) from None
    return dict(train)


def refuse_ema_start(config, checkpoint: OpenedCheckpoint) -> None:
    """Before the restore: refuses turning EMA on over a checkpoint without EMA weights (one line)."""
    if config.ema_decay is not None and CHECKPOINT_EMA_GENERATOR not in checkpoint.children:
        raise UsageError(
            f"`ema_decay` cannot turn EMA on on resume: {checkpoint.path} holds no EMA generator weights; "
            f"received: ema_decay={config.ema_decay!r}; {_NEW_DIR}"
        )


def refuse_changes(config, previous: dict, checkpoint: OpenedCheckpoint) -> None:
    """After the restore (the networks fit): refuses a changed loss, or EMA turned off (one line)."""
    old_loss = previous.get("loss")
    if old_loss is not None and old_loss != config.loss:
        raise UsageError(
            f"`loss` cannot change on resume: {checkpoint.path} was trained with loss={old_loss!r}; "
            f"received: loss={config.loss!r}; {_NEW_DIR}"
        )
    if config.ema_decay is None and CHECKPOINT_EMA_GENERATOR in checkpoint.children:
        old = f" (ema_decay={previous['ema_decay']!r})" if previous.get("ema_decay") is not None else ""
        raise UsageError(
            f"`ema_decay` cannot turn EMA off on resume: {checkpoint.path} holds EMA generator weights{old}; "
            f"received: ema_decay=None; {_NEW_DIR}"
        )


def apply_changes(config, previous: dict, gan, print_fn: Callable[[str], None]) -> None:
    """Sets the configured learning rates on the restored optimizers and tells each applied change in one line."""
    for name, optimizer in (("g_lr", gan.g_optimizer), ("d_lr", gan.d_optimizer)):
        restored = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        wanted = getattr(config, name)
        optimizer.learning_rate = wanted
        # float32 storage: compare at its precision.
        if abs(restored - wanted) > 1e-6 * max(abs(wanted), abs(restored)):
            print_fn(f"resuming with {name}={wanted:g} (the checkpoint's was {restored:g})")
    for name in ("d_steps", "ema_decay"):
        old = previous.get(name)
        if name in previous and old is not None and old != getattr(config, name):
            print_fn(f"resuming with {name}={getattr(config, name)!r} (the previous run's was {old!r})")
