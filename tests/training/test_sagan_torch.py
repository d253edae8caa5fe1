"""SAGAN on torch: Keras' torch step pattern, state updated outside autograd, torch-only refusals."""

import numpy as np
import pytest
from test_sagan import _build, _dataset, _images

from keras_sagan import backend
from keras_sagan.training import builders

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")


def test_a_step_updates_state_outside_autograd_and_g_backward_skips_d_weights():
    gan = _build()
    gan.compile(loss="wgan-gp", ema_decay=0.5)
    before = [np.array(v) for v in gan.generator.non_trainable_weights]  # copies: torch shares memory
    ema_before = [np.array(v) for v in gan.ema_generator.weights]
    gan.fit(_dataset(_images(8), 4), epochs=1, verbose=0)
    assert gan.step == 2
    for variable in gan.variables:  # every assigned value is a plain tensor, not a node of a graph
        assert variable.value.grad_fn is None, variable.path
        assert variable.value.requires_grad == variable.trainable, variable.path
    after = [np.asarray(v) for v in gan.generator.non_trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # every u and BatchNorm statistic moved
    # EMA moved (the attention projections do not: their gradients are 0 while gamma is 0).
    moved = sum(not np.array_equal(a, np.asarray(v)) for a, v in zip(ema_before, gan.ema_generator.weights))
    assert moved > len(ema_before) // 2
    # The last update was G's: its backward filled G's gradients only, none of D's weights.
    assert all(v.value.grad is not None for v in gan.generator.trainable_weights)
    assert all(v.value.grad is None for v in gan.discriminator.trainable_weights)


def test_jit_compile_true_is_refused_and_auto_runs_eagerly():
    with pytest.raises(
        ValueError, match='`jit_compile` must be False or "auto" on torch .*; received: jit_compile=True$'
    ):
        _build().compile(jit_compile=True)
    gan = _build()
    gan.compile()
    assert gan.jit_compile is False


def test_mirrored_is_refused_on_torch_with_what_works():
    with pytest.raises(backend.BackendError, match=r"`strategy` must be one of \('default',\) on the torch backend"):
        builders.make_strategy("mirrored")
    expected = r"on the torch backend .*jax for multihost\); received: strategy='multihost'$"
    with pytest.raises(backend.BackendError, match=expected):
        builders.make_strategy("multihost")
    assert builders.make_strategy("default").distribution is None
