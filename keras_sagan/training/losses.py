"""GAN losses as pure functions of discriminator logits.

Every function returns one loss value per example, so the train step can
divide the sum by the *global* batch size under a distribution strategy.
"""

from keras import ops

from keras_sagan import backend


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


def gradient_penalty(critic, real_images, fake_images, alpha, has_aux=False):
    """Per-example `(||grad_x D(x_hat)||_2 - 1)^2` at `x_hat = x + alpha (G(z) - x)`.

    Gulrajani et al. 2017. `alpha` has shape `(B, 1, 1, 1)`, drawn uniformly in [0, 1) by the
    caller. `critic(x_hat)` returns the logits (the train step runs D with `training=True`), or
    `(logits, aux)` with `has_aux=True` (JAX's stateless step returns D's updated state as aux).
    The gradient comes from `keras_sagan.backend.input_gradient`, differentiable once more for the
    weight update. Returns the penalties, or `(penalties, aux)` with `has_aux=True`.
    """
    interpolated = ops.convert_to_tensor(real_images + alpha * (fake_images - real_images))
    grads, aux = backend.input_gradient(critic, interpolated, has_aux=has_aux)
    norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
    penalties = ops.square(norms - 1.0)
    return (penalties, aux) if has_aux else penalties


LOSSES = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "non-saturating": (non_saturating_discriminator_loss, non_saturating_generator_loss),
    "wgan-gp": (wasserstein_discriminator_loss, wasserstein_generator_loss),
}
