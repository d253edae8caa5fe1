"""The SAGAN train step on torch, in Keras' pattern for torch (keras-io's "custom train step in PyTorch").

Each update is `zero_grad`, a forward pass recorded by autograd, `backward`, then
`optimizer.apply(grads, variables)` under `torch.no_grad()`. Spectral-norm `u` and BatchNorm
statistics are assigned by the layers during the forward pass, and Keras' torch variables assign
under `torch.no_grad()`, so neither enters autograd; the EMA update runs under `torch.no_grad()`.

Same semantics as `step_tensorflow.TensorFlowStep` and `step_jax.JaxStep`, update for update:
`d_steps` D updates on the same real batch with fresh noise, fakes generated outside autograd
(`torch.no_grad()`: no G backward and no G graph held), the WGAN-GP penalty inside the D loss (its
forward advances D's `u` once more, after the main forward), then one G update that runs D in
training mode too, then EMA. `backward(inputs=...)` accumulates gradients only into the network
being updated: the G update back-propagates through D to the images but computes no D weight
gradients, as `tape.gradient` of G's variables does on TensorFlow.
"""

import torch
from keras import ops

from keras_sagan.training.losses import discriminator_loss


def _gradients(model, loss, variables):
    """`zero_grad`, `loss.backward()` into `variables` only, and their gradients."""
    model.zero_grad()
    parameters = [variable.value for variable in variables]
    loss.backward(inputs=parameters)
    return [parameter.grad for parameter in parameters]


class TorchStep:
    """`train_step(data)` for `SAGAN` on torch."""

    def _configure_step(self, jit):
        return False  # resolve_jit_compile refuses True on torch: the step runs eagerly.

    def _discriminator_update(self, real, real_labels, global_batch):
        discriminator = self.discriminator
        local_batch = real.shape[0]
        z, fake_labels = self._sample_noise(local_batch)
        with torch.no_grad():  # outside autograd: no G backward
            fake = self._generate(z, fake_labels, training=True)
        alpha = self._interpolation_weights(local_batch)

        def critic(images, labels, state):
            return self._discriminate(images, labels, training=True), state

        per_example, real_logits, fake_logits, _ = discriminator_loss(
            critic, self.d_loss_fn, self.gp_weight, real, real_labels, fake, fake_labels, alpha
        )
        loss = self.d_optimizer.scale_loss(ops.sum(per_example) / global_batch)
        grads = _gradients(self, loss, discriminator.trainable_variables)
        with torch.no_grad():
            self.d_optimizer.apply(grads, discriminator.trainable_variables)
        return tuple(ops.mean(value).detach() for value in (per_example, real_logits, fake_logits))

    def _generator_update(self, local_batch, global_batch):
        z, labels = self._sample_noise(local_batch)
        fake = self._generate(z, labels, training=True)
        fake_logits = self._discriminate(fake, labels, training=True)
        per_example = self.g_loss_fn(fake_logits)
        loss = self.g_optimizer.scale_loss(ops.sum(per_example) / global_batch)
        grads = _gradients(self, loss, self.generator.trainable_variables)
        with torch.no_grad():
            self.g_optimizer.apply(grads, self.generator.trainable_variables)
        return ops.mean(per_example).detach()

    def train_step(self, data):
        real, real_labels = self._unpack(data)
        global_batch = ops.cast(real.shape[0] * self._num_replicas(), "float32")
        for _ in range(self.d_steps):
            d_loss, d_real, d_fake = self._discriminator_update(real, real_labels, global_batch)
        g_loss = self._generator_update(real.shape[0], global_batch)
        with torch.no_grad():
            if self.ema_generator is not None:
                self._update_ema()
            return self._record(d_loss, g_loss, d_real, d_fake)
