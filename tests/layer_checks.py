"""Shared checks run on every layer and model: config round trip, .keras save/load, and `run_layer_test`."""

import inspect
import json

import keras
import numpy as np

# Largest |mixed - float32| allowed, relative to max(1, max |float32 output|): float16 keeps 11 significant
# bits (~5e-4 per rounding), bfloat16 8 bits (~4e-3); a few chained matmuls and normalisations add up.
MIXED_TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 6e-2}
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def assert_config_round_trip(obj):
    """get_config -> JSON -> from_config gives an object with the same config (compared as JSON: tuples in a
    config come back as lists, e.g. a wrapped layer's build shape)."""
    text = json.dumps(obj.get_config())
    restored = obj.__class__.from_config(json.loads(text))  # a copy: Wrapper.from_config pops "layer" from its argument
    assert json.loads(json.dumps(restored.get_config())) == json.loads(text)
    return restored


def assert_keras_save_load(model, inputs, tmp_path, call_kwargs=None):
    """Saving to .keras and loading gives identical inference outputs."""
    call_kwargs = call_kwargs or {}
    expected = model(*inputs, training=False, **call_kwargs)
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    actual = loaded(*inputs, training=False, **call_kwargs)
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return loaded


def _fresh(value):
    # A wrapped layer (SpectralNormalization's) belongs to one wrapper: each instance gets its own copy.
    if isinstance(value, keras.layers.Layer):
        return value.__class__.from_config(value.get_config())
    return value


def _make(cls, init_kwargs, policy=None):
    """`cls(**init_kwargs)`; `policy` as `dtype=` for Layer classes, as the global policy for factories."""
    kwargs = {key: _fresh(value) for key, value in init_kwargs.items()}
    if policy is None:
        return cls(**kwargs)
    if inspect.isclass(cls):
        return cls(**kwargs, dtype=keras.DTypePolicy(policy))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)  # a factory (e.g. a Sequential stage) takes no dtype argument
    try:
        return cls(**kwargs)
    finally:
        keras.config.set_dtype_policy(previous)


def _shape(x):
    return tuple(int(d) for d in x.shape)


def _check_policy(cls, init_kwargs, inputs, call_kwargs, policy, reference_weights, reference):
    layer = _make(cls, init_kwargs, policy)
    layer(*inputs, **call_kwargs)  # builds
    layer.set_weights(reference_weights)
    outputs = layer(*inputs, training=True, **call_kwargs)
    compute = keras.DTypePolicy(policy).compute_dtype
    assert keras.backend.standardize_dtype(outputs.dtype) == compute, (policy, outputs.dtype)
    float_variables = [w for w in layer.weights if "float" in keras.backend.standardize_dtype(w.dtype)]
    assert float_variables and all(w.dtype == "float32" for w in float_variables), (
        policy,
        [(w.path, w.dtype) for w in float_variables if w.dtype != "float32"],
    )
    actual = keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32"))
    scale = max(1.0, float(np.abs(reference).max()))
    np.testing.assert_allclose(actual, reference, atol=MIXED_TOLERANCE[policy] * scale, err_msg=policy)


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    tmp_path,
    call_kwargs=None,
    before_fit=None,
    policies=POLICIES,
):
    """Runs every shared check on a layer (or a factory returning one).

    Checks: config round trip; a symbolic (`keras.Input`) and an eager call with the expected shape;
    `compute_output_shape` equal to the eager output's; one `fit` step of a functional model around the
    layer that changes every trainable weight with a finite loss; float32 and mixed precision (output in
    the compute dtype, float variables in float32, outputs close to float32's from the same weights);
    `.keras` save/load of that model with equal outputs.

    Args:
        cls: a `keras.layers.Layer` subclass, or a function returning a layer.
        init_kwargs: dict. Constructor arguments; a layer among them is copied for each instance.
        input_data: array or tuple of arrays, the call's positional inputs (batch first).
        expected_output_shape: tuple. The eager output's shape.
        tmp_path: pathlib.Path for the .keras file.
        call_kwargs: dict. Extra call arguments (not `training`).
        before_fit: callable(layer) run before the fit step, e.g. to make a zero-initialised gate nonzero
            so that every weight receives a gradient.
        policies: the dtype policies to compare with float32 (a subset of `POLICIES`).

    Returns:
        The layer after the fit step.
    """
    call_kwargs = call_kwargs or {}
    inputs = tuple(input_data) if isinstance(input_data, (tuple, list)) else (input_data,)
    expected_output_shape = tuple(expected_output_shape)

    layer = _make(cls, init_kwargs)
    eager = layer(*inputs, **call_kwargs)
    assert _shape(eager) == expected_output_shape
    assert keras.backend.standardize_dtype(eager.dtype) == "float32"
    assert_config_round_trip(layer)

    input_shapes = [_shape(x) for x in inputs]
    assert tuple(layer.compute_output_shape(*input_shapes)) == expected_output_shape

    symbolic_inputs = [keras.Input(shape=x.shape[1:], dtype=x.dtype.name) for x in inputs]
    symbolic = layer(*symbolic_inputs, **call_kwargs)
    assert tuple(symbolic.shape) == (None,) + expected_output_shape[1:]

    if policies:
        # Mixed precision before the fit step, from fresh instances with the same starting weights.
        reference_layer = _make(cls, init_kwargs)
        reference_layer(*inputs, **call_kwargs)
        reference_layer.set_weights(layer.get_weights())
        reference_weights = reference_layer.get_weights()
        reference = keras.ops.convert_to_numpy(reference_layer(*inputs, training=True, **call_kwargs))
        for policy in policies:
            if policy != "float32":
                _check_policy(cls, init_kwargs, inputs, call_kwargs, policy, reference_weights, reference)

    model = keras.Model(symbolic_inputs if len(inputs) > 1 else symbolic_inputs[0], symbolic)
    if before_fit is not None:
        before_fit(layer)
    assert layer.trainable_weights, "nothing to train"
    before = [keras.ops.convert_to_numpy(w) for w in layer.trainable_weights]
    model.compile(optimizer="sgd", loss="mse")
    # A seed of its own: a target equal to the inputs would leave an identity-at-init layer with no gradient.
    target = np.random.default_rng(12345).normal(size=expected_output_shape).astype("float32")
    model_inputs = list(inputs) if len(inputs) > 1 else inputs[0]
    history = model.fit(model_inputs, target, batch_size=expected_output_shape[0], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    unchanged = [
        w.path for w, old in zip(layer.trainable_weights, before) if np.array_equal(keras.ops.convert_to_numpy(w), old)
    ]
    assert not unchanged, f"fit left these weights unchanged: {unchanged}"

    assert_keras_save_load(model, (model_inputs,), tmp_path)
    return layer
