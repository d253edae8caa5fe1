"""`keras-sagan upload-preset DIR HANDLE`: publishes a preset folder on Hugging Face or Kaggle."""

from __future__ import annotations

import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "upload-preset",
        help="Publish a preset folder at hf://OWNER/MODEL or kaggle://OWNER/MODEL/keras/VARIANT.",
        description=(
            "Checks that DIR loads as a preset (config, weights against the config, format version), then uploads "
            "it with the hub's own client (huggingface_hub or kagglehub: pip install 'keras_sagan[hub]') and its "
            "credentials (`hf auth login` or HF_TOKEN; ~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY)."
        ),
    )
    parser.add_argument("preset", metavar="DIR", help="The preset folder (from save_to_preset or export).")
    parser.add_argument("handle", metavar="HANDLE", help="hf://OWNER/MODEL or kaggle://OWNER/MODEL/keras/VARIANT.")
    parser.set_defaults(run=run)


def run(args) -> None:
    from keras_sagan import hubs, preset_format
    from keras_sagan.errors import UsageError

    hubs.parse(args.handle)  # A bad handle fails before the preset loads.
    if not os.path.isdir(args.preset):
        raise UsageError(f"no such preset folder: {args.preset}")
    for network in preset_format.read_metadata(args.preset).get("networks", ["generator"]):
        preset_format.load_network(args.preset, network)  # Publish only what loads back.
    print(hubs.upload(args.preset, args.handle))
