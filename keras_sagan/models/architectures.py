"""Declarative architecture tables and argument checks shared by G and D."""

import numpy as np
from keras import ops

ARCHITECTURES = ("dcgan", "resnet")
IMAGE_SIZES = (32, 64, 128)

# Residual architecture, in the BigGAN/SNGAN style of the SAGAN paper. Channel
# multipliers of `conv_dim`, one entry per block.
RESNET_GENERATOR = {
    32: {"in": (4, 4, 4), "out": (4, 4, 4)},
    64: {"in": (16, 16, 8, 4), "out": (16, 8, 4, 2)},
    128: {"in": (16, 16, 8, 4, 2), "out": (16, 8, 4, 2, 1)},
}
RESNET_DISCRIMINATOR = {
    32: {"out": (4, 4, 4, 4), "downsample": (True, True, False, False)},
    64: {"out": (1, 2, 4, 8, 16), "downsample": (True, True, True, True, False)},
    128: {"out": (1, 2, 4, 8, 16, 16), "downsample": (True, True, True, True, True, False)},
}


def check_common(architecture, image_size, conv_dim, num_classes):
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}; received {architecture!r}.")
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}; received {image_size!r}.")
    if not isinstance(conv_dim, int) or conv_dim < 1:
        raise ValueError(f"conv_dim must be an int >= 1; received {conv_dim!r}.")
    if num_classes is not None:
        if architecture == "dcgan":
            raise ValueError(
                f"num_classes={num_classes!r} needs architecture='resnet'; the dcgan architecture is unconditional."
            )
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be None or an int >= 1; received {num_classes!r}.")


def check_attention_resolutions(resolutions, available, model_name):
    resolutions = tuple(int(r) for r in resolutions)
    for resolution in resolutions:
        if resolution not in available:
            raise ValueError(
                f"{model_name} has no feature map at resolution {resolution} for attention; "
                f"available resolutions: {tuple(sorted(set(available)))}."
            )
    return resolutions


def check_labels(labels, num_classes, model_name):
    """Validates class labels: required iff conditional, and in range."""
    if num_classes is None:
        if labels is not None:
            raise ValueError(f"{model_name} is unconditional (num_classes=None) but received labels.")
        return None
    if labels is None:
        raise ValueError(f"{model_name} is conditional (num_classes={num_classes}) and needs labels.")
    if len(labels.shape) != 1:
        raise ValueError(f"labels must have shape (batch,); received shape {tuple(labels.shape)}.")
    try:
        values = np.asarray(labels)
    except Exception:  # A symbolic tensor inside a traced function.
        values = None
    if values is not None and values.size and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(
            f"labels must be in [0, {num_classes}); received values from {values.min()} to {values.max()}."
        )
    return ops.cast(labels, "int32")
