"""Imports the PyTorch reference's checkpoints (heykeetae/Self-Attention-GAN) as a keras_sagan run.

The reference's trainer saves `{step}_G.pth` and `{step}_D.pth`, the state dicts of its 64x64
generator and discriminator. The `celeba64` preset is that network (the same 3,832,885 and
3,175,299 parameters), so `import_reference` maps the tensors one to one onto a `celeba64`
`Generator` / `Discriminator` and writes a run directory (`config.json` and a checkpoint, through
`keras_sagan.run_directory`) that `export`, `sample`, `evaluate` and `train` accept.

The mapping, name by name (`<i>` is a block; kernels are permuted `(2, 3, 1, 0)`: a Conv2d
weight `(out, in, kh, kw)` becomes Keras' `(kh, kw, in, out)`, a ConvTranspose2d weight
`(in, out, kh, kw)` becomes `(kh, kw, out, in)`):

- `l<i>.0.module.weight_bar` -> the SN-wrapped conv's kernel (the weight before normalisation);
- `l<i>.0.module.bias` -> its bias;
- `l<i>.0.module.weight_u` -> the wrapper's `u` (both are the vector of the weight's first torch
  dimension, the last Keras one);
- `l<i>.0.module.weight_v` -> nothing: the reference recomputes v from u on every forward, as we do
  (its shape is still checked);
- generator only: `l<i>.1.weight`, `.bias`, `.running_mean`, `.running_var` -> BatchNorm's
  `gamma`, `beta`, `moving_mean`, `moving_variance` (`num_batches_tracked`, unused with a fixed
  momentum, may be absent);
- `attn<j>.query_conv.weight`, `.bias` (and `key_conv`, `value_conv`) -> the attention layer's
  `query`, `key`, `value` 1x1 convs; `attn<j>.gamma` `(1,)` -> `gamma` `()`;
- `last.0.weight`, `last.0.bias` -> the unnormalised last conv (`to_rgb` in G, `logit` in D).

Generator blocks: `l1` is the stem (`initial`), `l2`... the up-sampling `stages`; discriminator
blocks: `l1`... its `stages`. `attn1`, `attn2` are the attention layers in forward order.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid

import numpy as np
import tensorflow as tf

from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.checkpoint.names import CHECKPOINT_GENERATOR, CHECKPOINT_STEP, checkpoint_objects
from keras_sagan.errors import UsageError, one_line
from keras_sagan.run_directory import RunDirectory
from keras_sagan.torch_files import load_state_dict

PRESET = "celeba64"
DEFAULT_SIZES = {"image_size": 64, "z_dim": 128, "conv_dim": 64}


class ReferenceImportError(UsageError):
    """A reference checkpoint that does not fit the network asked for (one line)."""


# Suffix after `l<i>.0.` / `l<i>.1.` / `attn<j>.` / `last.0.` -> (our variable's attribute path, conversion).
_SPECTRAL_CONV = {
    "module.bias": ("layer.bias", "same"),
    "module.weight_u": ("u", "row"),
    "module.weight_v": ("layer.kernel", "v"),  # checked, not loaded
    "module.weight_bar": ("layer.kernel", "kernel"),
}
_BATCH_NORM = {
    "weight": ("gamma", "same"),
    "bias": ("beta", "same"),
    "running_mean": ("moving_mean", "same"),
    "running_var": ("moving_variance", "same"),
}
_OPTIONAL = {"num_batches_tracked"}  # BatchNorm's counter: unused with a fixed momentum, absent in old files.
_ATTENTION = {
    "query_conv.weight": ("query.kernel", "kernel"),
    "query_conv.bias": ("query.bias", "same"),
    "key_conv.weight": ("key.kernel", "kernel"),
    "key_conv.bias": ("key.bias", "same"),
    "value_conv.weight": ("value.kernel", "kernel"),
    "value_conv.bias": ("value.bias", "same"),
    "gamma": ("gamma", "scalar"),
}
_CONV = {"weight": ("kernel", "kernel"), "bias": ("bias", "same")}


def _attribute(layer, path):
    for name in path.split("."):
        layer = getattr(layer, name)
    return layer


def _entries(prefix, layer, table):
    return [(prefix + suffix, _attribute(layer, path), kind) for suffix, (path, kind) in table.items()]


def generator_mapping(generator) -> list[tuple[str, object, str]]:
    """`[(reference key, our variable, conversion)]` for a dcgan `Generator`, in forward order."""
    blocks = [generator.initial, *generator.stages]
    entries = []
    for index, block in enumerate(blocks, start=1):
        entries += _entries(f"l{index}.0.", block.layers[0], _SPECTRAL_CONV)
        entries += _entries(f"l{index}.1.", block.layers[1], _BATCH_NORM)
    for index, layer in enumerate(generator.attention_layers, start=1):
        entries += _entries(f"attn{index}.", layer, _ATTENTION)
    return entries + _entries("last.0.", generator.to_rgb, _CONV)


def discriminator_mapping(discriminator) -> list[tuple[str, object, str]]:
    """`[(reference key, our variable, conversion)]` for a dcgan `Discriminator`, in forward order."""
    entries = []
    for index, block in enumerate(discriminator.stages, start=1):
        entries += _entries(f"l{index}.0.", block.layers[0], _SPECTRAL_CONV)
    for index, layer in enumerate(discriminator.attention_layers, start=1):
        entries += _entries(f"attn{index}.", layer, _ATTENTION)
    return entries + _entries("last.0.", discriminator.logit, _CONV)


def _torch_shape(variable, kind):
    shape = tuple(variable.shape)
    if kind == "v":  # the weight's other dimensions, flattened: Keras' reshape(-1, last) rows
        return (int(np.prod(shape)) // shape[-1],)
    if kind == "kernel":
        return tuple(shape[i] for i in (3, 2, 0, 1))  # inverse of the (2, 3, 1, 0) permutation
    if kind == "row":
        return (shape[1],)
    if kind == "scalar":
        return (1,)
    return shape


def _convert(value, kind, variable):
    if kind == "kernel":
        value = np.transpose(value, (2, 3, 1, 0))
    return np.asarray(value, "float32").reshape(tuple(variable.shape))


def _blocks(state):
    return len({int(m.group(1)) for m in map(re.compile(r"l(\d+)\.").match, state) if m})


def fitting_sizes(state: dict, network: str) -> str | None:
    """The `--image_size --z_dim --conv_dim` that a reference state dict's tensors fit, as flags; None if unknown."""
    weight = state.get("l1.0.module.weight_bar")
    blocks = _blocks(state)
    if weight is None or weight.ndim != 4 or not blocks:
        return None
    image_size = 4 * 2**blocks  # G: 4x4 stem, doubled by each further block and the last conv; D: halved to 4x4.
    if network == "generator":
        conv_dim = weight.shape[1] * 8 // image_size
        return f"--image_size {image_size} --z_dim {weight.shape[0]} --conv_dim {conv_dim}"
    return f"--image_size {image_size} --conv_dim {weight.shape[0]}"


def _kind(state):
    """ "generator", "discriminator" or None, from the first block's first weight."""
    weight = state.get("l1.0.module.weight_bar")
    if weight is None or weight.ndim != 4:
        return None
    if weight.shape[1] == 3 and "l1.1.weight" not in state:  # a conv of the 3 image channels, no BatchNorm
        return "discriminator"
    return "generator" if "l1.1.weight" in state else None


def load_into(path, network: str, model) -> None:
    """Reads the reference's state dict at `path` into `model` (`network`: "generator" or "discriminator").

    Every expected key must be present with the torch shape that `model` implies, and no other
    key may be; the first offending key is named in a one-line `ReferenceImportError`.
    """
    path = os.fspath(path)
    state = load_state_dict(path)
    flag = "--generator" if network == "generator" else "--discriminator"
    kind = _kind(state)
    if kind is not None and kind != network:
        raise ReferenceImportError(
            f"{path} holds the reference's {kind} state dict, not its {network}'s; give it as --{kind}"
        )
    mapping = generator_mapping(model) if network == "generator" else discriminator_mapping(model)
    sizes = f"image_size={model.image_size}, " + (f"z_dim={model.z_dim}, " if network == "generator" else "")
    sizes += f"conv_dim={model.conv_dim}"
    fits = fitting_sizes(state, network)
    hint = f"; its tensors fit {fits}" if fits else ""
    expected = {key for key, _, _ in mapping}
    for key in state:
        if key not in expected and key.rsplit(".", 1)[-1] not in _OPTIONAL:
            raise ReferenceImportError(
                f"{flag} {path}: unexpected key {key!r} for the reference's {network} at {sizes}{hint}"
            )
    for key, variable, kind in mapping:
        if key not in state:
            raise ReferenceImportError(
                f"{flag} {path}: missing key {key!r} of the reference's {network} at {sizes}{hint}"
            )
        value = state[key]
        want = _torch_shape(variable, kind)
        if tuple(value.shape) != want:
            raise ReferenceImportError(
                f"{flag} {path}: {key!r} has shape {tuple(value.shape)}, the reference's {network} at {sizes} "
                f"has {want}{hint}"
            )
    for key, variable, kind in mapping:
        if kind != "v":  # The reference recomputes v from u on every forward, as we do.
            variable.assign(_convert(state[key], kind, variable))


def import_reference(
    generator_path,
    out,
    discriminator_path=None,
    image_size: int = 64,
    z_dim: int = 128,
    conv_dim: int = 64,
) -> str:
    """Writes the reference's `STEP_G.pth` (and `STEP_D.pth`) as a keras_sagan run directory `out`.

    The run is a `celeba64` run with these sizes, at step 0: `config.json` (its `train` section
    a `TrainConfig` with `model_dir=out`) and `checkpoints/ckpt-0`. With a discriminator, the
    checkpoint holds the whole training state (fresh Adam moments), and `keras-sagan train
    --config OUT/config.json` continues training. Without one it holds the generator only:
    export, sampling and evaluation work, and training is refused in one line. The directory is
    written under a temporary name and renamed; an existing `out` is refused.

    Args:
        generator_path: str. The reference's generator state dict (`torch.save(G.state_dict())`).
        out: str. The run directory to create.
        discriminator_path: str or None. Its discriminator state dict.
        image_size, z_dim, conv_dim: int. The reference's sizes (its defaults 64, 128, 64).

    Returns:
        The absolute path of the run directory.
    """
    from keras_sagan.training.builders import build_gan
    from keras_sagan.training.config import TrainConfig

    out = os.path.abspath(os.fspath(out))
    if os.path.lexists(out):
        raise ReferenceImportError(f"--out {out} already exists; refusing to overwrite it")
    try:
        config = TrainConfig(preset=PRESET, image_size=image_size, z_dim=z_dim, conv_dim=conv_dim, model_dir=out)
        gan = build_gan(config, tf.distribute.get_strategy())
    except (TypeError, ValueError) as err:
        raise ReferenceImportError(one_line(err)) from None
    load_into(generator_path, "generator", gan.generator)
    if discriminator_path is not None:
        load_into(discriminator_path, "discriminator", gan.discriminator)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}")
    try:
        run = RunDirectory(tmp)
        record = {"generator": gan.generator.get_config(), "discriminator": gan.discriminator.get_config()}
        run.write_config(record["generator"], record["discriminator"], config.to_dict())
        objects = checkpoint_objects(gan)
        if discriminator_path is None:  # Nothing to train with (checkpoint.reading.restore_gan refuses it).
            objects = {name: objects[name] for name in (CHECKPOINT_GENERATOR, CHECKPOINT_STEP)}
        record["train"] = config.to_dict()
        CheckpointManager(gan, run.checkpoints_dir, max_to_keep=1, record=record, objects=objects).save(0)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
