"""Backend-neutral test helpers: gradients through a layer on TensorFlow (a tape) or JAX (`jax.grad`)."""

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
