"""GAN losses as pure functions of discriminator logits.

Every function returns one loss value per example, so the train step can
divide the sum by the *global* batch size under a distribution strategy.
"""

import tensorflow as tf
from keras import ops


def hinge_discriminator_loss(real_logits, fake_logits):
    """`relu(1 - D(x)) + relu(1 + D(G(z)))`, the SAGAN paper's D loss."""
    return ops.relu(1.0 - real_logits) + ops.relu(1.0 + fake_logits)


def hinge_generator_loss(fake_logits):
    """`-D(G(z))`, the SAGAN paper's G loss."""
    return -fake_logits


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """`-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))` (Goodfellow et al. 2014)."""
    return ops.softplus(-real_logits) + ops.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits):
    """`-log sigmoid(D(G(z)))`, the non-saturating G loss."""
    return ops.softplus(-fake_logits)


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """`D(G(z)) - D(x)`, the critic loss of WGAN."""
    return fake_logits - real_logits


def wasserstein_generator_loss(fake_logits):
    """`-D(G(z))`, the WGAN generator loss."""
    return -fake_logits


def gradient_penalty(discriminator, real_images, fake_images, alpha, labels=None):
    """Per-example `(||grad_x D(x_hat)||_2 - 1)^2` at `x_hat = x + alpha (G(z) - x)`.

    Gulrajani et al. 2017. `alpha` has shape `(B, 1, 1, 1)`, drawn uniformly
    in [0, 1) by the caller. The discriminator runs with `training=True`.
    """
    interpolated = ops.convert_to_tensor(real_images + alpha * (fake_images - real_images))
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        if labels is None:
            logits = discriminator(interpolated, training=True)
        else:
            logits = discriminator(interpolated, labels, training=True)
    grads = tape.gradient(logits, interpolated)
    norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
    return ops.square(norms - 1.0)


LOSSES = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "non-saturating": (non_saturating_discriminator_loss, non_saturating_generator_loss),
    "wgan-gp": (wasserstein_discriminator_loss, wasserstein_generator_loss),
}
