"""Activation layers against their Keras twins, at and away from the kinks,
plus gradient checks and guards."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from helpers import assert_close, assert_same_dtype

from keras_impl.reference import keras_forward_backward
from keras_impl.weights import copy_keras_to_scratch
from scratch.gradient_check import check_layer_gradients
from scratch.layers import activations
from scratch.layers.activations import LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from scratch.layers.base import Layer

RELU_OPTIONS = [
    {"max_value": max_value, "negative_slope": negative_slope, "threshold": threshold}
    for max_value in (None, 6.0, 2.5)
    for negative_slope in (0.0, 0.1)
    for threshold in (0.0, 0.5)
]


def _relu_id(options: dict) -> str:
    return "-".join(f"{key}={value}" for key, value in options.items())


def _kinks(options: dict) -> list[float]:
    """Input values where a ReLU's derivative jumps."""
    points = [0.0, options.get("threshold", 0.0)]
    if options.get("max_value") is not None:
        points.append(options["max_value"])
    return points


def _inputs_with_kinks(shape: tuple[int, ...], kinks: list[float], dtype: str, seed: int):
    """Random inputs in [-3, 8] whose first entries are exactly the kinks."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 8.0, size=shape)
    flat = x.reshape(-1)
    flat[: len(kinks)] = kinks[: flat.size]
    return x.astype(dtype)


def _inputs_away_from_kinks(shape: tuple[int, ...], kinks: list[float], seed: int) -> np.ndarray:
    """Random float64 inputs in [-3, 8], each at least 1e-3 from every kink.

    Central differences straddling a kink measure neither one-sided slope.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 8.0, size=shape)
    for kink in kinks:
        near = np.abs(x - kink) < 1e-3
        x[near] = kink + 0.1
    return x


def _compare(keras_layer: keras.layers.Layer, scratch_layer: Layer, x: np.ndarray) -> None:
    """Compare forward and dL/dx of twin layers on ``x`` with a random grad_output."""
    copy_keras_to_scratch(keras_layer, scratch_layer)
    grad_output = np.random.default_rng(x.size).standard_normal(x.shape).astype(x.dtype)

    expected = keras_forward_backward(keras_layer, x, grad_output)
    output = scratch_layer.forward(x)
    grad_input = scratch_layer.backward(grad_output)

    assert_close("output", output, expected.output)
    assert_close("dL/dx", grad_input, expected.grad_input)
    assert_same_dtype("output", output, x.dtype)
    assert_same_dtype("dL/dx", grad_input, x.dtype)


# ---------------------------------------------------------------------- #
# Against Keras
# ---------------------------------------------------------------------- #
@pytest.mark.equivalence
@pytest.mark.parametrize("shape", [(1, 7), (4, 9), (2, 3, 3, 2)])
@pytest.mark.parametrize("options", RELU_OPTIONS, ids=_relu_id)
def test_relu_matches_keras(options: dict, shape: tuple[int, ...], dtype: str) -> None:
    x = _inputs_with_kinks(shape, [*_kinks(options), 6.0], dtype, seed=len(shape))

    _compare(keras.layers.ReLU(dtype=dtype, **options), ReLU(dtype=dtype, **options), x)


@pytest.mark.equivalence
@pytest.mark.parametrize("shape", [(1, 5), (4, 9), (2, 3, 3, 2)])
@pytest.mark.parametrize("negative_slope", [0.0, 0.2, 0.3, 1.5])
def test_leaky_relu_matches_keras(
    negative_slope: float, shape: tuple[int, ...], dtype: str
) -> None:
    x = _inputs_with_kinks(shape, [0.0], dtype, seed=len(shape))

    _compare(
        keras.layers.LeakyReLU(negative_slope=negative_slope, dtype=dtype),
        LeakyReLU(negative_slope=negative_slope, dtype=dtype),
        x,
    )


@pytest.mark.equivalence
def test_leaky_relu_default_slope_matches_keras() -> None:
    assert LeakyReLU().negative_slope == keras.layers.LeakyReLU().negative_slope


@pytest.mark.equivalence
@pytest.mark.parametrize("shape", [(1, 6), (5, 8), (2, 4, 4, 3)])
@pytest.mark.parametrize(("function", "scratch_class"), [("tanh", Tanh), ("sigmoid", Sigmoid)])
def test_smooth_activation_matches_keras(
    function: str, scratch_class: type[Layer], shape: tuple[int, ...], dtype: str
) -> None:
    # Within +-1.5 the float32 derivative 1 - y**2 (or y * (1 - y)) is still
    # accurate. Further out it cancels in Keras and scratch alike, and the
    # comparison would measure that rounding rather than the layer.
    x = np.random.default_rng(len(shape)).uniform(-1.5, 1.5, size=shape).astype(dtype)

    _compare(keras.layers.Activation(function, dtype=dtype), scratch_class(dtype=dtype), x)


@pytest.mark.equivalence
@pytest.mark.parametrize(("function", "scratch_class"), [("tanh", Tanh), ("sigmoid", Sigmoid)])
def test_smooth_activation_saturated_float64(function: str, scratch_class: type[Layer]) -> None:
    x = np.array([[-40.0, -30.0, -10.0, -1e-3, 0.0, 1e-3, 10.0, 30.0, 40.0]])

    _compare(keras.layers.Activation(function, dtype="float64"), scratch_class(), x)


@pytest.mark.equivalence
def test_sigmoid_extreme_inputs_stay_finite(dtype: str) -> None:
    x = np.array([[-1000.0, -100.0, 100.0, 1000.0]], dtype=dtype)

    _compare(keras.layers.Activation("sigmoid", dtype=dtype), Sigmoid(dtype=dtype), x)


# ---------------------------------------------------------------------- #
# Finite differences
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("shape", [(1, 6), (3, 2, 2, 2)])
@pytest.mark.parametrize("options", RELU_OPTIONS, ids=_relu_id)
def test_relu_gradient_check(options: dict, shape: tuple[int, ...]) -> None:
    x = _inputs_away_from_kinks(shape, _kinks(options), seed=len(shape))

    errors = check_layer_gradients(ReLU(**options), x)

    assert errors["input"] <= 1e-6


@pytest.mark.parametrize(
    "layer_factory",
    [
        lambda: LeakyReLU(),
        lambda: LeakyReLU(negative_slope=0.2),
        lambda: Tanh(),
        lambda: Sigmoid(),
        lambda: Linear(),
    ],
    ids=["leaky_relu_default", "leaky_relu_0.2", "tanh", "sigmoid", "linear"],
)
@pytest.mark.parametrize("shape", [(1, 6), (3, 2, 2, 2)])
def test_activation_gradient_check(layer_factory, shape: tuple[int, ...]) -> None:
    x = _inputs_away_from_kinks(shape, [0.0], seed=len(shape)) / 3.0

    errors = check_layer_gradients(layer_factory(), x)

    assert list(errors) == ["input"]
    assert errors["input"] <= 1e-6


# ---------------------------------------------------------------------- #
# activations.get
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("identifier", "expected_class"),
    [("relu", ReLU), ("leaky_relu", LeakyReLU), ("tanh", Tanh), ("sigmoid", Sigmoid)],
)
def test_get_returns_fresh_layer(identifier: str, expected_class: type[Layer]) -> None:
    first = activations.get(identifier, name=f"get_{identifier}")
    second = activations.get(identifier)

    assert type(first) is expected_class
    assert first.name == f"get_{identifier}"
    assert first is not second


@pytest.mark.equivalence
def test_get_leaky_relu_slope_matches_keras_function() -> None:
    keras_default = keras.activations.leaky_relu.__defaults__[0]

    assert activations.get("leaky_relu").negative_slope == keras_default


@pytest.mark.parametrize("identifier", [None, "linear"])
def test_get_returns_none_for_identity(identifier: str | None) -> None:
    assert activations.get(identifier) is None


@pytest.mark.parametrize("identifier", ["softmax", "ReLU", 3])
def test_get_rejects_unknown(identifier: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Unknown activation {identifier!r}")):
        activations.get(identifier)


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_value": -1.0}, "max_value must be None or >= 0, received -1.0"),
        ({"negative_slope": -0.1}, "negative_slope must be >= 0, received -0.1"),
        ({"negative_slope": None}, "negative_slope must be >= 0, received None"),
        ({"threshold": -0.5}, "threshold must be >= 0, received -0.5"),
        ({"threshold": None}, "threshold must be >= 0, received None"),
    ],
)
def test_relu_rejects_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"ReLU 'bad_relu': {message}")):
        ReLU(name="bad_relu", **options)


@pytest.mark.parametrize("negative_slope", [-0.2, None])
def test_leaky_relu_rejects_bad_slope(negative_slope: object) -> None:
    message = f"LeakyReLU 'bad_leaky': negative_slope must be >= 0, received {negative_slope}"
    with pytest.raises(ValueError, match=re.escape(message)):
        LeakyReLU(negative_slope=negative_slope, name="bad_leaky")


ALL_ACTIVATIONS = [ReLU, LeakyReLU, Tanh, Sigmoid, Linear]


@pytest.mark.parametrize("layer_class", ALL_ACTIVATIONS)
def test_activation_rejects_backward_before_forward(layer_class: type[Layer]) -> None:
    layer = layer_class(name="early")
    message = f"{layer_class.__name__} 'early': backward() was called before forward()"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        layer.backward(np.ones((2, 3)))


@pytest.mark.parametrize("layer_class", ALL_ACTIVATIONS)
def test_activation_rejects_grad_output_shape(layer_class: type[Layer]) -> None:
    layer = layer_class(name="shape_check")
    layer.forward(np.ones((2, 3)))
    message = (
        f"{layer_class.__name__} 'shape_check': grad_output shape (3, 2) does not match "
        "the forward output shape (2, 3)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.backward(np.ones((3, 2)))


@pytest.mark.parametrize("layer_class", ALL_ACTIVATIONS)
def test_activation_rejects_wrong_dtypes(layer_class: type[Layer]) -> None:
    layer = layer_class(name="dtype_check", dtype="float32")
    name = layer_class.__name__
    with pytest.raises(TypeError, match=re.escape(f"{name} 'dtype_check': input dtype int64")):
        layer.forward(np.ones((2, 3), dtype=np.int64))
    message = f"{name} 'dtype_check': input dtype float64 does not match the layer's dtype float32"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.forward(np.ones((2, 3)))

    layer.forward(np.ones((2, 3), dtype=np.float32))
    message = f"{name} 'dtype_check': grad_output dtype float64 does not match"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.backward(np.ones((2, 3)))
