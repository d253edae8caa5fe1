"""The SAGAN keras.Model: adversarial training with a custom train_step.

It owns the paper's TTUR optimizer defaults (`TTUR`), the training step, and the answer to
"which generator samples": `sampling_generator()` (the EMA generator when there is one).
"""

import types

import keras
from keras import ops

from keras_sagan import backend
from keras_sagan.errors import bad_value
from keras_sagan.models.batch_norm_statistics import recalibrate
from keras_sagan.models.presets import build_discriminator, build_generator, load_preset_networks
from keras_sagan.training.losses import LOSSES


def _step_class():
    """The train-step mixin of the running backend's gradients (`backend.train_step_style`)."""
    style = backend.train_step_style()
    if style == "stateless":
        from keras_sagan.training.step_jax import JaxStep

        return JaxStep
    if style == "autograd":
        from keras_sagan.training.step_torch import TorchStep

        return TorchStep
    from keras_sagan.training.step_tensorflow import TensorFlowStep

    return TensorFlowStep


# The EMA generator's BatchNorm statistics when it samples: "standing" (re-estimated on its own
# weights) or "moving" (the live generator's, copied by the EMA update). BUILD.md "Sampling defaults".
EMA_STATISTICS = ("standing", "moving")
# Standing statistics average this many batches of this size (the defaults measured in BUILD.md).
STANDING_BATCHES = 100
STANDING_BATCH_SIZE = 64

TTUR = types.MappingProxyType({"g_lr": 1e-4, "d_lr": 4e-4, "beta1": 0.0, "beta2": 0.9})
"""The paper's two time-scale update rule: Adam learning rates of G and D, and Adam's betas.

The paper states beta_2 = 0.9; Google's released code runs 0.999.
"""


def default_g_optimizer():
    """Adam(1e-4, beta_1=0, beta_2=0.9): the paper's TTUR generator optimizer (`TTUR`)."""
    return keras.optimizers.Adam(TTUR["g_lr"], beta_1=TTUR["beta1"], beta_2=TTUR["beta2"])


def default_d_optimizer():
    """Adam(4e-4, beta_1=0, beta_2=0.9): the paper's TTUR discriminator optimizer (`TTUR`)."""
    return keras.optimizers.Adam(TTUR["d_lr"], beta_1=TTUR["beta1"], beta_2=TTUR["beta2"])


def resolve_jit_compile(jit_compile):
    """The XLA setting the step runs with: on TensorFlow, `"auto"` means on with a GPU, off on CPU.

    On a 2-core CPU XLA measured slower with TensorFlow (transposed convs and attention), so CPU
    stays off by default there; see BUILD.md's performance section. On JAX the step is always
    XLA-compiled (`jax.jit`): `"auto"` and `True` mean that, and `False` is refused (use
    `run_eagerly=True` to debug). On torch the step runs eagerly: `"auto"` and `False` mean that,
    and `True` (`torch.compile`) is refused.
    """
    if jit_compile != "auto" and not isinstance(jit_compile, bool):
        raise ValueError(bad_value("jit_compile", jit_compile, 'True, False or "auto"'))
    compilation = backend.step_compilation()
    if compilation == "always":
        if jit_compile is False:
            raise ValueError(bad_value("jit_compile", jit_compile, 'True or "auto" on JAX (its step is always jitted)'))
        return True
    if compilation == "never":
        if jit_compile is True:
            raise ValueError(bad_value("jit_compile", jit_compile, 'False or "auto" on torch (its step runs eagerly)'))
        return False
    if jit_compile == "auto":
        return backend.gpu_available()
    return jit_compile


@keras.saving.register_keras_serializable(package="keras_sagan")
class SAGAN(_step_class(), keras.Model):
    """Trains a Generator against a Discriminator with `fit()`.

    Each `train_step` runs `d_steps` discriminator updates, then one generator
    update. Every discriminator update sees the *same* real batch (the one
    `fit()` delivered) and a fresh draw of `z` (and fake labels). Fakes for
    the D update are generated outside the gradient tape, so no gradient is
    back-propagated into G during the D step (the PyTorch reference wastes a
    full G backward there). Real and fake images go through D as one
    concatenated batch.

    G runs with `training=True` in every D step too (as in the reference), so
    its BatchNorm moving statistics and spectral-norm `u` advance `d_steps + 1`
    times per train step; with WGAN-GP, D's `u` advances once more per D step
    in the penalty's forward pass.

    Under `tf.distribute`, noise is drawn for the global batch and each
    replica takes its own slice, losses are divided by the global batch, and
    BatchNorm statistics are synchronised: one step on N replicas equals one
    step on one device with the same global batch. This assumes every replica
    gets the same number of examples: batch datasets with
    `drop_remainder=True` (the `keras_sagan.data` pipelines do). Under
    `keras.distribution.DataParallel` on JAX, the step is one program over
    global arrays, so the same holds with nothing to do.

    The step itself is backend-specific (`step_tensorflow.TensorFlowStep`:
    `tf.GradientTape`; `step_jax.JaxStep`: Keras' stateless JAX trainer
    pattern) and has the same semantics on both; everything else is here.

    Args:
        generator: `Generator`.
        discriminator: `Discriminator` for the same image size and classes.
        seed: int or None. Seeds the `keras.random.SeedGenerator` that draws
            `z`, fake labels and the WGAN-GP interpolation.

    Call arguments:
        z: `(B, z_dim)` noise; `labels` too for a conditional model. Returns
            generator images with `training=False`.

    Example:

    >>> gan = keras_sagan.build_sagan("celeba64")
    >>> gan.compile()
    >>> gan.fit(dataset_of_images, epochs=1)

    Reference:
        Zhang et al., "Self-Attention Generative Adversarial Networks", 2019.
    """

    def __init__(self, generator, discriminator, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name in ("image_size", "num_classes", "channels"):
            expected = getattr(generator, name)
            if getattr(discriminator, name) != expected:
                received = getattr(discriminator, name)
                raise ValueError(bad_value(f"discriminator.{name}", received, f"the generator's {name} ({expected})"))
        self.generator = generator
        self.discriminator = discriminator
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.ema_generator = None
        self.ema_statistics = "standing"  # set by compile(); a preset's EMA generator samples the same way
        self._standing_step = None
        self.g_optimizer = self.d_optimizer = None  # set by compile()
        # Variables must exist before fit() traces the step (and, under a
        # strategy, inside its scope): build both networks now.
        if not generator.built:
            generator.build()
        if not discriminator.built:
            discriminator.build()
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.built = True

    @property
    def num_classes(self):
        return self.generator.num_classes

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    def compile(
        self,
        g_optimizer=None,
        d_optimizer=None,
        loss="hinge",
        d_steps=1,
        ema_decay=None,
        gp_weight=None,
        jit_compile="auto",
        ema_statistics="standing",
        **kwargs,
    ):
        """Configures training.

        Args:
            g_optimizer: optimizer for G. Defaults to Adam(1e-4, 0, 0.9).
            d_optimizer: optimizer for D. Defaults to Adam(4e-4, 0, 0.9).
            loss: str. `"hinge"` (the paper's), `"non-saturating"` or
                `"wgan-gp"`. Defaults to `"hinge"`.
            d_steps: int >= 1. D updates per G update. Defaults to `1`.
            ema_decay: float in [0, 1) or None. Keep an exponential moving
                average of G's weights in `ema_generator`. Defaults to `None`.
            ema_statistics: str. The BatchNorm statistics the EMA generator
                samples with. `"standing"` (default): re-estimated on the EMA
                weights themselves (`models.batch_norm_statistics.recalibrate`,
                100 batches of 64 noise vectors) whenever `sampling_generator()`
                is asked for at a new step, so grids, evaluation, checkpoints
                and exports all get them. `"moving"`: the live generator's
                moving statistics, copied every step (gathered on other weights;
                7-10% worse FID in BUILD.md's "Sampling defaults" table).
            gp_weight: float. WGAN-GP penalty weight, added to the D loss in
                the same optimizer step; only valid with `"wgan-gp"`.
                Defaults to `10.0` there.
            jit_compile: bool or `"auto"`. On TensorFlow: XLA-compile the
                train step; `"auto"` is on with a GPU, off on CPU. Under a
                multi-replica strategy Keras' whole-step XLA cannot hold the
                gradient all-reduce, so only D's gradient computation (no
                cross-replica communication) is compiled, per replica; G's
                synchronised BatchNorm keeps its step out of XLA. On JAX the
                step is always jitted: `"auto"` or `True`; `False` is refused.
        """
        if loss not in LOSSES:
            raise ValueError(bad_value("loss", loss, f"one of {sorted(LOSSES)}"))
        if not isinstance(d_steps, int) or isinstance(d_steps, bool) or d_steps < 1:
            raise ValueError(bad_value("d_steps", d_steps, "an int >= 1"))
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(bad_value("ema_decay", ema_decay, "None or in [0, 1)"))
        if gp_weight is not None and loss != "wgan-gp":
            raise ValueError(
                bad_value("gp_weight", gp_weight, f'None with loss={loss!r} (it is the "wgan-gp" penalty)')
            )
        if gp_weight is not None and gp_weight < 0:
            raise ValueError(bad_value("gp_weight", gp_weight, ">= 0"))
        if ema_statistics not in EMA_STATISTICS:
            raise ValueError(bad_value("ema_statistics", ema_statistics, f"one of {list(EMA_STATISTICS)}"))
        jit = resolve_jit_compile(jit_compile)
        policy = keras.config.dtype_policy().name
        if policy == "mixed_float16" and not backend.supports_mixed_float16():
            raise ValueError(bad_value("dtype policy", policy, 'not "mixed_float16" on JAX (use "mixed_bfloat16")'))

        g_optimizer = g_optimizer or default_g_optimizer()
        d_optimizer = d_optimizer or default_d_optimizer()
        if keras.config.dtype_policy().name == "mixed_float16":
            # float16 gradients underflow without loss scaling; the wrapper
            # scales the loss (scale_loss in the step) and skips steps whose
            # gradients overflow.
            if not isinstance(g_optimizer, keras.optimizers.LossScaleOptimizer):
                g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
            if not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_name = loss
        self.d_loss_fn, self.g_loss_fn = LOSSES[loss]
        self.d_steps = d_steps
        self.ema_decay = ema_decay
        self.ema_statistics = ema_statistics
        self.gp_weight = (10.0 if loss == "wgan-gp" else 0.0) if gp_weight is None else float(gp_weight)
        # Optimizers are built here, inside the caller's strategy scope.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        if ema_decay is None:
            self.ema_generator = None  # a recompile without EMA drops an earlier one
        elif self.ema_generator is None:
            self._standing_step = None  # a new EMA generator: its statistics are the live one's
            self.ema_generator = self.generator.__class__.from_config(self.generator.get_config())
            self.ema_generator.build()
            self.ema_generator.trainable = False
            for ema_weight, weight in zip(self.ema_generator.weights, self.generator.weights):
                # A copy: on JAX, assigning shares the immutable buffer, and fit() donates each
                # state buffer once.
                ema_weight.assign(ops.copy(weight))
        # D's optimizer state is tracked as model variables, so Keras' stateless JAX trainer
        # carries it through the step with the rest (it carries only `optimizer`'s own).
        self.d_optimizer_variables = list(self.d_optimizer.variables)
        # g_optimizer doubles as Keras' `optimizer`, so `model.optimizer.iterations`
        # counts generator steps (= train steps) for callbacks.
        super().compile(optimizer=self.g_optimizer, jit_compile=self._configure_step(jit), **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy, Keras' fit() pulls one batch from a first iterator
        # to build the model symbolically, then trains from a second one, so a
        # shuffled pipeline moves on and N replicas would train on other
        # batches than one device. Everything here is built in __init__ and
        # compile, so there is nothing to build.
        return

    def call(self, z, labels=None, training=False):
        # Keras needs a `call` for `__call__`; generation has one path, `_generate`.
        return self._generate(z, labels, training=training)

    # -- sampling ---------------------------------------------------------

    def _replica_slice(self, global_values, local_batch):
        # Only a tf.distribute replica keeps a slice; elsewhere the noise is the global batch.
        if self._num_replicas() == 1:
            return global_values
        from keras_sagan.backend import tensorflow as tf_backend

        return tf_backend.replica_slice(global_values, local_batch)

    def _num_replicas(self):
        return backend.num_replicas_in_sync()

    def _sample_noise(self, local_batch):
        global_batch = local_batch * self._num_replicas()
        z = keras.random.normal((global_batch, self.generator.z_dim), seed=self.seed_generator)
        labels = None
        if self.num_classes is not None:
            labels = keras.random.randint((global_batch,), 0, self.num_classes, seed=self.seed_generator)
            labels = self._replica_slice(labels, local_batch)
        return self._replica_slice(z, local_batch), labels

    def _generate(self, z, labels, training):
        if labels is None:
            return self.generator(z, training=training)
        return self.generator(z, labels, training=training)

    def _discriminate(self, images, labels, training):
        if labels is None:
            return self.discriminator(images, training=training)
        return self.discriminator(images, labels, training=training)

    # -- what both backends' train steps share ---------------------------------

    def _unpack(self, data):
        """`(real images as float32, labels or None)` of a batch, checked against `num_classes`."""
        real, real_labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if (real_labels is None) != (self.num_classes is None):
            expected = "(images, labels) pairs" if self.num_classes else "images only, without labels"
            received = "images without labels" if real_labels is None else "(images, labels) pairs"
            raise ValueError(f"`data` must be {expected} for num_classes={self.num_classes}; received: data={received}")
        return ops.cast(real, "float32"), real_labels

    def _interpolation_weights(self, local_batch):
        """WGAN-GP's `alpha` `(B, 1, 1, 1)`, drawn for the global batch (None without a penalty)."""
        if not self.gp_weight:
            return None
        alpha = keras.random.uniform((local_batch * self._num_replicas(), 1, 1, 1), seed=self.seed_generator)
        return self._replica_slice(alpha, local_batch)

    def _record(self, d_loss, g_loss, d_real, d_fake):
        """Updates the four trackers; returns the step's logs (running means and attention gammas)."""
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(d_real)
        self.d_fake_tracker.update_state(d_fake)
        logs = {m.name: m.result() for m in self.metrics}
        logs.update(self.attention_gammas())
        return logs

    def _update_ema(self):
        decay = self.ema_decay
        for ema_weight, weight in zip(self.ema_generator.weights, self.generator.weights):
            if weight.trainable:
                ema_weight.assign(decay * ema_weight + (1.0 - decay) * weight)
            else:  # BatchNorm moving statistics and SN u: copy.
                ema_weight.assign(weight)

    def attention_gammas(self):
        """`{"gamma_G16": ..., "gamma_D8": ...}`: each attention block's gamma."""
        gammas = {}
        for prefix, network in (("G", self.generator), ("D", self.discriminator)):
            for layer in network.attention_layers:
                gammas[f"gamma_{prefix}{layer.name.split('_')[-1]}"] = ops.convert_to_tensor(layer.gamma)
        return gammas

    def sampling_generator(self):
        """The generator to sample from: the EMA generator when there is one, else the generator.

        The package's one owner of that choice (sample grids, evaluation, checkpoints and export use
        it). With `ema_statistics="standing"` (the default), the EMA generator's BatchNorm moving
        statistics are first re-estimated on its own weights, once per training step that asks:
        the EMA update copies the live generator's statistics, which were gathered on other weights.
        """
        if self.ema_generator is None:
            return self.generator
        if self.ema_statistics == "standing":
            step = self.step
            if step != self._standing_step:
                recalibrate(self.ema_generator, num_batches=STANDING_BATCHES, batch_size=STANDING_BATCH_SIZE)
                self._standing_step = step
        return self.ema_generator

    @classmethod
    def from_preset(cls, preset, load_weights=True, seed=None):
        """A `SAGAN` to fine-tune from a preset with a discriminator; its EMA weights become `ema_generator`.

        Args:
            preset: str or PathLike. A registered name, a folder, `"hf://..."` or `"kaggle://..."`.
            load_weights: bool. False builds the architecture with random weights. Defaults to True.
            seed: int or None. Seeds the noise drawn during training.

        Example:

        >>> gan = keras_sagan.SAGAN.from_preset("presets/mine")  # compile(ema_decay=...) keeps its EMA generator
        """
        networks = load_preset_networks(preset, load_weights=load_weights)
        gan = cls(networks["generator"], networks["discriminator"], seed=seed)
        gan.ema_generator = networks["ema_generator"]
        if gan.ema_generator is not None:
            gan._standing_step = gan.step  # it samples with the statistics it was saved with, until training moves
        return gan

    def save_to_preset(self, preset_dir, metadata=None):
        """Writes G, its EMA copy (then `model.weights.h5`) and D as a preset; `metadata`: see `Generator`'s.

        Example:

        >>> gan.save_to_preset("presets/mine", metadata={"dataset": "Fashion-MNIST", "step": gan.step})
        """
        from keras_sagan.preset_format import save_preset  # Not at the top: h5py loads on first use.

        self.sampling_generator()  # the EMA generator is saved with the statistics it samples with
        return save_preset(preset_dir, self.generator, self.ema_generator, self.discriminator, metadata=metadata)

    @property
    def step(self):
        """int. Generator updates so far (`g_optimizer.iterations`, read so a MirroredVariable works too)."""
        return 0 if self.g_optimizer is None else int(keras.ops.convert_to_numpy(self.g_optimizer.iterations))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


def build_sagan(preset="celeba64", seed=None, **overrides):
    """Builds a `SAGAN` (generator + discriminator) from a preset.

    Args:
        preset: str. A name from `list_presets()`.
        seed: int or None. Seeds the noise drawn during training.
        **overrides: constructor arguments for both networks (`z_dim` goes to
            the generator only).

    Example:

    >>> gan = keras_sagan.build_sagan("celeba64", seed=0)
    >>> gan.compile(loss="hinge", ema_decay=0.999)
    """
    generator = build_generator(preset, **overrides)
    overrides.pop("z_dim", None)  # the discriminator has no noise input
    discriminator = build_discriminator(preset, **overrides)
    return SAGAN(generator, discriminator, seed=seed)
