"""The model card of a preset (`README.md`, written from its metadata) and the one-line architecture summary.

The card opens with Hugging Face's front matter (`library_name: keras`, tags), so the Hub lists the
preset as a Keras model, then says what the preset is, shows its quality certificate and sampling
settings, and how to load it.
"""

from __future__ import annotations

import json


def describe_architecture(config: dict) -> str:
    """One line for a network config: `"dcgan 64x64, conv_dim 64, z_dim 128, reference attention"`."""
    size = config.get("image_size")
    parts = [f"{config.get('architecture')} {size}x{size}", f"conv_dim {config.get('conv_dim')}"]
    if "z_dim" in config:
        parts.append(f"z_dim {config['z_dim']}")
    if "channels" in config:
        parts.append(f"{config['channels']} channel(s)")
    parts.append(f"{config.get('attention_variant')} attention")
    parts.append(f"{config['num_classes']} classes" if config.get("num_classes") else "unconditional")
    return ", ".join(parts)


def model_card(metadata: dict, generator_config: dict, name: str) -> str:
    """The preset's `README.md`: Hugging Face front matter, what it is, its certificate and how to use it."""
    from keras_sagan.preset_format import (  # Not at the top: preset_format imports this module.
        CONFIG_FILE,
        DISCRIMINATOR_CONFIG_FILE,
        DISCRIMINATOR_WEIGHTS_FILE,
        METADATA_FILE,
        TRAINING_GENERATOR_WEIGHTS_FILE,
        WEIGHTS_FILE,
    )

    files = {
        "generator": f"`{WEIGHTS_FILE}`: the generator to sample from" + (" (EMA weights)" if metadata["ema"] else ""),
        "training_generator": f"`{TRAINING_GENERATOR_WEIGHTS_FILE}`: the trained generator's own weights",
        "discriminator": f"`{DISCRIMINATOR_CONFIG_FILE}` + `{DISCRIMINATOR_WEIGHTS_FILE}`: the discriminator",
    }
    lines = [
        "---",
        "library_name: keras",
        "tags: [keras_sagan, sagan, gan, image-generation]",
        "---",
        "",
        f"# {name}",
        "",
        metadata.get("description") or "A Self-Attention GAN (SAGAN) preset of keras_sagan.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {describe_architecture(generator_config)} |",
        f"| generator parameters | {metadata['parameter_count']:,} |",
        f"| dataset | {metadata.get('dataset', 'not recorded')} |",
        f"| saved | {metadata['date_saved']} UTC, keras_sagan {metadata['keras_sagan_version']}, "
        f"Keras {metadata['keras_version']} |",
        "",
        "Files: " + "; ".join(files[n] for n in metadata["networks"]) + f"; `{CONFIG_FILE}`, `{METADATA_FILE}`.",
        "",
    ]
    for key, title in (("certificate", "Quality certificate"), ("sampling", "Sampling settings")):
        if key in metadata:
            lines += [f"## {title}", "", "```json", json.dumps(metadata[key], indent=2, sort_keys=True), "```", ""]
    lines += [
        "## Use",
        "",
        "```python",
        "import keras_sagan",
        "",
        f'generator = keras_sagan.Generator.from_preset("{name}")  # a registered name, this folder, hf:// or kaggle://',
        "images = generator(z, training=False)  # z: (batch, z_dim) float32 noise; images in [-1, 1]",
        "```",
        "",
        "```bash",
        f"keras-sagan sample --model {name} --num 16 --out grid.png",
        "```",
        "",
    ]
    return "\n".join(lines)
