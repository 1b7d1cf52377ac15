"""Conv2D against keras.layers.Conv2D on shared weights, plus gradient checks and guards."""

from __future__ import annotations

import inspect
import re

import keras
import numpy as np
import pytest
from helpers import assert_layer_matches_keras
from test_conv_reference import CONV2D_CASES, ConvCase

from scratch.gradient_check import check_layer_gradients
from scratch.layers.conv2d import Conv2D


def _compare_with_keras(case: ConvCase, dtype: str, seed: int, **kwargs: object) -> None:
    """Build one Keras layer, copy its weights, and compare output and every gradient.

    The Keras bias is random rather than zero, so a wrong bias path shows.
    """
    rng = np.random.default_rng(seed)
    layer_kwargs = {**case.kwargs(), **kwargs}
    keras_layer = keras.layers.Conv2D(**layer_kwargs, dtype=dtype, bias_initializer="random_normal")
    keras_layer.build(case.input_shape)
    layer = Conv2D(**layer_kwargs, dtype=dtype)
    layer.build(case.input_shape)
    layer.set_weights(keras_layer.get_weights())

    x = rng.standard_normal(case.input_shape).astype(dtype)
    output_shape = tuple(keras_layer.compute_output_shape(case.input_shape))
    grad_output = rng.standard_normal(output_shape).astype(dtype)
    assert_layer_matches_keras(layer, keras_layer, x, grad_output)


@pytest.mark.equivalence
@pytest.mark.parametrize("case", CONV2D_CASES, ids=lambda case: case.id)
def test_conv2d_matches_keras(case: ConvCase, dtype: str) -> None:
    _compare_with_keras(case, dtype, seed=len(case.id))


@pytest.mark.equivalence
@pytest.mark.parametrize(
    ("activation", "use_bias"),
    [("relu", True), ("leaky_relu", False), ("tanh", True), ("sigmoid", False), ("linear", True)],
)
def test_conv2d_activation_and_bias_match_keras(
    activation: str, use_bias: bool, dtype: str
) -> None:
    case = ConvCase((2, 6, 6, 2), 3, 4, 2, "same")
    _compare_with_keras(case, dtype, seed=7, activation=activation, use_bias=use_bias)


@pytest.mark.equivalence
def test_conv2d_dcgan_discriminator_shapes_match_keras() -> None:
    """The shapes of the DCGAN discriminator's first layer, at a small batch."""
    case = ConvCase((2, 28, 28, 1), 8, 4, 2, "same")
    _compare_with_keras(case, "float32", seed=28)


@pytest.mark.equivalence
def test_conv2d_weights_match_keras_layout() -> None:
    for use_bias in (True, False):
        keras_layer = keras.layers.Conv2D(4, (3, 2), use_bias=use_bias)
        keras_layer.build((None, 6, 5, 3))
        layer = Conv2D(4, (3, 2), use_bias=use_bias)
        layer.build((None, 6, 5, 3))

        assert layer.weight_order() == [variable.name for variable in keras_layer.weights]
        for ours, theirs in zip(layer.get_weights(), keras_layer.get_weights(), strict=True):
            assert ours.shape == theirs.shape
            assert ours.dtype == theirs.dtype
        assert layer.count_params() == keras_layer.count_params()
        assert layer.compute_output_shape((None, 6, 5, 3)) == keras_layer.compute_output_shape(
            (None, 6, 5, 3)
        )


def test_conv2d_arguments_match_keras_signature() -> None:
    ours = inspect.signature(Conv2D.__init__).parameters
    theirs = inspect.signature(keras.layers.Conv2D.__init__).parameters
    shared = [name for name in ours if name not in ("self", "name", "dtype", "implementation")]

    assert list(theirs)[: len(shared) + 1] == ["self", *shared]
    for name in shared:
        assert ours[name].default == theirs[name].default, name


def test_conv2d_default_name_follows_keras() -> None:
    assert re.fullmatch(r"conv2d(_\d+)?", Conv2D(2, 3).name)


def test_conv2d_default_initializers() -> None:
    layer = Conv2D(8, 3, name="init_conv")
    layer.build((1, 5, 5, 4))
    fan_in, fan_out = 3 * 3 * 4, 3 * 3 * 8
    limit = np.sqrt(6.0 / (fan_in + fan_out))

    kernel, bias = layer.get_weights()
    assert kernel.dtype == np.float32
    assert np.all(np.abs(kernel) <= limit)
    assert np.std(kernel) > limit / 4
    assert np.array_equal(bias, np.zeros(8, dtype=np.float32))


# ---------------------------------------------------------------------- #
# Finite differences
# ---------------------------------------------------------------------- #
GRADIENT_CHECK_CASES = CONV2D_CASES[::5] + CONV2D_CASES[-2:]


@pytest.mark.parametrize("implementation", ["fast", "loop"])
@pytest.mark.parametrize("case", GRADIENT_CHECK_CASES, ids=lambda case: case.id)
def test_conv2d_gradient_check(case: ConvCase, implementation: str) -> None:
    rng = np.random.default_rng(len(case.id))
    layer = Conv2D(
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


def test_conv2d_gradient_check_with_activation() -> None:
    rng = np.random.default_rng(3)
    layer = Conv2D(2, 3, 2, "same", activation="tanh", use_bias=False, dtype="float64")

    errors = check_layer_gradients(layer, rng.standard_normal((2, 5, 6, 2)))

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
        ({"kernel_size": (3, 0)}, "kernel_size"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size"),
        ({"kernel_size": 2.5}, "kernel_size"),
        ({"strides": 0}, "strides"),
        ({"strides": -1}, "strides"),
        ({"strides": (1, 2, 3)}, "strides"),
        ({"strides": "2"}, "strides"),
        ({"padding": "full"}, "padding"),
        ({"padding": "causal"}, "padding"),
        ({"padding": None}, "padding"),
        ({"data_format": "nhwc"}, "data_format"),
        ({"dilation_rate": 0}, "dilation_rate"),
        ({"dilation_rate": 2, "strides": 2}, "dilation_rate"),
        ({"groups": 0}, "groups"),
        ({"groups": 3}, "groups"),
        ({"implementation": "gpu"}, "implementation"),
    ],
)
def test_conv2d_rejects_bad_argument(kwargs: dict, argument: str) -> None:
    arguments = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=rf"Conv2D 'bad_conv'.*{argument}"):
        Conv2D(**arguments, name="bad_conv")


@pytest.mark.parametrize("filters", [0, -2, 2.0, None])
def test_conv2d_rejects_bad_filters(filters: object) -> None:
    message = (
        "Conv2D 'bad_filters': invalid value for argument `filters`, expected a strictly "
        f"positive integer, received filters={filters!r}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        Conv2D(filters, 3, name="bad_filters")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"data_format": "channels_first"}, "data_format"),
        ({"dilation_rate": 2}, "dilation_rate"),
        ({"dilation_rate": (1, 2)}, "dilation_rate"),
        ({"groups": 2}, "groups"),
    ],
)
def test_conv2d_rejects_unimplemented_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"Conv2D 'nyi_conv'.*{argument}"):
        Conv2D(4, 3, name="nyi_conv", **kwargs)


def test_conv2d_accepts_keras_spellings() -> None:
    layer = Conv2D(4, [3, 2], strides=[2, 1], padding="SAME", data_format="channels_last")

    assert layer.kernel_size == (3, 2)
    assert layer.strides == (2, 1)
    assert layer.padding == "same"


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 5, 7, 3, 1), (5,)])
def test_conv2d_rejects_wrong_rank(shape: tuple[int, ...]) -> None:
    layer = Conv2D(2, 3, name="rank_conv")
    message = (
        "Conv2D 'rank_conv': expected a 4-D input (batch, height, width, channels), "
        f"received shape {shape} with {len(shape)} dimensions"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones(shape, dtype=np.float32))


def test_conv2d_rejects_wrong_channel_count() -> None:
    layer = Conv2D(2, 3, name="channel_conv")
    layer.forward(np.ones((2, 5, 5, 4), dtype=np.float32))
    message = (
        "Conv2D 'channel_conv': input shape (2, 5, 5, 3) has 3 channels but the kernel expects 4"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((2, 5, 5, 3), dtype=np.float32))


@pytest.mark.parametrize(
    ("kernel_size", "input_shape"), [(6, (1, 5, 7, 3)), ((2, 8), (2, 5, 7, 1))]
)
def test_conv2d_rejects_kernel_larger_than_input(
    kernel_size: int | tuple[int, int], input_shape: tuple[int, ...]
) -> None:
    layer = Conv2D(2, kernel_size, name="big_kernel")
    message = (
        f"Conv2D 'big_kernel': input shape {input_shape} is smaller than kernel_size "
        f"{layer.kernel_size} with padding='valid'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones(input_shape, dtype=np.float32))
    # Keras rejects the same input.
    with pytest.raises(ValueError):
        keras.layers.Conv2D(2, kernel_size).build(input_shape)


def test_conv2d_same_padding_accepts_kernel_larger_than_input() -> None:
    case = ConvCase((1, 3, 2, 2), 2, 5, 2, "same")
    _compare_with_keras(case, "float64", seed=5)


def test_conv2d_rejects_small_input_after_build() -> None:
    layer = Conv2D(2, 5, name="shrink_conv")
    layer.forward(np.ones((1, 6, 6, 1), dtype=np.float32))
    with pytest.raises(ValueError, match=re.escape("input shape (1, 4, 6, 1) is smaller")):
        layer.forward(np.ones((1, 4, 6, 1), dtype=np.float32))


def test_conv2d_rejects_input_dtype_mismatch() -> None:
    layer = Conv2D(2, 3, name="dtype_conv", dtype="float32")
    with pytest.raises(TypeError, match=re.escape("Conv2D 'dtype_conv': input dtype float64")):
        layer.forward(np.ones((1, 5, 5, 1), dtype=np.float64))


def test_conv2d_rejects_grad_output_shape() -> None:
    layer = Conv2D(2, 3, strides=2, padding="same", name="grad_conv")
    layer.forward(np.ones((2, 5, 5, 1), dtype=np.float32))
    message = (
        "Conv2D 'grad_conv': grad_output shape (2, 5, 5, 2) does not match "
        "the forward output shape (2, 3, 3, 2)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.backward(np.ones((2, 5, 5, 2), dtype=np.float32))


def test_conv2d_rejects_backward_before_forward() -> None:
    layer = Conv2D(2, 3, name="early_conv")
    with pytest.raises(RuntimeError, match=re.escape("Conv2D 'early_conv': backward() was called")):
        layer.backward(np.ones((1, 3, 3, 2), dtype=np.float32))


def test_conv2d_rejects_transposed_kernel_layout() -> None:
    layer = Conv2D(4, 3, name="layout_conv")
    layer.build((1, 5, 5, 2))
    message = (
        "Conv2D 'layout_conv': kernel shape (3, 3, 4, 2) does not match the layer's (3, 3, 2, 4)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.set_weights([np.ones((3, 3, 4, 2), np.float32), np.zeros(4, np.float32)])
