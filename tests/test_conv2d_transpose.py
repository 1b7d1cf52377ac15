"""Conv2DTranspose against keras.layers.Conv2DTranspose on shared weights, plus guards."""

from __future__ import annotations

import inspect
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_layer_matches_keras
from test_conv_reference import CONV2D_TRANSPOSE_CASES, ConvCase

from scratch.gradient_check import check_layer_gradients
from scratch.layers.conv2d_transpose import Conv2DTranspose


def _compare_with_keras(case: ConvCase, dtype: str, seed: int, **kwargs: object) -> None:
    """Build one Keras layer, copy its weights, and compare output and every gradient.

    The Keras bias is random rather than zero, so a wrong bias path shows.
    """
    rng = np.random.default_rng(seed)
    layer_kwargs = {**case.kwargs(), **kwargs}
    keras_layer = keras.layers.Conv2DTranspose(
        **layer_kwargs, dtype=dtype, bias_initializer="random_normal"
    )
    keras_layer.build(case.input_shape)
    layer = Conv2DTranspose(**layer_kwargs, dtype=dtype)
    layer.build(case.input_shape)
    layer.set_weights(keras_layer.get_weights())

    x = rng.standard_normal(case.input_shape).astype(dtype)
    output_shape = tuple(keras_layer.compute_output_shape(case.input_shape))
    grad_output = rng.standard_normal(output_shape).astype(dtype)
    assert_layer_matches_keras(layer, keras_layer, x, grad_output)


@pytest.mark.equivalence
@pytest.mark.parametrize("case", CONV2D_TRANSPOSE_CASES, ids=lambda case: case.id)
def test_conv2d_transpose_matches_keras(case: ConvCase, dtype: str) -> None:
    _compare_with_keras(case, dtype, seed=len(case.id))


@pytest.mark.equivalence
@pytest.mark.parametrize(
    ("activation", "use_bias"),
    [("relu", True), ("leaky_relu", False), ("tanh", True), ("sigmoid", False), ("linear", True)],
)
def test_conv2d_transpose_activation_and_bias_match_keras(
    activation: str, use_bias: bool, dtype: str
) -> None:
    case = ConvCase((2, 3, 3, 2), 3, 4, 2, "same")
    _compare_with_keras(case, dtype, seed=11, activation=activation, use_bias=use_bias)


@pytest.mark.equivalence
def test_conv2d_transpose_dcgan_generator_shapes_match_keras() -> None:
    """The shapes of the DCGAN generator's last layer (14x14 to 28x28), at a small batch."""
    case = ConvCase((2, 14, 14, 8), 1, 4, 2, "same")
    _compare_with_keras(case, "float32", seed=14, activation="tanh")


@pytest.mark.equivalence
def test_conv2d_transpose_weights_match_keras_layout() -> None:
    for use_bias in (True, False):
        keras_layer = keras.layers.Conv2DTranspose(4, (3, 2), use_bias=use_bias)
        keras_layer.build((None, 6, 5, 3))
        layer = Conv2DTranspose(4, (3, 2), use_bias=use_bias)
        layer.build((None, 6, 5, 3))

        assert layer.weight_order() == [variable.name for variable in keras_layer.weights]
        for ours, theirs in zip(layer.get_weights(), keras_layer.get_weights(), strict=True):
            assert ours.shape == theirs.shape
            assert ours.dtype == theirs.dtype
        assert layer.count_params() == keras_layer.count_params()
        assert layer.compute_output_shape((None, 6, 5, 3)) == tuple(
            keras_layer.compute_output_shape((None, 6, 5, 3))
        )


def test_conv2d_transpose_arguments_match_keras_signature() -> None:
    ours = inspect.signature(Conv2DTranspose.__init__).parameters
    theirs = inspect.signature(keras.layers.Conv2DTranspose.__init__).parameters
    shared = [name for name in ours if name not in ("self", "name", "dtype", "implementation")]

    assert list(theirs)[: len(shared) + 1] == ["self", *shared]
    for name in shared:
        assert ours[name].default == theirs[name].default, name


def test_conv2d_transpose_default_name_follows_keras() -> None:
    assert re.fullmatch(r"conv2d_transpose(_\d+)?", Conv2DTranspose(2, 3).name)


# ---------------------------------------------------------------------- #
# Finite differences
# ---------------------------------------------------------------------- #
GRADIENT_CHECK_CASES = CONV2D_TRANSPOSE_CASES[::12] + CONV2D_TRANSPOSE_CASES[-3:]


@pytest.mark.parametrize("implementation", ["fast", "loop"])
@pytest.mark.parametrize("case", GRADIENT_CHECK_CASES, ids=lambda case: case.id)
def test_conv2d_transpose_gradient_check(case: ConvCase, implementation: str) -> None:
    rng = np.random.default_rng(len(case.id))
    layer = Conv2DTranspose(
        **case.kwargs(),
        bias_initializer="random_normal",
        dtype="float64",
        implementation=implementation,
    )
    x = rng.standard_normal(case.input_shape)

    errors = check_layer_gradients(layer, x)

    assert set(errors) == {"input", "kernel", "bias"}
    for name, error in errors.items():
        assert error <= 1e-6, f"{name}: relative error {error:.2e}"


def test_conv2d_transpose_gradient_check_with_activation() -> None:
    rng = np.random.default_rng(4)
    layer = Conv2DTranspose(2, 4, 2, "same", activation="sigmoid", use_bias=False, dtype="float64")

    errors = check_layer_gradients(layer, rng.standard_normal((2, 3, 4, 2)))

    assert set(errors) == {"input", "kernel"}
    for name, error in errors.items():
        assert error <= 1e-6, f"{name}: relative error {error:.2e}"


# ---------------------------------------------------------------------- #
# Bad arguments
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (2, 3, 4)}, "kernel_size"),
        ({"strides": 0}, "strides"),
        ({"strides": (2,)}, "strides"),
        ({"padding": "full"}, "padding"),
        ({"output_padding": -1, "strides": 2}, "output_padding"),
        ({"output_padding": (0, 1, 0), "strides": 2}, "output_padding"),
        ({"data_format": "nhwc"}, "data_format"),
        ({"dilation_rate": 2, "strides": 2}, "dilation_rate"),
        ({"implementation": "gpu"}, "implementation"),
        ({"filters": 0}, "filters"),
    ],
)
def test_conv2d_transpose_rejects_bad_argument(kwargs: dict, argument: str) -> None:
    arguments = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=rf"Conv2DTranspose 'bad_convt'.*{argument}"):
        Conv2DTranspose(**arguments, name="bad_convt")


@pytest.mark.parametrize(
    ("strides", "output_padding"), [(1, 1), (2, 2), (2, 3), ((2, 3), (1, 3)), ((3, 1), (0, 1))]
)
def test_conv2d_transpose_rejects_large_output_padding(
    strides: int | tuple[int, int], output_padding: int | tuple[int, int]
) -> None:
    message = "Conv2DTranspose 'pad_convt': `output_padding` must be strictly less than `strides`"
    with pytest.raises(ValueError, match=re.escape(message)):
        Conv2DTranspose(2, 3, strides, output_padding=output_padding, name="pad_convt")
    # Keras rejects the same arguments.
    with pytest.raises(ValueError, match="output_padding"):
        keras.layers.Conv2DTranspose(2, 3, strides, output_padding=output_padding)


@pytest.mark.parametrize(
    ("kernel_size", "strides", "even_size"), [(2, 1, 2), (4, 2, 4), (4, 3, 4), ((3, 2), 2, 2)]
)
def test_conv2d_transpose_rejects_same_even_kernel(
    kernel_size: int | tuple[int, int], strides: int, even_size: int
) -> None:
    """``"same"``, an even kernel and output_padding 0 give an output TensorFlow rejects."""
    input_shape = (1, 3, 4, 2)
    layer = Conv2DTranspose(2, kernel_size, strides, "same", output_padding=0, name="even_convt")
    message = f"Conv2DTranspose 'even_convt': with padding='same', kernel size {even_size}"
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones(input_shape, dtype=np.float32))
    # Keras (TensorFlow backend) fails on the same call.
    keras_layer = keras.layers.Conv2DTranspose(2, kernel_size, strides, "same", output_padding=0)
    with pytest.raises((ValueError, tf.errors.OpError)):
        keras_layer(np.ones(input_shape, dtype=np.float32))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"data_format": "channels_first"}, "data_format"),
        ({"dilation_rate": 2}, "dilation_rate"),
    ],
)
def test_conv2d_transpose_rejects_unimplemented_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"Conv2DTranspose 'nyi_convt'.*{argument}"):
        Conv2DTranspose(4, 3, name="nyi_convt", **kwargs)


def test_conv2d_transpose_accepts_keras_spellings() -> None:
    layer = Conv2DTranspose(4, [3, 2], strides=[2, 3], padding="Valid", output_padding=[1, 0])

    assert layer.kernel_size == (3, 2)
    assert layer.strides == (2, 3)
    assert layer.padding == "valid"
    assert layer.output_padding == (1, 0)


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 5, 7, 3, 1)])
def test_conv2d_transpose_rejects_wrong_rank(shape: tuple[int, ...]) -> None:
    layer = Conv2DTranspose(2, 3, name="rank_convt")
    message = (
        "Conv2DTranspose 'rank_convt': expected a 4-D input (batch, height, width, channels), "
        f"received shape {shape} with {len(shape)} dimensions"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones(shape, dtype=np.float32))


def test_conv2d_transpose_rejects_wrong_channel_count() -> None:
    layer = Conv2DTranspose(2, 3, name="channel_convt")
    layer.forward(np.ones((2, 3, 3, 4), dtype=np.float32))
    message = (
        "Conv2DTranspose 'channel_convt': input shape (2, 3, 3, 5) has 5 channels "
        "but the kernel expects 4"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((2, 3, 3, 5), dtype=np.float32))


def test_conv2d_transpose_valid_accepts_kernel_larger_than_input() -> None:
    case = ConvCase((1, 2, 3, 2), 2, 5, 2, "valid")
    _compare_with_keras(case, "float64", seed=2)


def test_conv2d_transpose_rejects_grad_output_shape() -> None:
    layer = Conv2DTranspose(2, 3, strides=2, padding="same", name="grad_convt")
    layer.forward(np.ones((2, 3, 3, 1), dtype=np.float32))
    message = (
        "Conv2DTranspose 'grad_convt': grad_output shape (2, 3, 3, 2) does not match "
        "the forward output shape (2, 6, 6, 2)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.backward(np.ones((2, 3, 3, 2), dtype=np.float32))


def test_conv2d_transpose_rejects_backward_before_forward() -> None:
    layer = Conv2DTranspose(2, 3, name="early_convt")
    message = "Conv2DTranspose 'early_convt': backward() was called"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        layer.backward(np.ones((1, 3, 3, 2), dtype=np.float32))


def test_conv2d_transpose_rejects_conv2d_kernel_layout() -> None:
    layer = Conv2DTranspose(4, 3, name="layout_convt")
    layer.build((1, 5, 5, 2))
    message = (
        "Conv2DTranspose 'layout_convt': kernel shape (3, 3, 2, 4) does not match "
        "the layer's (3, 3, 4, 2)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.set_weights([np.ones((3, 3, 2, 4), np.float32), np.zeros(4, np.float32)])
