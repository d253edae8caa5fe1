"""`keras-sagan export`: writes a run directory's generator as a TF Serving SavedModel version."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="Export a run directory as a TF Serving SavedModel version.",
        description="Writes the run's generator (EMA weights when present) as OUT/<version>/.",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="Run directory (with config.json) or its checkpoints/ folder, or a .keras file.",
    )
    parser.add_argument("--out", required=True, help="Base path, e.g. saved_models/NAME; writes NAME/<version>/.")
    parser.add_argument(
        "--version", type=int, default=None, help="Version number (default: %(default)s, the next free)."
    )
    parser.set_defaults(run=run)


def run(args) -> None:
    from keras_sagan.export import export_generator

    print(export_generator(args.checkpoint, args.out, version=args.version))
