"""Command line: `python -m keras_sagan {export,sample,info}`.

    python -m keras_sagan export --checkpoint runs/celeba64 --out saved_models/celeba64_demo [--version N]
    python -m keras_sagan sample --model saved_models/celeba64_demo --num 64 --seed 0 --out grid.png
    python -m keras_sagan info --model saved_models/celeba64_demo

`--model` is a SavedModel version directory, a base directory (its latest
version is used) or a checkpoint directory (see `keras_sagan.export`).
Failures print one line to stderr and exit with status 2.
"""

import argparse
import json
import math
import os
import re
import sys

EXIT_ERROR = 2


class CLIError(Exception):
    """A user-facing failure: reported as one line, exit status 2."""


# -- images ---------------------------------------------------------------


def image_grid(images, cols: int | None = None, padding: int = 2):
    """Tiles uint8 images `(N, H, W, C)` into one `(rows*H', cols*W', C)` array.

    `cols` defaults to `ceil(sqrt(N))`; cells are separated by `padding`
    black pixels.
    """
    import numpy as np

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] < 1:
        raise ValueError(f"images must have shape (N, H, W, C) with N >= 1; received {images.shape}.")
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, c), images.dtype)
    for i, image in enumerate(images):
        top = padding + (i // cols) * (h + padding)
        left = padding + (i % cols) * (w + padding)
        grid[top : top + h, left : left + w] = image
    return grid


def save_grid(images, path: str, cols: int | None = None) -> str:
    """Writes uint8 images `(N, H, W, 3)` as one PNG grid; returns `path`."""
    from PIL import Image

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    Image.fromarray(image_grid(images, cols)).save(path)
    return path


# -- locating a model -----------------------------------------------------


def _is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def resolve_model(path: str):
    """Returns `("saved_model", version_dir)` or `("checkpoint", directory)`."""
    from keras_sagan import export

    if not os.path.exists(path):
        raise CLIError(f"No such model path: {path}")
    if not os.path.isdir(path):
        raise CLIError(f"Model path is not a directory: {path}")
    if _is_saved_model(path):
        return "saved_model", path
    versions = [v for v in export.list_versions(path) if _is_saved_model(os.path.join(path, str(v)))]
    if versions:
        return "saved_model", os.path.join(path, str(versions[-1]))
    try:
        export.find_checkpoint(path)
    except export.ExportError as e:
        raise CLIError(
            f"{path} is neither a SavedModel (saved_model.pb), a base directory with numbered versions, "
            f"nor a usable checkpoint directory ({e})"
        ) from None
    return "checkpoint", path


def _read_signatures(version_dir):
    """`{name: (method, {input: (dtype, shape)}, {output: (dtype, shape)})}` from saved_model.pb."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
    except DecodeError as e:
        raise CLIError(f"Corrupt SavedModel at {version_dir}: cannot parse saved_model.pb ({e})") from None
    if not proto.meta_graphs:
        raise CLIError(f"Corrupt SavedModel at {version_dir}: no MetaGraph in saved_model.pb")

    def describe(tensors):
        out = {}
        for key, info in sorted(tensors.items()):
            dtype = tf.dtypes.as_dtype(info.dtype).name if info.dtype else "invalid"
            if info.tensor_shape.unknown_rank:
                shape = "unknown"
            else:
                shape = [None if d.size < 0 else d.size for d in info.tensor_shape.dim]
            out[key] = (dtype, shape)
        return out

    signatures = {}
    for name, sig in sorted(proto.meta_graphs[0].signature_def.items()):
        if name.startswith("__"):
            continue
        signatures[name] = (sig.method_name, describe(sig.inputs), describe(sig.outputs))
    return signatures


def _load_saved_model(version_dir):
    import tensorflow as tf

    _read_signatures(version_dir)  # Fails fast, in one line, on a corrupt saved_model.pb.
    try:
        return tf.saved_model.load(version_dir)
    except (tf.errors.OpError, OSError, ValueError, KeyError, AssertionError) as e:  # A damaged SavedModel.
        raise CLIError(f"Cannot load SavedModel at {version_dir}: {_one_line(e)}") from None


# -- commands -------------------------------------------------------------


def cmd_export(args):
    from keras_sagan import export

    path = export.export_generator(args.checkpoint, args.out, version=args.version)
    print(path)


def _parse_labels(labels, num):
    if not labels:
        return []
    values = [int(v) for v in ",".join(labels).replace(",", " ").split()]
    if len(values) == 1:
        return values * num
    if len(values) != num:
        raise CLIError(f"--labels needs 1 or --num ({num}) values; received {len(values)}")
    return values


def cmd_sample(args):
    import numpy as np
    import tensorflow as tf

    from keras_sagan import export

    if args.num < 1 or args.num > export.MAX_IMAGES:
        raise CLIError(f"--num must be in [1, {export.MAX_IMAGES}]; received {args.num}")
    kind, path = resolve_model(args.model)
    inputs = {
        "num_images": tf.constant(args.num, tf.int32),
        "seed": tf.constant(args.seed, tf.int64),
        "truncation": tf.constant(args.truncation, tf.float32),
    }
    labels = _parse_labels(args.labels, args.num)
    if kind == "saved_model":
        sample = _load_saved_model(path).signatures["sample"]
        conditional = "labels" in sample.structured_input_signature[1]
    else:
        generator, _ = export.load_generator_from_checkpoint(path)
        # The exported graph's own function, run in-process: same images.
        sample = export.serving_module(generator).sample
        conditional = generator.num_classes is not None
    if conditional:
        inputs["labels"] = tf.constant(labels, tf.int32, shape=[len(labels)])
    elif labels:
        raise CLIError(f"{args.model} is an unconditional model; --labels does not apply")
    outputs = sample(**inputs)
    save_grid(np.asarray(outputs["images_uint8"]), args.out, cols=args.cols)
    print(args.out)


def cmd_info(args):
    kind, path = resolve_model(args.model)
    from keras_sagan import export

    if kind == "checkpoint":
        prefix, config = export.find_checkpoint(path)
        ema = "ema_generator" in export.checkpoint_children(prefix)
        print(f"checkpoint: {prefix}")
        print(f"weights exported: {'ema_generator' if ema else 'generator'}")
        print(f"generator config: {json.dumps(config, sort_keys=True)}")
        return
    base = os.path.dirname(os.path.abspath(path))
    version = os.path.basename(os.path.abspath(path))
    print(f"saved_model: {os.path.abspath(path)}")
    print(f"version: {version if version.isdigit() else 'none (not in a numbered version directory)'}")
    versions = export.list_versions(base)
    if versions:
        print(f"versions in {base}: {versions}")
    marker = os.path.join(base, export.MARKER_FILENAME)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            print(f"generator config: {json.dumps(json.load(f).get('generator'), sort_keys=True)}")
    for name, (method, inputs, outputs) in _read_signatures(path).items():
        print(f"signature {name!r} (method {method}):")
        for key, (dtype, shape) in inputs.items():
            print(f"  input  {key}: {dtype} {shape}")
        for key, (dtype, shape) in outputs.items():
            print(f"  output {key}: {dtype} {shape}")


# -- entry point ----------------------------------------------------------


def _one_line(error):
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    match = re.search(r"assertion failed: \[([^\]]*)\]", text)
    if match:  # A tf.debugging assertion inside the graph: keep its message.
        text = match.group(1)
    return " ".join(text.split())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m keras_sagan", description="keras_sagan model tools.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("export", help="Export a checkpoint as a TF Serving SavedModel version.")
    p.add_argument("--checkpoint", required=True, help="Model dir (with config.json) or its checkpoints/ folder.")
    p.add_argument("--out", required=True, help="Base path, e.g. saved_models/NAME; writes NAME/<version>/.")
    p.add_argument("--version", type=int, default=None, help="Version number (default: next free).")
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("sample", help="Generate a PNG grid from a SavedModel or checkpoint.")
    p.add_argument("--model", required=True, help="SavedModel version dir, base dir (latest) or checkpoint dir.")
    p.add_argument("--num", type=int, default=64, help="Number of images. Default 64.")
    p.add_argument("--seed", type=int, default=0, help="Noise seed. Default 0.")
    p.add_argument(
        "--truncation",
        type=float,
        default=0.0,
        help="t > 0: z ~ N(0, 1) conditioned on |z| <= t; <= 0: plain N(0, 1). Default 0.",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        default=None,
        help="Class labels for a conditional model: one (used for every image) or --num values. "
        "Default: drawn from the seed.",
    )
    p.add_argument("--cols", type=int, default=None, help="Grid columns. Default ceil(sqrt(num)).")
    p.add_argument("--out", required=True, help="PNG file to write.")
    p.set_defaults(run=cmd_sample)

    p = commands.add_parser("info", help="Print a model's signatures, shapes, dtypes and version.")
    p.add_argument("--model", required=True, help="SavedModel version dir, base dir (latest) or checkpoint dir.")
    p.set_defaults(run=cmd_info)
    return parser


def main(argv=None) -> int:
    """Runs the command line; returns the exit status (0, or 2 on failure)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_sagan.export import ExportError

    expected = (CLIError, ExportError, OSError, ValueError, TypeError, tf.errors.OpError)
    try:
        args.run(args)
    except expected as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    return 0
