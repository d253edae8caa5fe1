"""Trains the domain feature network (`keras_sagan.metrics.domain`) on Fashion-MNIST, reproducibly.

    python benchmarks/quality/train_classifier.py [--epochs 12] [--out keras_sagan/metrics/weights/...]

Fixed seed and deterministic ops, so a rerun on the same machine kind gives the same file. The data
is `keras_sagan.data.mnist` (the train split, 28x28 padded to 32); the last 5,000 train images are
held out to pick the epoch, and the reported accuracy is on the 10,000 test images, which take no
part in training or selection. Prints the accuracy, the file and its SHA-256 as one JSON line.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_sagan.data.mnist import load_mnist_arrays, mnist_to_model
from keras_sagan.metrics import domain, networks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=None, help="folder of the IDX files; unset: see keras_sagan.data.mnist")
    parser.add_argument("--out", default=domain.WEIGHTS_FILE)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    images, labels = load_mnist_arrays("fashion_mnist", "train", args.data_dir)
    test_images, test_labels = load_mnist_arrays("fashion_mnist", "test", args.data_dir)
    x = mnist_to_model(images, domain.IMAGE_SIZE).numpy()
    x_test = mnist_to_model(test_images, domain.IMAGE_SIZE).numpy()
    y, y_test = labels.astype("int32"), test_labels.astype("int32")
    x_fit, y_fit, x_val, y_val = x[:-5000], y[:-5000], x[-5000:], y[-5000:]

    model = domain.build_classifier()
    logits_only = keras.Model(model.input, model.output[1])
    steps = args.epochs * (len(x_fit) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps)
    logits_only.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    best = os.path.join(os.path.dirname(os.path.abspath(args.out)), ".best.weights.h5")
    start = time.time()
    logits_only.fit(
        x_fit,
        y_fit,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_val, y_val),
        shuffle=True,
        verbose=2,
        callbacks=[
            keras.callbacks.ModelCheckpoint(best, monitor="val_accuracy", save_best_only=True, save_weights_only=True)
        ],
    )
    model.load_weights(best)  # the compiled model's file also holds Adam's slots; the uncompiled one saves weights only
    os.remove(best)
    model.save_weights(args.out)
    _, test_logits = model.predict(x_test, batch_size=500, verbose=0)
    accuracy = float(np.mean(np.argmax(test_logits, axis=1) == y_test))
    print(
        json.dumps(
            {
                "test_accuracy": accuracy,
                "weights": args.out,
                "sha256": networks.file_sha256(args.out),
                "epochs": args.epochs,
                "seed": args.seed,
                "seconds": round(time.time() - start, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
