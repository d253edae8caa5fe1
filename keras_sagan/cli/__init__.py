"""The `keras-sagan` command line (and `python -m keras_sagan`): dispatch to one subcommand.

    keras-sagan train --steps=50                 # the example's flags (absl); `keras-sagan train --help`
    keras-sagan export --checkpoint RUN_DIR --out saved_models/NAME
    keras-sagan sample --model MODEL --num 64 --out grid.png
    keras-sagan info --model MODEL
    keras-sagan evaluate --model MODEL --data demo --num_samples 5000
    keras-sagan export --checkpoint RUN_DIR --format onnx --out g.onnx      # or --format litert --out g.tflite
    keras-sagan certify --model fashion_mnist32             # recompute a model's quality certificate
    keras-sagan import-reference --generator 100000_G.pth --discriminator 100000_D.pth --out runs/ref
    keras-sagan export --checkpoint RUN_DIR --format preset --out presets/NAME
    keras-sagan upload-preset presets/NAME hf://OWNER/MODEL                  # or kaggle://OWNER/MODEL/keras/VARIANT
    keras-sagan sample --model MODEL --interpolate 0 1 --frames 16 --out walk.gif
    keras-sagan attention --model MODEL --seed 0 --query 12,20 --out map.png
    keras-sagan explore --model MODEL            # http://127.0.0.1:8000/

Each subcommand lives in its own module of this package and exposes `register(subparsers)`,
which adds its `argparse` parser and sets `run=<function(args)>` on it. `train` is the
exception: its flags are absl flags generated from `TrainConfig` (shared with
`examples/train_celeba.py`), so `main` hands the words after `train` to
`keras_sagan.cli.train.main` untouched. Nothing here imports TensorFlow at module level, so `main`
imports it first, through `keras_sagan.quiet.import_quietly` (TensorFlow's start-up notices dropped).
Failures print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from keras_sagan import quiet
from keras_sagan.errors import EXIT_USAGE, UsageError, one_line

EXIT_ERROR = EXIT_USAGE
COMMANDS = (
    "train",
    "sample",
    "export",
    "info",
    "evaluate",
    "certify",
    "import-reference",
    "upload-preset",
    "explore",
    "attention",
)
_ARGPARSE_COMMANDS = COMMANDS[1:]
PROG = "keras-sagan"


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand except `train` (which is listed for `--help`)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="keras_sagan: train, sample, export, inspect, evaluate and publish SAGAN generators.",
        epilog=f"`{PROG} train --help` lists the training flags.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    commands.add_parser("train", help="Train a SAGAN (absl flags from TrainConfig; see `train --help`).")
    for name in _ARGPARSE_COMMANDS:
        importlib.import_module(f"keras_sagan.cli.{name.replace('-', '_')}").register(commands)
    return parser


def main(argv=None) -> int:
    """Runs the command line; returns the exit status (0, 2 on a bad input; `train` as documented there)."""
    quiet.import_quietly()  # Before anything imports Keras: TensorFlow's start-up notices stay off the screen.
    argv = list(sys.argv[1:] if argv is None else argv)
    from keras_sagan import backend

    try:
        backend.check_supported()  # An unsupported KERAS_BACKEND: one line, before any model code.
    except UsageError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    if argv and argv[0] == "train":
        from keras_sagan.cli import train

        return train.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        import tensorflow as tf

        expected = (UsageError, OSError, ValueError, TypeError, tf.errors.OpError)
        try:
            status = args.run(args)
        except expected as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            return EXIT_USAGE
    except KeyboardInterrupt:  # One line, not a traceback from inside TensorFlow's import.
        print(f"interrupted: {args.command} stopped; nothing was written", file=sys.stderr)
        return 128 + signal.SIGINT.value
    return status or 0  # a subcommand may return its own status (certify: 1 when a certificate fails)
