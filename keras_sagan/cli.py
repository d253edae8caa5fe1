"""Command line: `python -m keras_sagan {export,sample,info,evaluate}`.

    python -m keras_sagan export --checkpoint runs/celeba64 --out saved_models/celeba64_demo [--version N]
    python -m keras_sagan sample --model saved_models/celeba64_demo --num 64 --seed 0 --out grid.png
    python -m keras_sagan info --model saved_models/celeba64_demo
    python -m keras_sagan evaluate --model saved_models/celeba64_demo --data demo --num_samples 5000

`--model` is a SavedModel version directory, a base directory (its latest
version is used) or a checkpoint directory (see `keras_sagan.export`).
Failures print one line to stderr and exit with status 2.
"""

import argparse
import contextlib
import json
import math
import os
import re
import sys
import warnings

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


# -- evaluate -------------------------------------------------------------

EVAL_DATASETS = ("demo", "celeba", "folder")
"""`--data` choices: the names of `keras_sagan.data.load_dataset`."""

MAX_KID_FEATURES = 10_000
"""Real and generated feature vectors kept for KID (and saved by `--stats_out`)."""

RANDOM_WEIGHTS = "random"
"""`--inception_weights random`: a randomly initialised InceptionV3, for smoke tests only."""


class _SignatureGenerator:
    """A SavedModel's `serving_default` signature behind `evaluate_generator`'s generator
    contract: `z_dim`, `num_classes`, `image_size` and `generator(z[, labels], training=False)`
    returning images in [-1, 1]."""

    def __init__(self, version_dir):
        from keras_sagan import export

        self._loaded = _load_saved_model(version_dir)  # Owns the variables the signature reads.
        self._signature = self._loaded.signatures["serving_default"]
        inputs = self._signature.structured_input_signature[1]
        self.z_dim = int(inputs["z"].shape[-1])
        self.num_classes = None
        if "labels" in inputs:
            # The SavedModel does not hold the class count; the export's marker file does.
            marker = os.path.join(os.path.dirname(os.path.abspath(version_dir)), export.MARKER_FILENAME)
            try:
                with open(marker, encoding="utf-8") as f:
                    self.num_classes = int(json.load(f)["generator"]["num_classes"])
            except (OSError, ValueError, KeyError, TypeError):
                raise CLIError(
                    f"{version_dir} is a conditional SavedModel and its number of classes is unknown: "
                    f"{marker} is missing or has no generator num_classes; evaluate the export's base "
                    "directory or the training checkpoint instead"
                ) from None
        self.image_size = self._signature.structured_outputs["images"].shape[1]
        if self.image_size is None:  # Not in the signature: generate one image to find out.
            import numpy as np

            labels = None if self.num_classes is None else np.zeros((1,), np.int32)
            self.image_size = int(self(np.zeros((1, self.z_dim), np.float32), labels).shape[1])

    def __call__(self, z, labels=None, training=False):
        if labels is None:
            return self._signature(z=z)["images"]
        return self._signature(z=z, labels=labels)["images"]


def _evaluation_generator(path):
    """`(generator, description)`: the SavedModel's signature or the checkpoint's Keras generator."""
    from keras_sagan import export

    kind, path = resolve_model(path)
    if kind == "saved_model":
        return _SignatureGenerator(path), f"saved_model {os.path.abspath(path)}"
    generator, used_ema = export.load_generator_from_checkpoint(path)
    return generator, f"checkpoint {export.find_checkpoint(path)[0]} ({'ema_generator' if used_ema else 'generator'})"


def _inception_extractor(weights):
    from keras_sagan.metrics import InceptionFeatureExtractor

    if weights == RANDOM_WEIGHTS:
        return InceptionFeatureExtractor(weights=None)
    try:
        return InceptionFeatureExtractor(weights=weights or "imagenet")
    except FileNotFoundError as e:
        raise CLIError(f"{_one_line(e)} On the command line: --inception_weights /path/to/the/file.h5") from None


def _load_stats(path, feature_dim, image_size):
    """`(mu, sigma, features or None, count or None, warnings)` from a `.npz` (ours, pytorch-fid's, TTUR's)."""
    import numpy as np

    try:
        with np.load(path) as data:
            if "mu" not in data.files or "sigma" not in data.files:
                raise CLIError(f"--stats_in {path} must hold `mu` and `sigma`; it holds {data.files}")
            mu = np.asarray(data["mu"], np.float64)
            sigma = np.asarray(data["sigma"], np.float64)
            features = np.asarray(data["features"], np.float32) if "features" in data.files else None
            count = int(data["count"]) if "count" in data.files else None
            saved_size = int(data["image_size"]) if "image_size" in data.files else None
    except (OSError, ValueError) as e:
        raise CLIError(f"Cannot read --stats_in {path}: {_one_line(e)}") from None
    if mu.ndim != 1 or mu.shape[0] != feature_dim or sigma.shape != (feature_dim, feature_dim):
        raise CLIError(
            f"--stats_in {path} holds statistics of shape mu {mu.shape}, sigma {sigma.shape}; "
            f"the Inception features are {feature_dim}-d"
        )
    if features is not None and (features.ndim != 2 or features.shape[1] != feature_dim):
        raise CLIError(f"--stats_in {path}: `features` must be (n, {feature_dim}); received {features.shape}")
    notes = []
    if saved_size is not None and saved_size != image_size:
        notes.append(
            f"--stats_in {path} was computed from {saved_size}x{saved_size} images; "
            f"the generator makes {image_size}x{image_size}"
        )
    if features is None:
        notes.append(f"--stats_in {path} holds no `features`: KID is null")
    return mu, sigma, features, count, notes


def _real_dataset(args, image_size):
    """One pass (no repeat) over `--data` at the generator's size, shuffled with `--seed`."""
    from keras_sagan.data import load_dataset

    kwargs = {}
    if args.data == "celeba":
        kwargs = {"data_dir": args.data_dir, "download": False}
    elif args.data == "folder":
        kwargs = {"path": args.image_folder}
    return load_dataset(
        args.data,
        image_size=image_size,
        global_batch_size=args.batch_size,
        seed=args.seed,
        repeat=False,
        **kwargs,
    )


def _compute_stats(dataset, num_samples, extractor):
    """`(statistics, features)` of up to `num_samples` real images; warnings become `warning:` lines."""
    from keras_sagan.metrics import compute_dataset_statistics

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats, features = compute_dataset_statistics(
            dataset,
            extractor,
            num_samples=num_samples,
            keep_features=min(num_samples, MAX_KID_FEATURES),
            progress=True,
        )
    for warning in caught:  # E.g. "The dataset ended after 100 images".
        print(f"warning: {_one_line(warning.message)}")
    return stats, features


def _save_stats(path, stats, features, data, image_size):
    """Writes `mu`, `sigma`, `count` (as `StreamingStatistics.save`), `features` (for KID) and provenance."""
    import numpy as np

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:  # A file object: NumPy adds no `.npz` suffix.
        np.savez(
            f,
            mu=stats.mean,
            sigma=stats.covariance,
            count=np.int64(stats.count),
            features=features,
            image_size=np.int64(image_size),
            data=np.str_(data),
        )


def _check_evaluate_args(args):
    if args.num_samples < 2:
        raise CLIError(f"--num_samples must be >= 2; received {args.num_samples}")
    if args.batch_size < 1:
        raise CLIError(f"--batch_size must be >= 1; received {args.batch_size}")
    if args.stats_in and args.stats_out:
        raise CLIError("--stats_out saves statistics computed from --data; it does not apply with --stats_in")
    if args.data_dir is not None and args.data != "celeba":
        raise CLIError(f"--data_dir applies to --data celeba; received --data {args.data}")
    if args.image_folder is not None and args.data != "folder":
        raise CLIError(f"--image_folder applies to --data folder; received --data {args.data}")
    if args.data == "folder" and not args.image_folder:
        raise CLIError("--data folder needs --image_folder (the folder of real images)")
    if args.stats_in and not os.path.isfile(args.stats_in):
        raise CLIError(f"No such --stats_in file: {args.stats_in}")


def _json_value(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def cmd_evaluate(args):
    from keras_sagan.metrics import evaluate_generator

    # Everything that can fail on bad input happens before the first line on stderr.
    _check_evaluate_args(args)
    generator, description = _evaluation_generator(args.model)
    image_size = int(generator.image_size)
    extractor = _inception_extractor(args.inception_weights)
    notes = []
    if args.inception_weights == RANDOM_WEIGHTS:
        notes.append(
            "--inception_weights random: a randomly initialised InceptionV3; the numbers are meaningless "
            "(smoke tests only)"
        )
    if args.stats_in:
        mu, sigma, features, num_real, stats_notes = _load_stats(args.stats_in, extractor.feature_dim, image_size)
        notes += stats_notes
    else:
        dataset = _real_dataset(args, image_size)

    # Progress bars (Keras prints them on stdout) and messages go to stderr; stdout is the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        for note in notes:
            print(f"warning: {note}")
        if not args.stats_in:
            print(f"real images ({args.data}, {image_size}x{image_size}):")
            stats, features = _compute_stats(dataset, args.num_samples, extractor)
            mu, sigma, num_real = stats.mean, stats.covariance, stats.count
            if args.stats_out:
                _save_stats(args.stats_out, stats, features, args.data, image_size)
                print(f"real statistics saved to {args.stats_out}")
        print("generated images:")
        results = evaluate_generator(
            generator,
            args.num_samples,
            args.batch_size,
            extractor,
            real_statistics=(mu, sigma),
            real_features_for_kid=features,
            seed=args.seed,
            progress=True,
            max_kid_features=MAX_KID_FEATURES,
            z_dim=generator.z_dim,
            num_classes=generator.num_classes,
        )
    results["num_real_samples"] = num_real
    results["model"] = description
    results["inception_weights"] = args.inception_weights or "imagenet (Keras cache)"
    print(json.dumps({key: _json_value(value) for key, value in results.items()}, sort_keys=True))


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

    p = commands.add_parser(
        "evaluate",
        help="FID, Inception Score and KID of a generator, as JSON on stdout.",
        description="Generates --num_samples images and prints FID, IS and KID (InceptionV3 features) as one JSON "
        "line on stdout; progress goes to stderr. Real statistics come from --data or --stats_in.",
    )
    p.add_argument("--model", required=True, help="SavedModel version dir, base dir (latest) or checkpoint dir.")
    real = p.add_mutually_exclusive_group(required=True)
    real.add_argument(
        "--data",
        choices=EVAL_DATASETS,
        help="Real images, at the generator's image size: 'demo' (100 LFW faces), 'celeba' (TFDS, see --data_dir) "
        "or 'folder' (--image_folder).",
    )
    real.add_argument(
        "--stats_in", default=None, help="A .npz of real statistics written by --stats_out, instead of --data."
    )
    p.add_argument("--data_dir", default=None, help="TFDS data directory holding celeb_a (--data celeba).")
    p.add_argument("--image_folder", default=None, help="Folder of real images (--data folder).")
    p.add_argument(
        "--num_samples",
        type=int,
        default=50_000,
        help="Images generated, and at most this many real images. Default 50000.",
    )
    p.add_argument("--batch_size", type=int, default=100, help="Images per generator/InceptionV3 call. Default 100.")
    p.add_argument(
        "--inception_weights",
        default=None,
        help="Keras InceptionV3 weights file (inception_v3_weights_tf_dim_ordering_tf_kernels.h5). Default: the "
        "Keras cache (~/.keras/models or $KERAS_HOME/models). 'random': a random network, for smoke tests only.",
    )
    p.add_argument(
        "--stats_out", default=None, help="Save the real statistics computed from --data to this .npz for reuse."
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of the latents, labels and real-image order. Default 0.")
    p.set_defaults(run=cmd_evaluate)
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
