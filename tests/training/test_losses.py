import numpy as np
from keras import ops

from keras_sagan.training import losses

REAL = np.array([2.0, 0.5, -1.0], "float32")
FAKE = np.array([-2.0, 0.0, 1.5], "float32")


def test_hinge_matches_hand_computation():
    # relu(1 - real) = [0, .5, 2]; relu(1 + fake) = [0, 1, 2.5]
    np.testing.assert_allclose(losses.hinge_discriminator_loss(REAL, FAKE), [0.0, 1.5, 4.5])
    np.testing.assert_allclose(losses.hinge_generator_loss(FAKE), [2.0, 0.0, -1.5])


def test_non_saturating_matches_log_sigmoid():
    sigmoid = 1 / (1 + np.exp(-REAL.astype("float64")))
    fake_sigmoid = 1 / (1 + np.exp(-FAKE.astype("float64")))
    expected = -np.log(sigmoid) - np.log(1 - fake_sigmoid)
    np.testing.assert_allclose(losses.non_saturating_discriminator_loss(REAL, FAKE), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.non_saturating_generator_loss(FAKE), -np.log(fake_sigmoid), rtol=1e-5)


def test_wasserstein():
    np.testing.assert_allclose(losses.wasserstein_discriminator_loss(REAL, FAKE), FAKE - REAL)
    np.testing.assert_allclose(losses.wasserstein_generator_loss(FAKE), -FAKE)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = sum(w * x) has gradient w everywhere: penalty = (||w|| - 1)^2.
    w = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype("float32")

    def critic(x):
        return ops.sum(x * ops.convert_to_tensor(w), axis=(1, 2, 3))  # a tensor: torch's x * ndarray leaves autograd

    real = np.zeros((2, 4, 4, 3), "float32")
    fake = np.ones((2, 4, 4, 3), "float32")
    alpha = np.array([0.2, 0.7], "float32").reshape(2, 1, 1, 1)
    expected = (np.linalg.norm(w) - 1.0) ** 2
    np.testing.assert_allclose(losses.gradient_penalty(critic, real, fake, alpha), [expected] * 2, rtol=1e-5)
    # With aux (JAX's stateless step returns D's new state through it):
    penalties, aux = losses.gradient_penalty(lambda x: (critic(x), "state"), real, fake, alpha, has_aux=True)
    np.testing.assert_allclose(penalties, [expected] * 2, rtol=1e-5)
    assert aux == "state"


def test_discriminator_loss_runs_real_and_fake_as_one_batch_then_the_penalty():
    # D(x, y) = sum(w * x) + y: the labels are concatenated with the images, and the logits split back.
    w = np.random.default_rng(1).normal(size=(1, 4, 4, 3)).astype("float32")
    real = np.random.default_rng(2).normal(size=(2, 4, 4, 3)).astype("float32")
    fake = np.random.default_rng(3).normal(size=(2, 4, 4, 3)).astype("float32")
    real_labels, fake_labels = np.array([1, 2], "int32"), np.array([3, 4], "int32")
    alpha = np.array([0.2, 0.7], "float32").reshape(2, 1, 1, 1)

    def critic(images, labels, state):  # The state counts D's forwards, as JAX's step threads D's values.
        logits = ops.sum(images * ops.convert_to_tensor(w), axis=(1, 2, 3)) + ops.cast(labels, "float32")
        return logits, state + 1.0

    real_expected = (real * w).sum(axis=(1, 2, 3)) + [1, 2]
    fake_expected = (fake * w).sum(axis=(1, 2, 3)) + [3, 4]
    penalty = (np.linalg.norm(w) - 1.0) ** 2  # The gradient of a linear critic is w everywhere.
    for gp_weight, forwards in ((0.0, 1.0), (10.0, 2.0)):
        per_example, real_logits, fake_logits, state = losses.discriminator_loss(
            critic, losses.wasserstein_discriminator_loss, gp_weight, real, real_labels, fake, fake_labels, alpha,
            np.float32(0.0),
        )  # fmt: skip
        np.testing.assert_allclose(real_logits, real_expected, rtol=1e-5)
        np.testing.assert_allclose(fake_logits, fake_expected, rtol=1e-5)
        np.testing.assert_allclose(per_example, fake_expected - real_expected + gp_weight * penalty, rtol=1e-5)
        assert float(state) == forwards


def test_gradient_penalty_of_a_quadratic_critic_depends_on_alpha():
    # D(x) = sum(x^2): gradient 2 x_hat with x_hat = alpha * fake (real = 0); ||.|| = 2 alpha ||fake||.
    fake = np.full((2, 2, 2, 1), 0.5, "float32")
    alpha = np.array([0.25, 1.0], "float32").reshape(2, 1, 1, 1)
    penalties = losses.gradient_penalty(lambda x: ops.sum(x * x, axis=(1, 2, 3)), np.zeros_like(fake), fake, alpha)
    expected = (2 * alpha.ravel() * np.linalg.norm(fake[0]) - 1.0) ** 2
    np.testing.assert_allclose(penalties, expected, rtol=1e-5)
