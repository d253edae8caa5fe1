"""`keras-sagan info`: what a model path holds (checkpoint and config, preset metadata, or SavedModel signatures)."""

from __future__ import annotations

import json
import os


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="Print a model's signatures, shapes, dtypes and version.")
    parser.add_argument(
        "--model",
        required=True,
        help="SavedModel version dir, base dir (latest), run directory, .keras file, or a preset (registered name, "
        "folder, hf://, kaggle://).",
    )
    parser.set_defaults(run=run)


def run(args) -> None:
    from keras_sagan.export import loading, saved_model

    kind, path = loading.resolve(args.model)
    if kind == "run":
        generator, prefix, key = loading.load_run_generator(path)
        print(f"checkpoint: {prefix}")
        print(f"weights exported: {key}")
        print(f"generator config: {json.dumps(generator.get_config(), sort_keys=True, default=str)}")
        return
    if kind == "preset":
        loaded = loading.load_generator(path)
        metadata = loaded.metadata
        certificate = metadata.get("certificate")
        print(f"preset: {path}")
        print(f"folder: {os.path.abspath(loaded.folder)}")
        print(f"networks: {', '.join(metadata.get('networks', []))} (model.weights.h5 holds the "
              f"{'EMA ' if metadata.get('ema') else ''}generator)")  # fmt: skip
        print(f"dataset: {metadata.get('dataset', 'not recorded')}")
        scores = certificate.get("scores") if isinstance(certificate, dict) else None
        print(f"scores: {json.dumps(scores, sort_keys=True) if scores is not None else 'none recorded'}")
        print(f"metadata: {json.dumps(metadata, sort_keys=True)}")
        print(f"generator config: {json.dumps(loaded.keras_generator.get_config(), sort_keys=True, default=str)}")
        return
    if kind == "keras":
        generator = loading.load_generator(path).keras_generator
        print(f"keras file: {os.path.abspath(path)}")
        print(f"generator config: {json.dumps(generator.get_config(), sort_keys=True, default=str)}")
        return
    base = os.path.dirname(os.path.abspath(path))
    version = os.path.basename(os.path.abspath(path))
    print(f"saved_model: {os.path.abspath(path)}")
    print(f"version: {version if version.isdigit() else 'none (not in a numbered version directory)'}")
    versions = saved_model.list_versions(base)
    if versions:
        print(f"versions in {base}: {versions}")
    marker = loading.read_marker(base)
    if marker is not None:
        print(f"generator config: {json.dumps(marker.get('generator'), sort_keys=True)}")
    for name, (method, inputs, outputs) in loading.read_signatures(path).items():
        print(f"signature {name!r} (method {method}):")
        for key, (dtype, shape) in inputs.items():
            print(f"  input  {key}: {dtype} {shape}")
        for key, (dtype, shape) in outputs.items():
            print(f"  output {key}: {dtype} {shape}")
