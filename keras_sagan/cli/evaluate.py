"""`keras-sagan evaluate`: FID, IS, KID, precision/recall/density/coverage of any model, as one JSON line on stdout.

    keras-sagan evaluate --model saved_models/celeba64_demo --data demo --num_samples 5000 --stats_out real.npz
    keras-sagan evaluate --model runs/celeba64_demo --stats_in real.npz --num_samples 5000 > fid.json

The work is `keras_sagan.metrics` (`make_extractor`, `real_statistics`, `StatisticsFile`,
`evaluate_generator`) on a generator from `keras_sagan.export.loading`. Progress and
warnings go to stderr; user errors are `UsageError`s (one line, exit status 2).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys

from keras_sagan.errors import UsageError, bad_value

EVAL_DATASETS = ("demo", "celeba", "folder", "fashion_mnist", "mnist")
"""`--data` choices: the names `keras_sagan.data.DataSpec` takes."""

INCEPTION_CHOICES = ("fid", "fashion_mnist")
"""`--inception` choices (`keras_sagan.metrics.networks.CHOICES`; spelled here so `--help` loads no Keras)."""

FLAG_NAMES = {"name": "--data", "data_dir": "--data_dir", "image_folder": "--image_folder"}
"""How `DataSpec`'s errors spell its arguments here."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="FID, Inception Score and KID of a generator, as JSON on stdout.",
        description="Generates --num_samples images and prints FID, IS and KID (Inception features) as one JSON "
        "line on stdout; progress goes to stderr. Real statistics come from --data or --stats_in.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="SavedModel version dir, base dir (latest), run directory, .keras file, or a preset (registered name, "
        "folder, hf://, kaggle://).",
    )
    real = parser.add_mutually_exclusive_group(required=True)
    real.add_argument(
        "--data",
        choices=EVAL_DATASETS,
        default=None,
        help="Real images, at the generator's image size: 'demo' (100 LFW faces), 'celeba' (TFDS, see --data_dir) "
        "or 'folder' (--image_folder). Default %(default)s: give --data or --stats_in.",
    )
    real.add_argument(
        "--stats_in",
        default=None,
        help="A statistics file (.npz) written by --stats_out or by training, or TTUR/pytorch-fid `mu`/`sigma`, "
        "instead of --data. Default %(default)s.",
    )
    parser.add_argument(
        "--data_dir",
        default=None,
        help="TFDS data directory holding celeb_a (--data celeba), or the folder of the IDX files (--data "
        "fashion_mnist|mnist). Default %(default)s.",
    )
    parser.add_argument(
        "--image_folder", default=None, help="Folder of real images (--data folder). Default %(default)s."
    )
    parser.add_argument(
        "--num_samples",
        type=int,
        default=50_000,
        help="Images generated, and at most this many real images. Default %(default)s.",
    )
    parser.add_argument(
        "--batch_size", type=int, default=100, help="Images per generator/Inception call. Default %(default)s."
    )
    parser.add_argument(
        "--inception",
        choices=INCEPTION_CHOICES,
        default="fid",
        help="Feature network: 'fid', the 2015 Inception graph behind published FIDs and Inception Scores "
        "(pytorch-fid's weights, 1008 classes); 'fashion_mnist', the shipped Fashion-MNIST classifier (grey data; "
        "numbers comparable only with the same network's). Default %(default)s.",
    )
    parser.add_argument(
        "--inception_weights",
        default=None,
        help="Weights of --inception: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (fid) or a .weights.h5 "
        "file (fashion_mnist). Default %(default)s: for fid the Keras cache (~/.keras/models or $KERAS_HOME/models), "
        "downloaded there when missing; for fashion_mnist the file shipped in the package. 'random': a random "
        "network, for smoke tests only.",
    )
    parser.add_argument(
        "--inception_resize",
        choices=("bilinear", "clean"),
        default="bilinear",
        help="How --inception fid brings images to 299x299: 'bilinear' (pytorch-fid's F.interpolate, no "
        "antialiasing: pytorch-fid's and TTUR-style numbers) or 'clean' (clean-fid's PIL bicubic on uint8: "
        "clean-fid's numbers). Default %(default)s.",
    )
    parser.add_argument(
        "--prdc_k",
        type=int,
        default=5,
        help="Nearest neighbour of precision, recall, density and coverage (below --num_samples). Default %(default)s.",
    )
    parser.add_argument(
        "--stats_out",
        default=None,
        help="Save the real statistics computed from --data to this file (as given, no suffix added). "
        "Default %(default)s.",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed of the latents, labels and real-image order. Default %(default)s."
    )
    parser.set_defaults(run=run)


def _data_spec(args):
    """The `DataSpec` of `--data` (None with `--stats_in`), checked before anything is loaded."""
    from keras_sagan.data import DataSpec

    for name, minimum in (("num_samples", 2), ("batch_size", 1), ("prdc_k", 1)):
        value = getattr(args, name)
        if value < minimum:
            raise UsageError(bad_value(f"--{name}", value, f"an int >= {minimum}"))
    if args.prdc_k >= args.num_samples:
        raise UsageError(bad_value("--prdc_k", args.prdc_k, f"below --num_samples ({args.num_samples})"))
    if args.stats_in:
        if args.stats_out:
            raise UsageError(
                "`--stats_out` saves statistics computed from --data; it does not apply with --stats_in; "
                f"received: --stats_in={args.stats_in!r}, --stats_out={args.stats_out!r}"
            )
        for name in ("data_dir", "image_folder"):
            if getattr(args, name) is not None:
                raise UsageError(
                    f"`--{name}` applies only with --data; received: --stats_in={args.stats_in!r}, "
                    f"--{name}={getattr(args, name)!r}"
                )
        return None
    return DataSpec.from_arguments(args.data, args.data_dir, args.image_folder, names=FLAG_NAMES)


def _json_value(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def run(args) -> None:
    from keras_sagan.export.loading import load_generator
    from keras_sagan.metrics import (
        RANDOM_WEIGHTS,
        StatisticsFile,
        evaluate_generator,
        make_extractor,
        real_statistics,
    )

    # Everything that can fail on bad input happens before the first line on stderr.
    spec = _data_spec(args)
    generator = load_generator(args.model)
    image_size = int(generator.image_size)
    with contextlib.redirect_stdout(sys.stderr):  # get_file's "Downloading data from ..." and its progress bar.
        extractor = make_extractor(args.inception_weights, args.inception, args.inception_resize)
    notes = []
    if args.inception_weights == RANDOM_WEIGHTS:
        notes.append(
            f"--inception_weights random: a randomly initialised {args.inception} network; the numbers are "
            "meaningless (smoke tests only)"
        )
    if spec is None:
        real = StatisticsFile.load(args.stats_in, extractor, image_size, what="--stats_in")
        notes += real.notes

    # Progress bars (Keras prints them on stdout) and messages go to stderr; stdout is the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        for note in notes:
            print(f"warning: {note}")
        if spec is not None:
            real = real_statistics(
                spec,
                extractor,
                image_size=image_size,
                num_samples=args.num_samples,
                batch_size=args.batch_size,
                seed=args.seed,
                progress=f"real images ({args.data}, {image_size}x{image_size}):",
            )
            for note in real.notes:  # E.g. "The dataset ended after 100 images".
                print(f"warning: {note}")
            if args.stats_out:
                real.save(args.stats_out)
                print(f"real statistics saved to {os.fspath(args.stats_out)}")
        print("generated images:")
        results = evaluate_generator(
            generator,
            args.num_samples,
            args.batch_size,
            extractor,
            real_statistics=real,
            seed=args.seed,
            progress=True,
            prdc_k=args.prdc_k,
        )
    results["num_real_samples"] = real.count
    results["model"] = generator.description
    results["inception"] = args.inception
    results["inception_resize"] = args.inception_resize
    results["inception_weights"] = args.inception_weights or "published (Keras cache)"
    print(json.dumps({key: _json_value(value) for key, value in results.items()}, sort_keys=True))
