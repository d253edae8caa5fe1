import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import assert_config_round_trip, assert_keras_save_load

import keras_sagan
from keras_sagan.models import Discriminator, Generator
from keras_sagan.models.discriminator import leaky_relu_0_1


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_celeba64_matches_the_pytorch_reference():
    generator = keras_sagan.build_generator("celeba64")
    discriminator = keras_sagan.build_discriminator("celeba64")
    assert _trainable(generator) == 3_832_885
    assert _trainable(discriminator) == 3_175_299
    z = np.random.default_rng(0).normal(size=(2, 128)).astype("float32")
    images, g_maps = generator(z, training=False, return_attention=True)
    assert images.shape == (2, 64, 64, 3)
    assert [tuple(m.shape) for m in g_maps] == [(2, 256, 256), (2, 1024, 1024)]
    logits, d_maps = discriminator(images, training=False, return_attention=True)
    assert logits.shape == (2,)
    assert [tuple(m.shape) for m in d_maps] == [(2, 64, 64), (2, 16, 16)]
    assert all(layer.variant == "reference" for layer in generator.attention_layers)
    assert float(np.abs(images).max()) <= 1.0


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_shapes_for_every_architecture_and_size(architecture, image_size):
    generator = Generator(image_size=image_size, z_dim=16, conv_dim=8, architecture=architecture)
    discriminator = Discriminator(image_size=image_size, conv_dim=8, architecture=architecture)
    images = generator(np.zeros((2, 16), "float32"), training=True)
    assert images.shape == (2, image_size, image_size, 3)
    assert discriminator(images, training=True).shape == (2,)
    assert len(generator.attention_layers) == (2 if architecture == "dcgan" else 1)


@pytest.mark.parametrize("preset, overrides", [("cifar10_32", {}), ("cifar10_32", {"num_classes": 10})])
def test_cifar_preset_shapes_and_conditioning(preset, overrides):
    generator = keras_sagan.build_generator(preset, conv_dim=8, **overrides)
    discriminator = keras_sagan.build_discriminator(preset, conv_dim=8, **overrides)
    z = np.random.default_rng(1).normal(size=(2, 128)).astype("float32")
    labels = np.array([0, 9]) if overrides else None
    images = generator(z, labels, training=False)
    assert images.shape == (2, 32, 32, 3)
    assert discriminator(images, labels, training=False).shape == (2,)
    if overrides:  # the label changes both networks' outputs
        other = generator(z, np.array([5, 5]), training=False)
        discriminator.projection.layer.embeddings.assign(
            np.random.default_rng(2).normal(size=discriminator.projection.layer.embeddings.shape)
        )
        class_gamma = generator.stages[0].bn1.class_gamma
        class_gamma.assign(np.random.default_rng(3).normal(size=class_gamma.shape))
        assert not np.allclose(generator(z, labels, training=False), other)
        assert not np.allclose(
            discriminator(images, labels, training=False), discriminator(images, np.array([5, 5]), training=False)
        )


def test_imagenet128_preset_is_conditional_at_128():
    generator = keras_sagan.build_generator("imagenet128", conv_dim=8)
    discriminator = keras_sagan.build_discriminator("imagenet128", conv_dim=8)
    assert generator.num_classes == discriminator.num_classes == 1000
    images = generator(np.zeros((1, 128), "float32"), np.array([999]), training=False)
    assert images.shape == (1, 128, 128, 3)
    assert discriminator(images, np.array([999]), training=False).shape == (1,)
    assert keras_sagan.models.presets.preset_config("imagenet128", "generator")["conv_dim"] == 64


def test_list_presets():
    presets = keras_sagan.list_presets()
    assert {"celeba64", "cifar10_32", "imagenet128"} <= set(presets)
    assert all(isinstance(p["description"], str) and p["description"] for p in presets.values())
    assert (
        presets["celeba64"]["architecture"] == "dcgan 64x64, conv_dim 64, z_dim 128, reference attention, unconditional"
    )


def test_attention_placement_is_a_parameter():
    generator = Generator(image_size=32, z_dim=8, conv_dim=8, attention_resolutions=(4,))
    _, maps = generator(np.zeros((1, 8), "float32"), return_attention=True)
    assert [tuple(m.shape) for m in maps] == [(1, 16, 4)]  # 4x4 queries, pooled 2x2 keys
    assert Generator(image_size=32, z_dim=8, conv_dim=8, attention_resolutions=()).attention_layers == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Generator(image_size=48), r"`image_size` must be one of \(32, 64, 128\); received: image_size=48$"),
        (lambda: Discriminator(image_size=256), "`image_size` must be one of .*; received: image_size=256$"),
        (lambda: Generator(architecture="vgg"), "`architecture` must be one of .*; received: architecture='vgg'$"),
        (lambda: Generator(conv_dim=0), "`conv_dim` must be an int >= 1; received: conv_dim=0$"),
        (
            lambda: Generator(attention_resolutions=(64,)),
            r"`attention_resolutions` must be .* from \(4, 8, 16, 32\); received: attention_resolutions=\(64,\)$",
        ),
        (lambda: Discriminator(attention_resolutions=(2,)), "received: attention_resolutions=\\(2,\\)$"),
        (lambda: Generator(num_classes=10), "`num_classes` must be None with architecture='dcgan'.*num_classes=10$"),
        (
            lambda: keras_sagan.build_generator("celeba128"),
            r"`preset` must be one of \['celeba64', 'cifar10_32', 'fashion_mnist32', 'imagenet128'\]; "
            r"received: preset='celeba128'$",
        ),
        (lambda: Generator(z_dim=0), "`z_dim` must be an int >= 1; received: z_dim=0$"),
        (
            lambda: keras_sagan.build_discriminator("celeba64", z_dim=16),
            "`z_dim` must be left out: the discriminator has no noise input .*; received: z_dim=16$",
        ),
    ],
)
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def test_build_sagan_gives_z_dim_to_the_generator_only():
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, z_dim=16)
    assert gan.generator.z_dim == 16  # And no error: build_discriminator refuses z_dim.


def test_a_repeated_attention_resolution_is_one_layer():
    generator = Generator(image_size=32, z_dim=8, conv_dim=8, attention_resolutions=(8, 8))
    generator(np.zeros((2, 8), "float32"), training=False)
    assert len(generator.attention_layers) == 1 and all(layer.built for layer in generator.attention_layers)
    discriminator = Discriminator(image_size=32, conv_dim=8, attention_resolutions=(8, 8))
    discriminator(np.zeros((2, 32, 32, 3), "float32"), training=False)
    assert len(discriminator.attention_layers) == 1


def test_build_checks_the_given_input_shape():
    generator = Generator(image_size=32, z_dim=8, conv_dim=8)
    generator.build((None, 8))  # the batch may be unknown
    assert generator.built
    with pytest.raises(ValueError, match=r"^`z` must have shape \(batch, 8\); received: z.shape=\(2, 9\)$"):
        Generator(image_size=32, z_dim=8, conv_dim=8).build((2, 9))
    with pytest.raises(ValueError, match=r"received: z.shape=\(2, 8, 1\)$"):
        Generator(image_size=32, z_dim=8, conv_dim=8).build((2, 8, 1))
    with pytest.raises(ValueError, match=r"^`images` must have shape \(batch, 32, 32, 3\); received: images.shape"):
        Discriminator(image_size=32, conv_dim=8).build((2, 64, 64, 3))


def test_bad_call_inputs():
    generator = Generator(image_size=32, z_dim=8, conv_dim=8)
    with pytest.raises(ValueError, match=r"`z` must have shape \(batch, 8\); received: z.shape=\(2, 9\)"):
        generator(np.zeros((2, 9), "float32"))
    with pytest.raises(
        ValueError, match=r"`labels` must be None for the unconditional Generator .*labels.shape=\(2,\)"
    ):
        generator(np.zeros((2, 8), "float32"), np.array([0, 1]))
    conditional = Generator(image_size=32, z_dim=8, conv_dim=8, architecture="resnet", num_classes=3)
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, 3\); received: labels from 0 to 3"):
        conditional(np.zeros((2, 8), "float32"), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"`labels` must be given: .*num_classes=3\); received: labels=None"):
        conditional(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(batch,\); received: labels.shape=\(2, 1\)"):
        conditional(np.zeros((2, 8), "float32"), np.array([[0], [1]]))
    discriminator = Discriminator(image_size=32, conv_dim=8)
    with pytest.raises(ValueError, match=r"`images` must have shape \(batch, 32, 32, 3\); received: images.shape"):
        discriminator(np.zeros((2, 64, 64, 3), "float32"))


@pytest.mark.parametrize("architecture, num_classes", [("dcgan", None), ("resnet", 4)])
def test_config_round_trip_and_keras_save_load(architecture, num_classes, tmp_path):
    generator = Generator(image_size=32, z_dim=8, conv_dim=8, architecture=architecture, num_classes=num_classes)
    discriminator = Discriminator(image_size=32, conv_dim=8, architecture=architecture, num_classes=num_classes)
    generator.build()
    discriminator.build()
    z = np.random.default_rng(4).normal(size=(3, 8)).astype("float32")
    labels = None if num_classes is None else np.array([0, 1, 3])
    # A training call moves u and the BatchNorm statistics off their initial values.
    images = generator(z, labels, training=True)
    discriminator(images, labels, training=True)
    assert_config_round_trip(generator)
    assert_config_round_trip(discriminator)
    inputs_g = (z,) if labels is None else (z, labels)
    inputs_d = (images,) if labels is None else (images, labels)
    assert_keras_save_load(generator, inputs_g, tmp_path)
    assert_keras_save_load(discriminator, inputs_d, tmp_path)


@pytest.mark.tensorflow
def test_checkpoint_restores_every_variable(tmp_path):
    generator = Generator(image_size=32, z_dim=8, conv_dim=8)
    generator.build()
    generator(np.ones((2, 8), "float32"), training=True)
    saved = {w.path: w.numpy() for w in generator.weights}
    path = tf.train.Checkpoint(generator=generator).save(str(tmp_path / "ckpt"))
    for w in generator.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    tf.train.Checkpoint(generator=generator).restore(path).assert_consumed()
    assert len(saved) == len(generator.weights) > 20
    for w in generator.weights:
        np.testing.assert_array_equal(w.numpy(), saved[w.path])


def test_fit_one_step_on_generator():
    generator = Generator(image_size=32, z_dim=8, conv_dim=8)
    generator.build()
    generator.compile(optimizer="adam", loss="mse")
    before = [w.numpy() for w in generator.trainable_weights]
    generator.fit(np.ones((4, 8), "float32"), np.zeros((4, 32, 32, 3), "float32"), epochs=1, verbose=0)
    assert before and all(not np.array_equal(b, w.numpy()) for b, w in zip(before[:4], generator.trainable_weights))
    assert keras.config.dtype_policy().name == "float32"


def test_discriminator_leaky_relu_is_slope_0_1():
    x = np.linspace(-3, 3, 13).astype("float32")
    np.testing.assert_allclose(leaky_relu_0_1(x), np.where(x > 0, x, 0.1 * x), rtol=1e-6)


@pytest.mark.tensorflow
def test_traced_discriminator_gradient_keeps_grappler_quiet(capfd):
    # TF 2.21's remapper failed on conv + BiasAdd + LeakyRelu feeding the
    # attention matmul and logged an error for every traced train step.
    d = Discriminator(image_size=32, conv_dim=16, attention_resolutions=[4])
    x = tf.random.normal((2, 32, 32, 3))

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(d(x, training=True))
        return tape.gradient(loss, d.trainable_variables)

    gradients()
    assert "remapper failed" not in capfd.readouterr().err


def test_blocks_follow_the_architecture_tables():
    # The reference's 64x64 channels: G 512 -> 256 -> 128 -> 64 -> RGB, D 64 -> 128 -> 256 -> 512.
    generator = keras_sagan.build_generator("celeba64")
    discriminator = keras_sagan.build_discriminator("celeba64")
    assert generator.initial.layers[0].layer.filters == 512
    assert [block.layers[0].layer.filters for block in generator.stages] == [256, 128, 64]
    assert [block.layers[0].layer.filters for block in discriminator.stages] == [64, 128, 256, 512]
    resnet = Discriminator(image_size=32, conv_dim=8, architecture="resnet", attention_resolutions=(8,))
    assert [(block.filters, block.downsample) for block in resnet.stages] == [
        (32, True),
        (32, True),
        (32, False),
        (32, False),
    ]
    # Three blocks output 8x8 maps; attention runs once, after the first of them.
    _, maps = resnet(np.zeros((1, 32, 32, 3), "float32"), return_attention=True)
    assert [tuple(m.shape) for m in maps] == [(1, 64, 16)]


def test_named_blocks_are_the_checkpoint_names():
    generator = Generator(image_size=32, z_dim=8, conv_dim=8)
    discriminator = Discriminator(image_size=32, conv_dim=8, architecture="resnet", num_classes=2)
    assert list(generator.named_blocks()) == ["initial", "up0", "up1", "attention_8", "attention_16", "to_rgb"]
    assert generator.named_blocks()["up1"] is generator.stages[1]
    assert list(discriminator.named_blocks()) == [
        "down0",
        "down1",
        "down2",
        "down3",
        "attention_16",
        "logit",
        "projection",
    ]


def test_loading_another_architectures_weights_names_the_first_mismatching_layer(tmp_path):
    path = str(tmp_path / "small.weights.h5")
    keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8, z_dim=16).save_weights(path)
    bigger = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8, z_dim=32)
    with pytest.raises(
        ValueError, match=r"small.weights.h5 does not hold weights of this Generator .*: Layer '"
    ) as err:
        bigger.load_weights(path)
    assert "\n" not in str(err.value)
    same = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8, z_dim=16)
    same.load_weights(path)  # the matching architecture still loads


# -- channels: grey (1) or RGB (3) images


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_grey_networks_make_and_take_one_channel(architecture):
    kwargs = dict(image_size=32, conv_dim=8, architecture=architecture, channels=1)
    g = keras_sagan.Generator(z_dim=16, **kwargs)
    d = keras_sagan.Discriminator(**kwargs)
    images = g(np.random.default_rng(0).standard_normal((2, 16)).astype("float32"), training=False)
    assert tuple(images.shape) == (2, 32, 32, 1)
    assert tuple(d(images, training=False).shape) == (2,)
    rgb = keras_sagan.Generator(z_dim=16, **{**kwargs, "channels": 3})
    rgb.build()
    g.build()

    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    # Only the last conv depends on the channel count: 2 fewer output maps of (k*k*C_in) weights + bias.
    last = g.to_rgb.layer if hasattr(g.to_rgb, "layer") else g.to_rgb
    inputs = last.kernel.shape[-2 if architecture == "resnet" else -1]  # Conv2D (k,k,in,out); transposed (k,k,out,in)
    per_channel = int(np.prod(last.kernel.shape[:-2])) * inputs
    assert trainable(rgb) - trainable(g) == 2 * (per_channel + 1)


def test_channels_round_trip_and_old_configs_mean_rgb():
    g = keras_sagan.Generator(image_size=32, conv_dim=8, z_dim=16, channels=1)
    config = g.get_config()
    assert config["channels"] == 1
    assert keras_sagan.Generator.from_config(config).channels == 1
    del config["channels"]  # a config written before the argument existed
    assert keras_sagan.Generator.from_config(config).channels == 3


@pytest.mark.parametrize("cls", ["Generator", "Discriminator"])
def test_bad_channels_is_one_line(cls):
    with pytest.raises(ValueError, match=r"`channels`.*one of \(1, 3\).*received: channels=2"):
        getattr(keras_sagan, cls)(image_size=32, conv_dim=8, channels=2)


def test_sagan_refuses_networks_of_different_channels():
    g = keras_sagan.Generator(image_size=32, conv_dim=8, z_dim=16, channels=1)
    d = keras_sagan.Discriminator(image_size=32, conv_dim=8, channels=3)
    with pytest.raises(ValueError, match="discriminator.channels"):
        keras_sagan.SAGAN(g, d)
