"""`keras-sagan export`: writes a run directory's generator as a TF Serving SavedModel version, an ONNX
model or a LiteRT model."""

from __future__ import annotations

FORMATS = ("saved_model", "onnx", "litert")  # keras_sagan.export.FORMATS; not imported: TF loads later.


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="Export a run directory as a TF Serving SavedModel version, an ONNX or a LiteRT model.",
        description=(
            "Writes the run's generator (EMA weights when present) in inference mode: OUT/<version>/ for "
            "saved_model, the file OUT (.onnx / .tflite) for onnx and litert. Nothing is overwritten."
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
        "litert: a .tflite file.",
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
    parser.set_defaults(run=run)


def run(args) -> None:
    from keras_sagan.export import export_model

    print(export_model(args.checkpoint, args.out, format=args.format, version=args.version, batch_size=args.batch))
