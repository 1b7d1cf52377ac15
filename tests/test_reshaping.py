"""Reshape and Flatten against keras.layers.Reshape and keras.layers.Flatten,
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
from scratch.layers.base import Layer
from scratch.layers.reshaping import Flatten, Reshape

RESHAPE_CASES = [
    ((2, 12), (3, 4)),
    ((2, 12), (-1, 2, 2)),
    ((1, 4, 4, 1), (16,)),
    ((3, 2, 3, 4), (6, -1)),
    ((2, 7 * 7 * 8), (7, 7, 8)),
    ((4, 6), (2, -1, 3)),
]
FLATTEN_SHAPES = [(3,), (3, 5), (2, 3, 4), (1, 4, 4, 3), (2, 7, 7, 8)]


def _compare(keras_layer: keras.layers.Layer, scratch_layer: Layer, shape, dtype: str) -> None:
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    copy_keras_to_scratch(keras_layer, scratch_layer)
    expected_shape = keras_layer.compute_output_shape(shape)
    grad_output = rng.standard_normal(expected_shape).astype(dtype)

    expected = keras_forward_backward(keras_layer, x, grad_output)
    output = scratch_layer.forward(x)
    grad_input = scratch_layer.backward(grad_output)

    assert output.shape == expected.output.shape
    assert scratch_layer.compute_output_shape(shape) == expected_shape
    assert_close("output", output, expected.output)
    assert_close("dL/dx", grad_input, expected.grad_input)
    assert_same_dtype("output", output, dtype)
    assert_same_dtype("dL/dx", grad_input, dtype)


@pytest.mark.equivalence
@pytest.mark.parametrize(("input_shape", "target_shape"), RESHAPE_CASES)
def test_reshape_matches_keras(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...], dtype: str
) -> None:
    _compare(
        keras.layers.Reshape(target_shape, dtype=dtype),
        Reshape(target_shape, dtype=dtype),
        input_shape,
        dtype,
    )


@pytest.mark.equivalence
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("input_shape", FLATTEN_SHAPES)
def test_flatten_matches_keras(input_shape: tuple[int, ...], data_format: str, dtype: str) -> None:
    _compare(
        keras.layers.Flatten(data_format=data_format, dtype=dtype),
        Flatten(data_format=data_format, dtype=dtype),
        input_shape,
        dtype,
    )


@pytest.mark.equivalence
@pytest.mark.parametrize("input_shape", [(None, 12), (None, 3, None)])
def test_reshape_output_shape_with_unknown_sizes(input_shape: tuple[int | None, ...]) -> None:
    target_shape = (-1, 3)

    expected = keras.layers.Reshape(target_shape).compute_output_shape(input_shape)

    assert Reshape(target_shape).compute_output_shape(input_shape) == expected


@pytest.mark.equivalence
@pytest.mark.parametrize("input_shape", [(None, 3, 4), (None, None, 4), (5,)])
def test_flatten_output_shape_with_unknown_sizes(input_shape: tuple[int | None, ...]) -> None:
    expected = keras.layers.Flatten().compute_output_shape(input_shape)

    assert Flatten().compute_output_shape(input_shape) == expected


def test_flatten_channels_first_order() -> None:
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)  # (batch, C, H, W)

    output = Flatten(data_format="channels_first").forward(x)

    assert np.array_equal(output, x.transpose(0, 2, 3, 1).reshape(2, -1))


@pytest.mark.parametrize(
    "layer_factory",
    [
        lambda: Reshape((3, -1)),
        lambda: Reshape((2, 2, 3)),
        lambda: Flatten(),
        lambda: Flatten(data_format="channels_first"),
    ],
    ids=["reshape_inferred", "reshape", "flatten", "flatten_channels_first"],
)
def test_reshaping_gradient_check(layer_factory) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))

    errors = check_layer_gradients(layer_factory(), x)

    assert errors["input"] <= 1e-6


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("target_shape", "message"),
    [
        ((-1, -1), "target_shape may contain at most one -1, received target_shape=(-1, -1)"),
        ((2, -2), "each entry of target_shape must be a non-negative integer or -1"),
        ((2, 1.5), "each entry of target_shape must be a non-negative integer or -1"),
    ],
)
def test_reshape_rejects_bad_target_shape(target_shape: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Reshape 'bad_target': {message}")):
        Reshape(target_shape, name="bad_target")


@pytest.mark.parametrize(
    ("target_shape", "message"),
    [
        (
            (5, 2),
            "cannot reshape samples of shape (12,) (12 entries) to target_shape (5, 2) "
            "(10 entries)",
        ),
        ((5, -1), "cannot reshape samples of shape (12,) (12 entries) to target_shape (5, -1)"),
        ((0, -1), "cannot reshape samples of shape (12,) (12 entries) to target_shape (0, -1)"),
    ],
)
def test_reshape_rejects_incompatible_input(target_shape: tuple, message: str) -> None:
    layer = Reshape(target_shape, name="bad_size")
    with pytest.raises(ValueError, match=re.escape(f"Reshape 'bad_size': {message}")):
        layer.forward(np.ones((2, 12)))


def test_reshape_rejects_input_without_batch_axis() -> None:
    message = "Reshape 'no_batch': expected an input with a batch axis, received shape ()"
    with pytest.raises(ValueError, match=re.escape(message)):
        Reshape((1,), name="no_batch").forward(np.ones(()))


def test_flatten_rejects_scalar_input() -> None:
    message = (
        "Flatten 'scalar': expected an input of rank >= 1 with a batch axis, received shape ()"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        Flatten(name="scalar").forward(np.ones(()))


def test_flatten_rejects_bad_data_format() -> None:
    message = (
        "Flatten 'bad_format': data_format must be 'channels_last' or 'channels_first', "
        "received data_format='nchw'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        Flatten(data_format="nchw", name="bad_format")


@pytest.mark.parametrize(
    ("layer_factory", "input_shape", "bad_grad_shape", "output_shape"),
    [
        (lambda: Reshape((3, 4), name="reshaper"), (2, 12), (2, 12), (2, 3, 4)),
        (lambda: Flatten(name="reshaper"), (2, 3, 4), (2, 3, 4), (2, 12)),
    ],
    ids=["reshape", "flatten"],
)
def test_reshaping_rejects_grad_output_shape(
    layer_factory, input_shape, bad_grad_shape, output_shape
) -> None:
    layer = layer_factory()
    layer.forward(np.ones(input_shape))
    message = (
        f"{type(layer).__name__} 'reshaper': grad_output shape {bad_grad_shape} does not "
        f"match the forward output shape {output_shape}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.backward(np.ones(bad_grad_shape))


@pytest.mark.parametrize(
    "layer_factory",
    [lambda: Reshape((3, 4), name="early"), lambda: Flatten(name="early")],
    ids=["reshape", "flatten"],
)
def test_reshaping_rejects_backward_before_forward(layer_factory) -> None:
    layer = layer_factory()
    message = f"{type(layer).__name__} 'early': backward() was called before forward()"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        layer.backward(np.ones((2, 12)))


@pytest.mark.parametrize(
    "layer_factory",
    [lambda: Reshape((3, 4), name="typed"), lambda: Flatten(name="typed")],
    ids=["reshape", "flatten"],
)
def test_reshaping_rejects_wrong_dtypes(layer_factory) -> None:
    layer = layer_factory()
    name = type(layer).__name__
    with pytest.raises(TypeError, match=re.escape(f"{name} 'typed': input dtype int64")):
        layer.forward(np.ones((2, 12), dtype=np.int64))

    layer.forward(np.ones((2, 12), dtype=np.float32))
    message = f"{name} 'typed': grad_output dtype float64 does not match the layer's dtype float32"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.backward(np.ones(layer.compute_output_shape((2, 12))))
