"""Backend-neutral test helpers: gradients through a layer on TensorFlow (a tape), JAX (`jax.grad`) or torch."""

import keras
import numpy as np

BACKEND = keras.backend.backend()


def layer_gradients(layer, x, loss_fn, **call_kwargs):
    """`(d loss / d x, [d loss / d w for w in layer.trainable_weights])`, loss = loss_fn(layer(x, training=True))."""
    x = np.asarray(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(layer(x, training=True, **call_kwargs))
        grads = tape.gradient(loss, [x] + layer.trainable_weights)
        return grads[0], grads[1:]
    if BACKEND == "torch":
        import torch

        x = torch.tensor(x, requires_grad=True)
        loss = loss_fn(layer(x, training=True, **call_kwargs))
        grads = torch.autograd.grad(loss, [x] + [w.value for w in layer.trainable_weights])
        return grads[0], list(grads[1:])
    import jax

    non_trainable = [v.value for v in layer.non_trainable_variables]

    def f(inputs, trainable):
        outputs, _ = layer.stateless_call(trainable, non_trainable, inputs, training=True, **call_kwargs)
        return loss_fn(outputs)

    return jax.grad(f, argnums=(0, 1))(x, [v.value for v in layer.trainable_variables])


def penalty_gradients(layer, x, loss_fn, **call_kwargs):
    """WGAN-GP's second order: `(g = d loss / d x, [d sum(g^2) / d w for each trainable w])`."""
    x = np.asarray(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = loss_fn(layer(x, training=False, **call_kwargs))
            input_grad = inner.gradient(loss, x)
            penalty = tf.reduce_sum(tf.square(input_grad))
        return input_grad, outer.gradient(penalty, layer.trainable_weights)
    if BACKEND == "torch":
        import torch

        x = torch.tensor(x, requires_grad=True)
        loss = loss_fn(layer(x, training=False, **call_kwargs))
        (input_grad,) = torch.autograd.grad(loss, x, create_graph=True)
        penalty = torch.sum(torch.square(input_grad))
        return input_grad, list(torch.autograd.grad(penalty, [w.value for w in layer.trainable_weights]))
    import jax
    import jax.numpy as jnp

    non_trainable = [v.value for v in layer.non_trainable_variables]

    def f(inputs, trainable):
        outputs, _ = layer.stateless_call(trainable, non_trainable, inputs, training=False, **call_kwargs)
        return loss_fn(outputs)

    def penalty(trainable):
        return jnp.sum(jnp.square(jax.grad(f)(x, trainable)))

    trainable = [v.value for v in layer.trainable_variables]
    return jax.grad(f)(x, trainable), jax.grad(penalty)(trainable)


def numpy_attention_and_grads(q, k, v):
    """out = softmax(q k^T) v and, for loss = sum(sin(out)), dq, dk, dv (float64): the attention reference."""
    q, k, v = (t.astype("float64") for t in (q, k, v))
    logits = q @ k.transpose(0, 2, 1)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    out = a @ v
    d_out = np.cos(out)
    d_a = d_out @ v.transpose(0, 2, 1)
    d_logits = a * (d_a - (d_a * a).sum(-1, keepdims=True))  # the softmax Jacobian, written out
    return out, d_logits @ k, d_logits.transpose(0, 2, 1) @ q, a.transpose(0, 2, 1) @ d_out
