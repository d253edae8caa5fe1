"""The SAGAN train step on TensorFlow: `tf.GradientTape`, `tf.distribute` replicas, per-replica XLA.

`TensorFlowStep` is mixed into `SAGAN` when the Keras backend is TensorFlow (`sagan._step_class`).
`step_jax.JaxStep` is the same step in Keras' stateless JAX pattern; both have the semantics that
`SAGAN`'s docstring states, and `tests/cross_backend/test_cross_backend.py`
(`test_one_sagan_step_from_the_same_state_and_noise_gives_the_same_weights`) checks they give the same weights from
the same state and noise.
"""

import tensorflow as tf
from keras import ops

from keras_sagan.backend import tensorflow as tf_backend
from keras_sagan.training.losses import discriminator_loss


class TensorFlowStep:
    """`train_step(data)` for `SAGAN` on TensorFlow."""

    def _configure_step(self, jit):
        """Sets the gradient functions for `jit`; returns the `jit_compile` for Keras' `compile`.

        Under a multi-replica strategy Keras' whole-step XLA cannot hold the gradient all-reduce, so
        only D's gradient computation (no cross-replica communication) is compiled, per replica.
        """
        per_replica_xla = jit and tf.distribute.get_strategy().num_replicas_in_sync > 1
        self._d_gradients = self._discriminator_gradients
        self._g_gradients = self._generator_gradients
        if per_replica_xla:
            self._d_gradients = tf.function(self._discriminator_gradients, jit_compile=True)
        return jit and not per_replica_xla

    def _discriminator_gradients(self, real, real_labels, fake, fake_labels, alpha, global_batch):
        def critic(images, labels, state):
            return self._discriminate(images, labels, training=True), state

        with tf.GradientTape() as tape:
            per_example, real_logits, fake_logits, _ = discriminator_loss(
                critic, self.d_loss_fn, self.gp_weight, real, real_labels, fake, fake_labels, alpha
            )
            loss = self.d_optimizer.scale_loss(ops.sum(per_example) / global_batch)
        grads = tape.gradient(loss, self.discriminator.trainable_variables)
        return grads, ops.mean(per_example), ops.mean(real_logits), ops.mean(fake_logits)

    def _generator_gradients(self, z, labels, global_batch):
        with tf.GradientTape() as tape:
            fake = self._generate(z, labels, training=True)
            fake_logits = self._discriminate(fake, labels, training=True)
            per_example = self.g_loss_fn(fake_logits)
            loss = self.g_optimizer.scale_loss(ops.sum(per_example) / global_batch)
        grads = tape.gradient(loss, self.generator.trainable_variables)
        return grads, ops.mean(per_example)

    def train_step(self, data):
        real, real_labels = self._unpack(data)
        local_batch = real.shape[0] if real.shape[0] is not None else ops.shape(real)[0]
        global_batch = ops.cast(local_batch * self._num_replicas(), "float32")

        for _ in range(self.d_steps):
            z, fake_labels = self._sample_noise(local_batch)
            fake = self._generate(z, fake_labels, training=True)  # outside the tape: no G backward
            alpha = self._interpolation_weights(local_batch)
            d_grads, d_loss, d_real, d_fake = self._d_gradients(
                real, real_labels, ops.stop_gradient(fake), fake_labels, alpha, global_batch
            )
            self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_variables))

        z, fake_labels = self._sample_noise(local_batch)
        g_grads, g_loss = self._g_gradients(z, fake_labels, global_batch)
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_variables))
        if self.ema_generator is not None:
            self._update_ema()

        logs = self._record(d_loss, g_loss, d_real, d_fake)
        if tf_backend.in_multi_worker_mode():
            # Keras 3.15 reduces each log across workers with
            # strategy.reduce("MEAN", value, axis=0), which fails on scalars
            # ("Invalid reduction dimension 0"; tensorflow/tensorflow#72388).
            # One axis of length 1 makes that reduction the global mean.
            logs = {key: ops.reshape(value, (1,)) for key, value in logs.items()}
        return logs
