"""The SAGAN train step on JAX, in Keras' stateless JAX trainer pattern.

`JaxStep.train_step(state, data)` takes the trainable, non-trainable, optimizer and metric values
and returns the logs and their new values, as Keras' JAX trainer expects; `fit()` jits it (XLA is
always on). D's optimizer state rides in the non-trainable values (`SAGAN.compile` tracks it as
model variables), and the seed generator's state is one of them too.

The body runs in one `keras.StatelessScope` over the whole state, so the shared code of the TF step
(noise draws, G's forward outside any gradient, `optimizer.apply`, EMA, trackers) reads and
"assigns" values exactly as it does on TensorFlow. Only the gradients differ: each is
`jax.value_and_grad` of a pure function built on `stateless_call`, which returns the networks'
updated non-trainable state (spectral-norm `u`, BatchNorm statistics) as aux, written back after.

Same semantics as `step_tensorflow.TensorFlowStep`, update for update: `d_steps` D updates on the
same real batch with fresh noise, fakes generated outside D's gradient, the WGAN-GP penalty inside
the D loss (its forward advances D's `u` once more, after the main forward), then one G update
that runs D in training mode too, then EMA.
"""

import jax
import keras
from keras import ops

from keras_sagan.training.losses import discriminator_loss


def _values(variables):
    """Current values of `variables` in the running `StatelessScope`."""
    return [variable.value for variable in variables]


def _assign(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


class JaxStep:
    """`train_step(state, data)` for `SAGAN` on JAX."""

    def _configure_step(self, jit):
        return True  # fit() jits the step; XLA is always on with JAX.

    def _network_call(self, network, trainable, non_trainable, inputs, labels):
        """`(outputs, new non-trainable values)` of `network` in training mode, stateless."""
        args = (inputs,) if labels is None else (inputs, labels)
        return network.stateless_call(trainable, non_trainable, *args, training=True)

    def _discriminator_update(self, real, real_labels, global_batch):
        discriminator = self.discriminator
        local_batch = real.shape[0]
        z, fake_labels = self._sample_noise(local_batch)
        fake = ops.stop_gradient(self._generate(z, fake_labels, training=True))  # outside the gradient
        alpha = self._interpolation_weights(local_batch)
        non_trainable = _values(discriminator.non_trainable_variables)

        def loss_fn(trainable):
            def critic(images, labels, state):
                return self._network_call(discriminator, trainable, state, images, labels)

            per_example, real_logits, fake_logits, state = discriminator_loss(
                critic, self.d_loss_fn, self.gp_weight, real, real_labels, fake, fake_labels, alpha, non_trainable
            )
            loss = self.d_optimizer.scale_loss(ops.sum(per_example) / global_batch)
            return loss, (per_example, real_logits, fake_logits, state)

        trainable = _values(discriminator.trainable_variables)
        (_, (per_example, real_logits, fake_logits, state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable
        )
        _assign(discriminator.non_trainable_variables, state)
        self.d_optimizer.apply(grads, discriminator.trainable_variables)
        return ops.mean(per_example), ops.mean(real_logits), ops.mean(fake_logits)

    def _generator_update(self, local_batch, global_batch):
        generator, discriminator = self.generator, self.discriminator
        z, labels = self._sample_noise(local_batch)
        g_non_trainable = _values(generator.non_trainable_variables)
        d_trainable = _values(discriminator.trainable_variables)
        d_non_trainable = _values(discriminator.non_trainable_variables)

        def loss_fn(trainable):
            fake, g_state = self._network_call(generator, trainable, g_non_trainable, z, labels)
            fake_logits, d_state = self._network_call(discriminator, d_trainable, d_non_trainable, fake, labels)
            per_example = self.g_loss_fn(fake_logits)
            loss = self.g_optimizer.scale_loss(ops.sum(per_example) / global_batch)
            return loss, (per_example, g_state, d_state)

        trainable = _values(generator.trainable_variables)
        (_, (per_example, g_state, d_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        _assign(generator.non_trainable_variables, g_state)
        _assign(discriminator.non_trainable_variables, d_state)
        self.g_optimizer.apply(grads, generator.trainable_variables)
        return ops.mean(per_example)

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_values, metric_values = state
        groups = (
            (self.trainable_variables, trainable),
            (self.non_trainable_variables, non_trainable),
            (self.optimizer.variables, optimizer_values),
            (self.metrics_variables, metric_values),
        )
        mapping = [pair for variables, values in groups for pair in zip(variables, values)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            real, real_labels = self._unpack(data)
            global_batch = ops.cast(real.shape[0] * self._num_replicas(), "float32")
            for _ in range(self.d_steps):
                d_loss, d_real, d_fake = self._discriminator_update(real, real_labels, global_batch)
            g_loss = self._generator_update(real.shape[0], global_batch)
            if self.ema_generator is not None:
                self._update_ema()
            logs = self._record(d_loss, g_loss, d_real, d_fake)
        new_state = tuple([scope.get_current_value(variable) for variable in variables] for variables, _ in groups)
        return logs, new_state
