"""`keras-sagan sample`: a PNG grid of seeded images from any model `keras_sagan.export.loading` reads."""

from __future__ import annotations

import math
import os

from keras_sagan.errors import UsageError, bad_value

# The interpolation module imports no TensorFlow at module level, so the help text can quote its caps.
from keras_sagan.interpolation import MAX_FRAMES, MIN_FRAMES, MODES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="Generate a PNG grid from a SavedModel, run directory or .keras file."
    )
    parser.add_argument(
        "--model",
        required=True,
        help="SavedModel version dir, base dir (latest), run directory, .keras file, or a preset (registered name, "
        "folder, hf://, kaggle://).",
    )
    parser.add_argument("--num", type=int, default=64, help="Number of images. Default %(default)s.")
    parser.add_argument("--seed", type=int, default=0, help="Noise seed. Default %(default)s.")
    parser.add_argument(
        "--truncation",
        type=float,
        default=0.0,
        help="t > 0: z ~ N(0, 1) conditioned on |z| <= t; <= 0: plain N(0, 1). Default %(default)s.",
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        default=None,
        help="Class labels for a conditional model: one (used for every image) or --num values. "
        "Default: %(default)s (drawn from the seed).",
    )
    parser.add_argument("--cols", type=int, default=None, help="Grid columns. Default %(default)s (ceil(sqrt(num))).")
    parser.add_argument(
        "--interpolate",
        nargs=2,
        type=int,
        metavar=("SEED_A", "SEED_B"),
        default=None,
        help="Write a GIF walking from seed SEED_A's image to SEED_B's (each as `--seed S --num 1`) "
        "instead of a grid; --labels A B then walks between two classes.",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=16,
        help=f"Frames of --interpolate, in [{MIN_FRAMES}, {MAX_FRAMES}]. Default %(default)s.",
    )
    parser.add_argument(
        "--mode", choices=MODES, default="slerp", help="Path in z of --interpolate. Default %(default)s."
    )
    parser.add_argument("--out", required=True, help="PNG file to write (a .gif with --interpolate).")
    parser.set_defaults(run=run)


def parse_labels(labels, num: int) -> list[int]:
    """`--labels` values (spaces or commas) as `num` ints: one value is repeated."""
    if not labels:
        return []
    words = ",".join(labels).replace(",", " ").split()
    try:
        values = [int(v) for v in words]
    except ValueError:
        raise UsageError(bad_value("--labels", " ".join(labels), "integer class labels (spaces or commas)")) from None
    if len(values) == 1:
        return values * num
    if len(values) != num:
        raise UsageError(f"--labels needs 1 or --num ({num}) values; received {len(values)}")
    return values


def check_arguments(args) -> None:
    """One-line `UsageError`s for `--cols`, `--truncation` and `--out`, before the model loads."""
    if args.cols is not None and args.cols < 1:
        raise UsageError(bad_value("--cols", args.cols, "an int >= 1 (or unset: as square as possible)"))
    if not math.isfinite(args.truncation):
        raise UsageError(bad_value("--truncation", args.truncation, "a finite number (<= 0: no truncation)"))
    suffix = ".gif" if getattr(args, "interpolate", None) else ".png"
    if os.path.isdir(args.out) or not args.out.lower().endswith(suffix):
        raise UsageError(bad_value("--out", args.out, f"a {suffix} file path (not a directory)"))


def run(args) -> None:
    import numpy as np

    from keras_sagan import images
    from keras_sagan.export import saved_model
    from keras_sagan.export.loading import load_generator

    if args.interpolate:
        return run_interpolation(args)
    if args.num < 1 or args.num > saved_model.MAX_IMAGES:
        raise UsageError(f"--num must be in [1, {saved_model.MAX_IMAGES}]; received {args.num}")
    check_arguments(args)
    generator = load_generator(args.model)
    labels = parse_labels(args.labels, args.num)
    outputs = generator.sample(args.num, seed=args.seed, truncation=args.truncation, labels=labels)
    images.save_grid(np.asarray(outputs["images_uint8"]), args.out, cols=args.cols)
    print(args.out)


def run_interpolation(args) -> None:
    """`--interpolate SEED_A SEED_B`: `--frames` images from one seed's sample to the other's, as a GIF."""
    from keras_sagan import interpolation
    from keras_sagan.export.loading import load_generator

    interpolation.check_frames(args.frames)
    check_arguments(args)
    count = len(",".join(args.labels or []).replace(",", " ").split())
    if count > 2:
        raise UsageError(f"--labels with --interpolate takes 1 class or 2 (from, to); received {count} values")
    labels = parse_labels(args.labels, max(count, 1))
    label_a, label_b = (labels[0], labels[-1]) if labels else (None, None)
    generator = load_generator(args.model)
    frames = interpolation.walk(
        generator, args.interpolate[0], args.interpolate[1], args.frames, args.mode, args.truncation, label_a, label_b
    )
    interpolation.save_gif(frames, args.out)
    print(args.out)
