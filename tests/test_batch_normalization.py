"""Scratch BatchNormalization against keras.layers.BatchNormalization.

Each comparison builds a fresh Keras layer, sets non-trivial gamma, beta and
moving statistics on it, copies them into the scratch layer with
``set_weights``, then compares the output, dL/dx, dL/dgamma, dL/dbeta and the
updated moving statistics. grad_output is random: with grad_output = ones the
training-mode dx is 0 up to rounding, which would test nothing.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from helpers import assert_close, assert_same_dtype

from keras_impl.reference import keras_forward_backward
from scratch.gradient_check import check_layer_gradients
from scratch.layers.normalization import BatchNormalization

GRADIENT_CHECK_LIMIT = 1e-6


def random_weight(name: str, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a value far from the initial ones, so a swapped weight shows up."""
    if name == "gamma":
        return rng.uniform(0.5, 1.5, channels)
    if name == "moving_variance":
        return rng.uniform(0.5, 2.0, channels)
    return rng.normal(0.0, 0.5, channels)  # beta, moving_mean


def make_pair(
    input_shape: tuple[int, ...], dtype: str, seed: int = 0, **kwargs: object
) -> tuple[keras.layers.BatchNormalization, BatchNormalization]:
    """Return a Keras layer with random weights and a scratch layer holding a copy."""
    rng = np.random.default_rng(seed)
    keras_layer = keras.layers.BatchNormalization(dtype=dtype, **kwargs)
    keras_layer.build(input_shape)
    keras_layer.set_weights(
        [random_weight(w.name, w.shape[0], rng).astype(dtype) for w in keras_layer.weights]
    )

    scratch_layer = BatchNormalization(dtype=dtype, **kwargs)
    scratch_layer.build(input_shape)
    scratch_layer.set_weights(keras_layer.get_weights())
    return keras_layer, scratch_layer


def random_batch(shape: tuple[int, ...], dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return an input with non-zero mean and a random grad_output."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 2.0, shape).astype(dtype)
    grad_output = rng.standard_normal(shape).astype(dtype)
    return x, grad_output


def compare_pass(
    keras_layer: keras.layers.BatchNormalization,
    scratch_layer: BatchNormalization,
    x: np.ndarray,
    grad_output: np.ndarray,
    training: bool,
) -> None:
    """Run both layers forward and backward once and compare everything."""
    expected = keras_forward_backward(keras_layer, x, grad_output, training=training)

    output = scratch_layer.forward(x, training=training)
    grad_input = scratch_layer.backward(grad_output)

    assert_same_dtype("output", output, x.dtype)
    assert_same_dtype("dx", grad_input, x.dtype)
    assert_close("output", output, expected.output)
    assert_close("dx", grad_input, expected.grad_input)
    assert sorted(scratch_layer.grads) == sorted(expected.grad_params)
    for name, grad in expected.grad_params.items():
        assert_same_dtype(f"d{name}", scratch_layer.grads[name], x.dtype)
        assert_close(f"d{name}", scratch_layer.grads[name], grad)
    for name, value, keras_value in zip(
        scratch_layer.weight_order(),
        scratch_layer.get_weights(),
        keras_layer.get_weights(),
        strict=True,
    ):
        assert_close(name, value, keras_value)


# ---------------------------------------------------------------------- #
# Equivalence with Keras
# ---------------------------------------------------------------------- #
@pytest.mark.equivalence
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "shape",
    [(8, 5), (2, 5), (1, 4, 4, 3), (3, 4, 4, 6)],
    ids=["dense_batch8", "dense_batch2", "nhwc_batch1", "nhwc_batch3"],
)
def test_pass_matches_keras(shape: tuple[int, ...], training: bool, dtype: str) -> None:
    keras_layer, scratch_layer = make_pair(shape, dtype, seed=1)
    x, grad_output = random_batch(shape, dtype, seed=2)
    compare_pass(keras_layer, scratch_layer, x, grad_output, training)


@pytest.mark.equivalence
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "center, scale", [(True, False), (False, True), (False, False)]
)
def test_center_scale_flags_match_keras(
    center: bool, scale: bool, training: bool, dtype: str
) -> None:
    shape = (2, 3, 3, 4)
    keras_layer, scratch_layer = make_pair(shape, dtype, seed=3, center=center, scale=scale)
    x, grad_output = random_batch(shape, dtype, seed=4)
    compare_pass(keras_layer, scratch_layer, x, grad_output, training)


@pytest.mark.equivalence
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "axis, shape",
    [(1, (2, 4, 3, 3)), (1, (4, 3, 5)), (-2, (3, 5, 2))],
    ids=["nchw_axis1", "rank3_axis1", "rank3_axis-2"],
)
def test_other_axes_match_keras(
    axis: int, shape: tuple[int, ...], training: bool, dtype: str
) -> None:
    keras_layer, scratch_layer = make_pair(shape, dtype, seed=5, axis=axis)
    x, grad_output = random_batch(shape, dtype, seed=6)
    compare_pass(keras_layer, scratch_layer, x, grad_output, training)


@pytest.mark.equivalence
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 3, 4)], ids=["dense", "nhwc"])
def test_moving_statistics_after_five_calls(shape: tuple[int, ...], dtype: str) -> None:
    keras_layer, scratch_layer = make_pair(shape, dtype, seed=7, momentum=0.8, epsilon=1e-5)
    for step in range(5):
        x, grad_output = random_batch(shape, dtype, seed=100 + step)
        compare_pass(keras_layer, scratch_layer, x, grad_output, training=True)

    # The moving statistics have moved by now, so inference mode tests them too.
    x, grad_output = random_batch(shape, dtype, seed=200)
    compare_pass(keras_layer, scratch_layer, x, grad_output, training=False)


@pytest.mark.equivalence
def test_dense_batch_one_has_zero_variance(dtype: str) -> None:
    """One rank-2 sample per batch: variance 0, output beta, dx 0 (Keras agrees)."""
    shape = (1, 5)
    keras_layer, scratch_layer = make_pair(shape, dtype, seed=8)
    moving_variance_before = scratch_layer.state["moving_variance"].copy()
    x, grad_output = random_batch(shape, dtype, seed=9)

    compare_pass(keras_layer, scratch_layer, x, grad_output, training=True)

    output = scratch_layer.forward(x, training=True)
    grad_input = scratch_layer.backward(grad_output)
    assert_close("output", output, scratch_layer.params["beta"][np.newaxis, :])
    assert_close("dx", grad_input, np.zeros(shape, dtype=dtype))
    assert_close("dgamma", scratch_layer.grads["gamma"], np.zeros(5, dtype=dtype))
    # Two training calls, each multiplying the moving variance by momentum.
    assert_close(
        "moving_variance",
        scratch_layer.state["moving_variance"],
        (moving_variance_before * 0.99 * 0.99).astype(dtype),
    )


# ---------------------------------------------------------------------- #
# Finite differences
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((5, 3), {}),
        ((3, 3, 3, 2), {}),
        ((3, 3, 3, 2), {"center": False, "scale": False}),
        ((2, 3, 2, 2), {"axis": 1}),
    ],
    ids=["dense", "nhwc", "nhwc_no_center_no_scale", "nchw_axis1"],
)
def test_gradients_match_finite_differences(
    shape: tuple[int, ...], kwargs: dict, training: bool
) -> None:
    _, scratch_layer = make_pair(shape, "float64", seed=10, **kwargs)
    x, grad_output = random_batch(shape, "float64", seed=11)

    errors = check_layer_gradients(scratch_layer, x, grad_output, training=training)

    assert set(errors) == {"input", *scratch_layer.params}
    for name, error in errors.items():
        assert error <= GRADIENT_CHECK_LIMIT, f"{name}: relative error {error:.3e}"


# ---------------------------------------------------------------------- #
# Weights, defaults and configuration
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "center, scale", [(True, True), (True, False), (False, True), (False, False)]
)
def test_weights_match_keras_layout(center: bool, scale: bool) -> None:
    keras_layer = keras.layers.BatchNormalization(center=center, scale=scale)
    keras_layer.build((None, 7, 7, 6))
    scratch_layer = BatchNormalization(center=center, scale=scale)
    scratch_layer.build((None, 7, 7, 6))

    assert scratch_layer.weight_order() == [w.name for w in keras_layer.weights]
    assert list(scratch_layer.params) == [w.name for w in keras_layer.trainable_weights]
    assert list(scratch_layer.state) == [w.name for w in keras_layer.non_trainable_weights]
    assert scratch_layer.count_params() == keras_layer.count_params()
    for name, value, keras_value in zip(
        scratch_layer.weight_order(),
        scratch_layer.get_weights(),
        keras_layer.get_weights(),
        strict=True,
    ):
        assert_same_dtype(name, value, keras_value.dtype)
        assert_close(name, value, keras_value)


def test_constructor_defaults_match_keras() -> None:
    scratch_parameters = inspect.signature(BatchNormalization.__init__).parameters
    keras_parameters = inspect.signature(keras.layers.BatchNormalization.__init__).parameters
    shared = [name for name in scratch_parameters if name in keras_parameters]

    assert len(shared) == 10
    for name in shared:
        assert scratch_parameters[name].default == keras_parameters[name].default, name


def test_config_matches_keras() -> None:
    kwargs = {"axis": 1, "momentum": 0.9, "epsilon": 1e-4, "center": False, "scale": True}
    keras_config = keras.layers.BatchNormalization(**kwargs).get_config()
    scratch_config = BatchNormalization(**kwargs).get_config()

    for key in [*kwargs, "beta_initializer", "moving_variance_initializer"]:
        assert key in scratch_config, key
    for key in kwargs:
        assert scratch_config[key] == keras_config[key], key


def test_inference_leaves_moving_statistics_unchanged() -> None:
    _, scratch_layer = make_pair((4, 3), "float64", seed=12)
    before = scratch_layer.get_weights()
    x, _ = random_batch((4, 3), "float64", seed=13)

    scratch_layer.forward(x, training=False)

    after = scratch_layer.get_weights()
    for name, old, new in zip(scratch_layer.weight_order(), before, after, strict=True):
        np.testing.assert_array_equal(new, old, err_msg=name)


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
def built_layer(shape: tuple[int, ...], name: str, **kwargs: object) -> BatchNormalization:
    layer = BatchNormalization(name=name, dtype="float64", **kwargs)
    layer.build(shape)
    return layer


def test_wrong_rank_raises() -> None:
    layer = built_layer((None, 3), "bn_rank")
    with pytest.raises(ValueError, match=r"'bn_rank'.*\(2, 3, 3\) has rank 3.*rank-2"):
        layer.forward(np.zeros((2, 3, 3)))


def test_wrong_channel_count_raises() -> None:
    layer = built_layer((None, 5, 5, 4), "bn_channels")
    with pytest.raises(ValueError, match=r"'bn_channels'.*has 3 channels.*expect 4"):
        layer.forward(np.zeros((2, 5, 5, 3)))


def test_axis_out_of_bounds_raises() -> None:
    layer = BatchNormalization(axis=2, name="bn_axis")
    with pytest.raises(ValueError, match=r"'bn_axis': axis 2 is out of bounds.*rank 2"):
        layer.forward(np.zeros((4, 3)))


def test_unknown_channel_count_raises() -> None:
    layer = BatchNormalization(name="bn_none")
    with pytest.raises(ValueError, match=r"'bn_none'.*\(None, None\) has no size on axis -1"):
        layer.build((None, None))


def test_wrong_grad_output_shape_raises() -> None:
    layer = built_layer((None, 3), "bn_grad")
    layer.forward(np.ones((4, 3)), training=True)
    with pytest.raises(ValueError, match=r"'bn_grad'.*\(4, 2\) does not match.*\(4, 3\)"):
        layer.backward(np.ones((4, 2)))


def test_wrong_grad_output_dtype_raises() -> None:
    layer = built_layer((None, 3), "bn_grad_dtype")
    layer.forward(np.ones((4, 3)), training=True)
    with pytest.raises(TypeError, match=r"'bn_grad_dtype'.*float32.*float64"):
        layer.backward(np.ones((4, 3), dtype=np.float32))


def test_backward_before_forward_raises() -> None:
    layer = built_layer((None, 3), "bn_order")
    with pytest.raises(RuntimeError, match=r"'bn_order'.*before forward"):
        layer.backward(np.ones((4, 3)))


def test_wrong_input_dtype_raises() -> None:
    layer = built_layer((None, 3), "bn_dtype")
    with pytest.raises(TypeError, match=r"'bn_dtype'.*float32.*float64"):
        layer.forward(np.ones((4, 3), dtype=np.float32))


def test_set_weights_wrong_shape_raises() -> None:
    layer = built_layer((None, 3), "bn_shapes")
    weights = [np.ones(3), np.zeros(4), np.zeros(3), np.ones(3)]
    with pytest.raises(ValueError, match=r"'bn_shapes': beta shape \(4,\) .*\(3,\)"):
        layer.set_weights(weights)


def test_set_weights_wrong_count_raises() -> None:
    layer = built_layer((None, 3), "bn_count", center=False)
    weights = [np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)]
    with pytest.raises(ValueError, match=r"'bn_count': expected 3 weight arrays.*received 4"):
        layer.set_weights(weights)


def test_negative_epsilon_raises() -> None:
    with pytest.raises(ValueError, match=r"'bn_epsilon': epsilon must be >= 0, received -0.1"):
        BatchNormalization(epsilon=-0.1, name="bn_epsilon")


def test_unknown_initializer_raises() -> None:
    with pytest.raises(ValueError, match=r"Unknown initializer 'twos'"):
        BatchNormalization(gamma_initializer="twos")
