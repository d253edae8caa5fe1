"""`keras-sagan export`: writes a run directory's generator as a TF Serving SavedModel version, an ONNX
model, a LiteRT model or a preset folder."""

from __future__ import annotations

import json

from keras_sagan.errors import UsageError, bad_value, one_line
from keras_sagan.export.formats import FORMATS  # Imports no TensorFlow: the CLI's log set-up still comes first.


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="Export a run directory as a TF Serving SavedModel version, an ONNX or a LiteRT model, or a preset.",
        description=(
            "Writes the run's generator (EMA weights when present) in inference mode: OUT/<version>/ for "
            "saved_model, the file OUT (.onnx / .tflite) for onnx and litert; for preset, the folder OUT with the "
            "generator, the EMA generator and the discriminator. Nothing is overwritten."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="Run directory (with config.json) or its checkpoints/ folder, or a .keras file.",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="saved_model: base path, e.g. saved_models/NAME (writes NAME/<version>/); onnx: a .onnx file; "
        "litert: a .tflite file; preset: a new folder.",
    )
    # Checked by export_model, so that an unknown format is the package's one-line error (exit 2).
    parser.add_argument("--format", default="saved_model", help=f"One of {', '.join(FORMATS)} (default: %(default)s).")
    parser.add_argument(
        "--version", type=int, default=None, help="saved_model only: version number (default: the next free)."
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="litert only: a fixed batch size (default: a dynamic batch, which the resnet generators do not convert "
        "to; they need this).",
    )
    parser.add_argument(
        "--metadata",
        default=None,
        help="preset only: a JSON file holding an object (e.g. the quality certificate, the sampling settings) "
        "added to the preset's metadata.json and model card.",
    )
    parser.set_defaults(run=run)


def read_metadata_file(path: str | None) -> dict | None:
    """The JSON object in `path` (`--metadata`), or None; one-line `UsageError` otherwise."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read --metadata {path}: {one_line(err)}") from None
    if not isinstance(metadata, dict):
        raise UsageError(bad_value("--metadata", path, "a JSON file holding an object"))
    return metadata


def run(args) -> None:
    from keras_sagan.export.formats import export_model

    metadata = read_metadata_file(args.metadata)
    print(
        export_model(
            args.checkpoint,
            args.out,
            format=args.format,
            version=args.version,
            batch_size=args.batch,
            metadata=metadata,
        )
    )
