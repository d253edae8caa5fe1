"""keras_sagan's side of the quality benchmark: trains through the public API and scores at intervals.

Run by `run.py` in its own process (so the backend and precision are this process's own):

    python benchmarks/quality/keras_side.py --work DIR --seed 0 --steps 1000 --eval_every 250 ...

It trains `build_sagan(preset, image_size, conv_dim, channels=1)` with `compile(ema_decay=...)` and
`fit()` on the prepared Fashion-MNIST array (`DIR/train_<size>.npy`, uint8, the same images the
reference side reads), hinge loss and the TTUR defaults. At every `eval_every` steps it samples the
protocol's noise (`DIR/z.npy`) from the live and the EMA generator under each BatchNorm sampling
mode (two modes along the way, all six at the last step) and writes them as uint8
`DIR/keras_<tag>_seed<seed>_step<step>_<generator>_<sampling>.npy`, with the training time so far in
a `.json` beside it; `run.py` scores them. Sampling is not counted in the training time.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--conv_dim", type=int, default=32)
    parser.add_argument("--preset", default="celeba64")
    parser.add_argument("--ema_decay", type=float, default=0.999)
    parser.add_argument("--mixed_precision", default="float32")
    parser.add_argument("--final_modes", default="all", help="'all': every sampling mode at the last step")
    parser.add_argument("--tag", default="float32")
    args = parser.parse_args(argv)

    import keras

    import keras_sagan
    from keras_sagan.images import to_uint8  # the package's one [-1, 1] -> uint8 mapping
    from keras_sagan.metrics import certificate

    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision != "float32":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    train = np.load(os.path.join(args.work, f"train_{args.image_size}.npy"))
    z = np.load(os.path.join(args.work, "z.npy"))

    gan = keras_sagan.build_sagan(
        args.preset, seed=args.seed, image_size=args.image_size, conv_dim=args.conv_dim, channels=1
    )
    gan.compile(ema_decay=args.ema_decay)
    start = time.time()

    def evaluate(step, final):
        modes = [("ema", "moving"), ("live", "batch")]
        if final and args.final_modes == "all":
            modes = [(g, s) for g in ("live", "ema") for s in certificate.SAMPLING]
        for which, sampling in modes:
            generator = gan.ema_generator if which == "ema" else gan.generator
            sample = certificate.sampler(generator, sampling, args.batch_size, args.seed)
            images = np.concatenate(
                [keras.ops.convert_to_numpy(to_uint8(sample(z[i : i + 100]))) for i in range(0, len(z), 100)]
            )
            name = os.path.join(args.work, f"keras_{args.tag}_seed{args.seed}_step{step}_{which}_{sampling}")
            np.save(name + ".npy", images)
            with open(name + ".json", "w") as f:
                json.dump({"train_seconds": round(train_seconds[0], 1)}, f)
        print(f"keras_sagan {args.tag} seed {args.seed} step {step} train_seconds {train_seconds[0]:.1f}", flush=True)

    train_seconds = [0.0]

    class Evaluate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = gan.step
            if step % args.eval_every == 0 or step == args.steps:
                train_seconds[0] = time.time() - start - eval_seconds[0]
                begin = time.time()
                evaluate(step, step == args.steps)
                eval_seconds[0] += time.time() - begin

    eval_seconds = [0.0]
    rng = np.random.default_rng(args.seed)
    steps_per_epoch = len(train) // args.batch_size
    done = 0
    while done < args.steps:
        order = rng.permutation(len(train))[: steps_per_epoch * args.batch_size]
        epoch_steps = min(steps_per_epoch, args.steps - done)
        images = train[order[: epoch_steps * args.batch_size]].astype(np.float32) / 127.5 - 1.0
        gan.fit(images, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[Evaluate()])
        done += epoch_steps
    return 0


if __name__ == "__main__":
    sys.exit(main())
