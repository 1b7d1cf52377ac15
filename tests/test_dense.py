"""Dense against keras.layers.Dense on shared weights, plus gradient checks and guards."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from helpers import assert_close, assert_same_dtype

from keras_impl.reference import keras_forward_backward
from keras_impl.weights import copy_keras_to_scratch
from scratch.gradient_check import check_layer_gradients
from scratch.layers.dense import Dense

ACTIVATIONS = [None, "linear", "relu", "leaky_relu", "tanh", "sigmoid"]
INPUT_DIM = 5


def _twins(
    input_shape: tuple[int, ...], dtype: str, seed: int, **kwargs: object
) -> tuple[keras.layers.Dense, Dense]:
    """Build a seeded Keras Dense and copy its weights into a scratch Dense.

    The Keras bias is random rather than zero, so a wrong bias path shows.
    """
    keras_layer = keras.layers.Dense(
        dtype=dtype,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        bias_initializer=keras.initializers.RandomNormal(seed=seed + 1),
        **kwargs,
    )
    keras_layer.build(input_shape)
    scratch_layer = Dense(dtype=dtype, **kwargs)
    scratch_layer.build(input_shape)
    copy_keras_to_scratch(keras_layer, scratch_layer)
    return keras_layer, scratch_layer


def _compare_with_keras(input_shape: tuple[int, ...], dtype: str, seed: int, **kwargs) -> None:
    keras_layer, scratch_layer = _twins(input_shape, dtype, seed, **kwargs)
    rng = np.random.default_rng(seed)
    # Inputs of scale 0.3 keep the pre-activations within about +-1.5. A
    # saturated tanh or sigmoid loses precision in float32 in Keras and in
    # scratch alike (dy/dx = 1 - y**2 cancels), so the comparison would
    # measure rounding rather than the layer.
    x = (0.3 * rng.standard_normal(input_shape)).astype(dtype)
    output_shape = (*input_shape[:-1], kwargs["units"])
    grad_output = rng.standard_normal(output_shape).astype(dtype)

    expected = keras_forward_backward(keras_layer, x, grad_output, training=True)
    output = scratch_layer.forward(x, training=True)
    grad_input = scratch_layer.backward(grad_output)

    assert_close("output", output, expected.output)
    assert_close("dL/dx", grad_input, expected.grad_input)
    assert sorted(scratch_layer.grads) == sorted(expected.grad_params)
    for name, grad in expected.grad_params.items():
        assert_close(f"dL/d{name}", scratch_layer.grads[name], grad)
        assert_same_dtype(f"dL/d{name}", scratch_layer.grads[name], dtype)
    assert_same_dtype("output", output, dtype)
    assert_same_dtype("dL/dx", grad_input, dtype)


@pytest.mark.equivalence
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("units", [1, 4, 7])
@pytest.mark.parametrize("batch", [1, 3])
def test_dense_matches_keras(
    batch: int, units: int, use_bias: bool, activation: str | None, dtype: str
) -> None:
    _compare_with_keras(
        (batch, INPUT_DIM),
        dtype,
        seed=batch * 100 + units,
        units=units,
        use_bias=use_bias,
        activation=activation,
    )


@pytest.mark.equivalence
@pytest.mark.parametrize("input_shape", [(2, 3, 5), (1, 4, 2, 3), (3, 1, 6)])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_dense_higher_rank_matches_keras(
    input_shape: tuple[int, ...], activation: str | None, dtype: str
) -> None:
    _compare_with_keras(input_shape, dtype, seed=len(input_shape), units=4, activation=activation)


@pytest.mark.equivalence
def test_dense_weights_match_keras_layout() -> None:
    keras_layer = keras.layers.Dense(6)
    keras_layer.build((2, 3))
    scratch_layer = Dense(6)
    scratch_layer.build((2, 3))

    assert scratch_layer.weight_order() == [variable.name for variable in keras_layer.weights]
    for ours, theirs in zip(scratch_layer.get_weights(), keras_layer.get_weights(), strict=True):
        assert ours.shape == theirs.shape
        assert ours.dtype == theirs.dtype
    assert scratch_layer.compute_output_shape((None, 2, 3)) == keras_layer.compute_output_shape(
        (None, 2, 3)
    )
    assert scratch_layer.count_params() == keras_layer.count_params()


def test_dense_default_initializers() -> None:
    layer = Dense(50, name="init_dense")
    layer.build((1, 30))
    limit = np.sqrt(6.0 / (30 + 50))

    kernel, bias = layer.get_weights()
    assert np.all(np.abs(kernel) <= limit)
    assert np.std(kernel) > limit / 4
    assert np.array_equal(bias, np.zeros(50, dtype=np.float32))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("input_shape", [(1, 4), (3, 4), (2, 3, 4)])
def test_dense_gradient_check(
    input_shape: tuple[int, ...], use_bias: bool, activation: str | None
) -> None:
    rng = np.random.default_rng(len(input_shape))
    layer = Dense(
        3,
        activation=activation,
        use_bias=use_bias,
        bias_initializer="random_normal",
        dtype="float64",
    )
    x = rng.standard_normal(input_shape)

    errors = check_layer_gradients(layer, x)

    assert set(errors) == {"input", "kernel", *(["bias"] if use_bias else [])}
    for name, error in errors.items():
        assert error <= 1e-6, f"{name}: relative error {error:.2e}"


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("units", [0, -3, 2.5, True])
def test_dense_rejects_bad_units(units: object) -> None:
    message = f"Dense 'bad_units': units must be a positive integer, received units={units!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        Dense(units, name="bad_units")


def test_dense_rejects_unknown_activation() -> None:
    with pytest.raises(ValueError, match="Unknown activation 'softplus'"):
        Dense(2, activation="softplus")


@pytest.mark.parametrize("shape", [(5,), ()])
def test_dense_rejects_low_rank_input(shape: tuple[int, ...]) -> None:
    layer = Dense(2, name="rank_dense")
    message = (
        "Dense 'rank_dense': expected an input of rank >= 2 (batch, ..., features), "
        f"received shape {shape!r} of rank {len(shape)}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones(shape, dtype=np.float32))


def test_dense_rejects_wrong_last_dimension() -> None:
    layer = Dense(2, name="dim_dense")
    layer.forward(np.ones((3, 4), dtype=np.float32))
    message = (
        "Dense 'dim_dense': input shape (3, 5) has last dimension 5, "
        "but the kernel (4, 2) expects 4"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((3, 5), dtype=np.float32))


def test_dense_rejects_grad_output_shape() -> None:
    layer = Dense(2, name="grad_dense")
    layer.forward(np.ones((3, 4), dtype=np.float32))
    message = (
        "Dense 'grad_dense': grad_output shape (3, 3) does not match "
        "the forward output shape (3, 2)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.backward(np.ones((3, 3), dtype=np.float32))


def test_dense_rejects_grad_output_dtype() -> None:
    layer = Dense(2, name="grad_dtype_dense")
    layer.forward(np.ones((3, 4), dtype=np.float32))
    message = (
        "Dense 'grad_dtype_dense': grad_output dtype float64 does not match "
        "the layer's dtype float32"
    )
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.backward(np.ones((3, 2), dtype=np.float64))


def test_dense_rejects_backward_before_forward() -> None:
    layer = Dense(2, name="early_dense")
    message = "Dense 'early_dense': backward() was called before forward()"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        layer.backward(np.ones((3, 2), dtype=np.float32))


@pytest.mark.parametrize("bad_dtype", ["int32", "float16"])
def test_dense_rejects_non_float_input(bad_dtype: str) -> None:
    layer = Dense(2, name="int_dense")
    message = f"Dense 'int_dense': input dtype {bad_dtype} is not supported"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.forward(np.ones((3, 4), dtype=bad_dtype))


def test_dense_rejects_other_float_dtype() -> None:
    layer = Dense(2, dtype="float64", name="f64_dense")
    message = "Dense 'f64_dense': input dtype float32 does not match the layer's dtype float64"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.forward(np.ones((3, 4), dtype=np.float32))


def test_dense_set_weights_rejects_shape() -> None:
    layer = Dense(2, name="sw_dense")
    layer.build((1, 4))
    message = "Dense 'sw_dense': kernel shape (4, 3) does not match the layer's (4, 2)"
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.set_weights([np.zeros((4, 3), np.float32), np.zeros(2, np.float32)])


def test_dense_set_weights_rejects_dtype_and_count() -> None:
    layer = Dense(2, name="sw2_dense")
    layer.build((1, 4))
    message = "Dense 'sw2_dense': bias dtype float64 does not match the layer's float32"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.set_weights([np.zeros((4, 2), np.float32), np.zeros(2, np.float64)])
    message = "Layer 'sw2_dense': expected 2 weight arrays ['kernel', 'bias'], received 1"
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.set_weights([np.zeros((4, 2), np.float32)])
