"""`keras-sagan import-reference`: the PyTorch reference's `STEP_G.pth` (and `STEP_D.pth`) as a run directory."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-reference",
        help="Import the PyTorch reference's checkpoints (heykeetae/Self-Attention-GAN) as a run directory.",
        description=(
            "Maps the reference's generator (and discriminator) state dicts onto a celeba64 run directory "
            "(config.json + checkpoints/ckpt-0) that export, sample, evaluate and train accept. Without "
            "--discriminator, training from it is refused. The .pth files are read without torch and without "
            "running code from them."
        ),
    )
    parser.add_argument("--generator", required=True, help="The reference's STEP_G.pth (its generator's state dict).")
    parser.add_argument("--discriminator", default=None, help="Its STEP_D.pth; needed to continue training.")
    parser.add_argument("--out", required=True, help="The run directory to create (must not exist).")
    parser.add_argument("--image_size", type=int, default=64, help="The reference's imsize (default: %(default)s).")
    parser.add_argument("--z_dim", type=int, default=128, help="The reference's z_dim (default: %(default)s).")
    parser.add_argument("--conv_dim", type=int, default=64, help="The reference's conv_dim (default: %(default)s).")
    parser.set_defaults(run=run)


def run(args) -> None:
    from keras_sagan.reference import import_reference

    print(
        import_reference(
            args.generator,
            args.out,
            discriminator_path=args.discriminator,
            image_size=args.image_size,
            z_dim=args.z_dim,
            conv_dim=args.conv_dim,
        )
    )
