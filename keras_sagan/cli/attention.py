"""`keras-sagan attention`: one PNG with a sample, its attention-off twin and every layer's map for one query pixel."""

from __future__ import annotations

import os

from keras_sagan.errors import UsageError, bad_value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attention", help="Where one pixel of a sample attends, in every attention layer of G (one PNG)."
    )
    parser.add_argument(
        "--model", required=True, help="Run directory or .keras file (a SavedModel is for sampling only)."
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="The sample's seed (as `sample --num 1`). Default %(default)s."
    )
    parser.add_argument("--query", required=True, help="ROW,COL: the query pixel of the image (0-based).")
    parser.add_argument(
        "--truncation", type=float, default=0.0, help="As `sample --truncation`. Default %(default)s (none)."
    )
    parser.add_argument("--label", type=int, default=None, help="Class of a conditional model. Default: the seed's.")
    parser.add_argument(
        "--weights",
        choices=("ema", "live"),
        default=None,
        help="For a run with an EMA generator: which one. Default: the EMA one.",
    )
    parser.add_argument("--out", required=True, help="PNG file to write.")
    parser.set_defaults(run=run)


def pick_variant(variants: dict, weights: str | None):
    """The generator `--weights` names among `loading.load_generator_variants`'s, or the default one."""
    if weights is None:
        return next(iter(variants.values()))
    if weights not in variants:
        raise UsageError(bad_value("--weights", weights, f"one of {list(variants)} for this model"))
    return variants[weights]


def run(args) -> None:
    import math

    if os.path.isdir(args.out) or not args.out.lower().endswith(".png"):
        raise UsageError(bad_value("--out", args.out, "a .png file path (not a directory)"))
    if not math.isfinite(args.truncation):
        raise UsageError(bad_value("--truncation", args.truncation, "a finite number (<= 0: no truncation)"))
    from keras_sagan import attention_maps
    from keras_sagan.export import saved_model
    from keras_sagan.export.loading import load_generator_variants
    from keras_sagan.interpolation import check_label
    from keras_sagan.models.sampling import sample

    loaded = pick_variant(load_generator_variants(args.model), args.weights)
    if loaded.keras_generator is None:
        raise UsageError(
            f"{loaded.path} is a SavedModel, for sampling only here: maps need a run directory or a .keras file "
            "(TF Serving clients can call its `attention` signature)"
        )
    generator = loaded.keras_generator
    attention_maps.check_has_attention(generator, args.model)
    row, col = attention_maps.parse_query(args.query, generator.image_size)
    check_label("--label", args.label, generator.num_classes)
    z, labels = saved_model.sample_inputs(
        1, generator.z_dim, generator.num_classes, args.seed, args.truncation, args.label
    )
    image, maps = attention_maps.query_maps(generator, z, labels, row, col)
    off = attention_maps.without_attention(generator)
    image_off = sample(off, z, labels)[0]
    figure = attention_maps.attention_figure(image, image_off, maps, row, col)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    figure.save(args.out, format="PNG")
    for layer_map in maps:
        print(f"{layer_map.name}: {layer_map.resolution}x{layer_map.resolution}, query cell "
              f"{layer_map.query[0]},{layer_map.query[1]}, gamma {layer_map.gamma:.6g}")  # fmt: skip
    print(args.out)
