"""`keras-sagan certify`: measure a Fashion-MNIST generator under the quality protocol, or check its certificate.

    keras-sagan certify --model fashion_mnist32                      # recompute the shipped certificate and compare
    keras-sagan certify --model RUN_DIR --certificate cert.json      # check a certificate file against a model
    keras-sagan certify --model RUN_DIR --write cert.json            # measure and write a new certificate

Exit status: 0 when the certificate holds (or was written), 1 when a number moved beyond its
tolerance (each such number is printed on a line of its own), 2 on a bad input. The protocol is
`keras_sagan.metrics.certificate`'s; the real images are the Fashion-MNIST test split
(`--data_dir`, else the places `keras_sagan.data.mnist` looks).
"""

from __future__ import annotations

import json
import sys

from keras_sagan.atomic_file import atomic_write
from keras_sagan.errors import UsageError

EXIT_MOVED = 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "certify", help="Measure a Fashion-MNIST generator on the domain network, or check its quality certificate."
    )
    parser.add_argument("--model", required=True, help="Preset name or folder, run directory or .keras file.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--certificate", default=None, help="A certificate JSON file to check (default: the model's).")
    source.add_argument("--write", default=None, help="Measure and write a new certificate JSON file here.")
    parser.add_argument("--data_dir", default=None, help="Folder of the Fashion-MNIST IDX files.")
    parser.add_argument("--num_fakes", type=int, default=10000, help="With --write. Default %(default)s.")
    parser.add_argument("--num_real", type=int, default=10000, help="With --write. Default %(default)s.")
    parser.add_argument("--seed", type=int, default=0, help="With --write. Default %(default)s.")
    parser.set_defaults(run=run)


def _keras_generator(model: str):
    from keras_sagan.export import loading

    loaded = loading.load_generator(model)
    if loaded.keras_generator is None:
        raise UsageError(
            "certify needs a Keras generator (a preset, a run directory or a .keras file); "
            f"received the SavedModel {model}"
        )
    return loaded.keras_generator, loaded


def _certificate_of(loaded, model: str) -> dict:
    certificate = (getattr(loaded, "metadata", None) or {}).get("certificate")
    if certificate is None:
        raise UsageError(
            f"{model} carries no quality certificate; pass --certificate FILE, or --write FILE to make one"
        )
    return certificate


def run(args) -> int:
    from keras_sagan.metrics import certificate as protocol

    for name in ("num_fakes", "num_real"):
        if getattr(args, name) < 6:  # PRDC's k=5 needs more than 5 of each
            raise UsageError(f"`--{name}` must be at least 6; received: --{name}={getattr(args, name)}")
    generator, loaded = _keras_generator(args.model)
    if args.write:
        measured = protocol.certify(
            generator, num_fakes=args.num_fakes, num_real=args.num_real, seed=args.seed, data_dir=args.data_dir
        )
        with atomic_write(args.write, "w") as f:
            json.dump(measured, f, indent=1)
        print(json.dumps(measured["scores"]))
        return 0
    if args.certificate:
        try:
            with open(args.certificate) as f:
                recorded = json.load(f)
        except json.JSONDecodeError as error:
            raise UsageError(f"{args.certificate} is not a certificate (invalid JSON: {error.msg})") from None
    else:
        recorded = _certificate_of(loaded, args.model)
    if not isinstance(recorded, dict) or not {"protocol", "scores"} <= set(recorded):
        raise UsageError("a certificate needs 'protocol' and 'scores' entries (see keras-sagan certify --write)")
    p = recorded["protocol"]
    measured = protocol.certify(
        generator,
        num_fakes=p["num_fakes"],
        num_real=p["num_real"],
        seed=p["seed"],
        sampling=p["sampling"],
        data_dir=args.data_dir,
    )
    problems = protocol.check_certificate(recorded, measured)
    print(json.dumps({"holds": not problems, "recorded": recorded["scores"], "measured": measured["scores"]}))
    for line in problems:
        print(f"certificate does not hold: {line}", file=sys.stderr)
    return EXIT_MOVED if problems else 0
