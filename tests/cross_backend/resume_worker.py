"""One side of the cross-backend resume test, in a process of its own (the backend is fixed per process).

`python resume_worker.py MODEL_DIR STEPS [STATE_OUT]`, with `KERAS_BACKEND` set: when the run has a
checkpoint, restores it into a fresh SAGAN on this backend and writes every restored variable and the
step to STATE_OUT (`.npz`, keyed like the state file); then trains the run on to STEPS with `train()`
(STEPS `-`: restores only).
"""

import sys

import numpy as np

from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.names import state_variables
from keras_sagan.training import builders, loop
from keras_sagan.training.config import TrainConfig


def main(model_dir, steps, state_out=None):
    config = TrainConfig(
        dataset="demo", image_size=32, conv_dim=8, z_dim=16, batch_size=4, steps=int(steps.strip("-") or 1),
        ema_decay=0.9,
        checkpoint_every=1, keep_checkpoints=2, sample_every=1000, log_every=1, export_dir="", model_dir=model_dir,
    )  # fmt: skip
    if state_out:
        gan = builders.build_gan(config, builders.make_strategy("default"))
        opened, _ = reading.open_newest(config.run_directory, use=lambda found: reading.restore_gan(gan, found))
        arrays = {"path": np.array(opened.path)}
        for name, variables in state_variables(gan).items():
            for index, variable in enumerate(variables):
                arrays[f"{name}/{index:04d}"] = np.asarray(variable)
        np.savez(state_out, **arrays)
    if steps == "-":
        return
    result = loop.train(config)
    print(f"initial_step={result.initial_step} step={result.step}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
