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


def discriminator_loss(critic, loss_fn, gp_weight, real, real_labels, fake, fake_labels, alpha, state=None):
    """Per-example D loss of one D update: real and fake through D as one batch, plus the WGAN-GP penalty.

    The one owner of the D objective for every backend's train step. Real and fake images (and
    labels) are concatenated, so D runs one forward per update (one spectral-norm power iteration,
    as in the reference) and its logits are split back. With `gp_weight`, the penalty's forward
    runs after the main one (`gradient_penalty` at `alpha`, with the real labels).

    Args:
        critic: callable. `critic(images, labels, state) -> (logits, state)` runs D in training
            mode. `state` is what the step threads from one D forward to the next: D's
            non-trainable values in JAX's stateless step, None on TensorFlow and torch, whose
            layers assign their own.
        loss_fn: callable. `loss_fn(real_logits, fake_logits)`, per example (one of `LOSSES`).
        gp_weight: float. The penalty's weight; 0 adds none.
        real, fake: `(B, H, W, C)` images; `fake` already outside G's gradient.
        real_labels, fake_labels: `(B,)` labels, or None for an unconditional D.
        alpha: `(B, 1, 1, 1)` interpolation weights of the penalty (unused without it).
        state: D's state before the update, as `critic` takes it. Defaults to None.

    Returns:
        `(per_example, real_logits, fake_logits, state)`, the state after D's last forward.

    Example:

    ```python
    per_example, real_logits, fake_logits, _ = discriminator_loss(
        lambda x, y, state: (discriminator(x, y, training=True), state),
        hinge_discriminator_loss, 0.0, real, None, fake, None, None,
    )
    ```
    """
    batch = ops.shape(real)[0]
    images = ops.concatenate([real, fake], axis=0)
    labels = None if real_labels is None else ops.concatenate([real_labels, fake_labels], axis=0)
    logits, state = critic(images, labels, state)
    real_logits, fake_logits = logits[:batch], logits[batch:]
    per_example = loss_fn(real_logits, fake_logits)
    if gp_weight:
        forward_state = state
        penalty, state = gradient_penalty(
            lambda x: critic(x, real_labels, forward_state), real, fake, alpha, has_aux=True
        )
        per_example = per_example + gp_weight * penalty
    return per_example, real_logits, fake_logits, state


LOSSES = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "non-saturating": (non_saturating_discriminator_loss, non_saturating_generator_loss),
    "wgan-gp": (wasserstein_discriminator_loss, wasserstein_generator_loss),
}
