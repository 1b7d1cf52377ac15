"""Dropout against keras.layers.Dropout with Keras's own mask, plus the
random mask, gradient checks and guards."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from helpers import assert_close, assert_same_dtype

from keras_impl.reference import keras_forward_backward
from scratch.gradient_check import check_layer_gradients
from scratch.layers.dropout import Dropout


def _keras_mask(
    rate: float, shape: tuple[int, ...], dtype: str, seed: int, **kwargs: object
) -> np.ndarray:
    """Return the 0/1 mask that a fresh ``keras.layers.Dropout(rate, seed=seed)`` draws first.

    On an all-ones input the training output is ``scale`` where a unit is
    kept and 0 where it is dropped. TensorFlow draws the uniform noise in the
    input's dtype, so the probe must use the dtype of the real input.
    """
    probe = keras.layers.Dropout(rate, seed=seed, dtype=dtype, **kwargs)
    output = np.asarray(probe(np.ones(shape, dtype=dtype), training=True))
    return (output != 0).astype(dtype)


def _keras_pass(rate: float, x: np.ndarray, grad_output: np.ndarray, seed: int, **kwargs):
    """Run a fresh Keras Dropout with ``seed``: it draws the same first mask as ``_keras_mask``."""
    layer = keras.layers.Dropout(rate, seed=seed, dtype=x.dtype, **kwargs)
    return keras_forward_backward(layer, x, grad_output, training=True)


def _random(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------- #
# Against Keras
# ---------------------------------------------------------------------- #
@pytest.mark.equivalence
@pytest.mark.parametrize("shape", [(1, 16), (4, 10), (2, 5, 5, 3)])
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_dropout_matches_keras_mask(rate: float, shape: tuple[int, ...], dtype: str) -> None:
    seed = int(rate * 10) + len(shape)
    x = _random(shape, dtype, seed)
    grad_output = _random(shape, dtype, seed + 1)
    mask = _keras_mask(rate, shape, dtype, seed)
    expected = _keras_pass(rate, x, grad_output, seed)
    layer = Dropout(rate, dtype=dtype)

    output = layer.forward(x, training=True, mask=mask)
    grad_input = layer.backward(grad_output)

    assert_close("output", output, expected.output)
    assert_close("dL/dx", grad_input, expected.grad_input)
    # The scale is rounded to the dtype first, as in TensorFlow, so the
    # products are the same floating-point numbers.
    assert np.array_equal(output, expected.output)
    assert_same_dtype("output", output, dtype)
    assert_same_dtype("dL/dx", grad_input, dtype)


@pytest.mark.equivalence
@pytest.mark.parametrize(
    ("shape", "noise_shape"),
    [((3, 4, 5), (None, 1, 5)), ((2, 4, 4, 3), (2, 1, 1, 3)), ((6, 7), (1, None))],
)
def test_dropout_noise_shape_matches_keras(
    shape: tuple[int, ...], noise_shape: tuple[int | None, ...], dtype: str
) -> None:
    x = _random(shape, dtype, seed=len(shape))
    grad_output = _random(shape, dtype, seed=len(shape) + 1)
    mask = _keras_mask(0.5, shape, dtype, seed=11, noise_shape=noise_shape)
    expected = _keras_pass(0.5, x, grad_output, seed=11, noise_shape=noise_shape)
    layer = Dropout(0.5, noise_shape=noise_shape, dtype=dtype)

    output = layer.forward(x, training=True, mask=mask)
    grad_input = layer.backward(grad_output)

    assert_close("output", output, expected.output)
    assert_close("dL/dx", grad_input, expected.grad_input)


@pytest.mark.equivalence
@pytest.mark.parametrize(
    ("rate", "training"), [(0.0, True), (1.0, True), (0.0, False), (0.5, False), (1.0, False)]
)
def test_dropout_edge_rates_and_inference_match_keras(
    rate: float, training: bool, dtype: str
) -> None:
    x = _random((3, 4), dtype, seed=1)
    grad_output = _random((3, 4), dtype, seed=2)
    layer = keras.layers.Dropout(rate, seed=1, dtype=dtype)
    expected = keras_forward_backward(layer, x, grad_output, training=training)
    scratch_layer = Dropout(rate, dtype=dtype)

    output = scratch_layer.forward(x, training=training)
    grad_input = scratch_layer.backward(grad_output)

    assert_close("output", output, expected.output)
    # NOTE: Keras returns tf.zeros_like(x) for rate=1, which has no gradient,
    # so GradientTape reports None for dL/dx; the true gradient is zero.
    keras_grad = expected.grad_input
    if keras_grad.dtype == object and keras_grad.item() is None:
        keras_grad = np.zeros_like(x)
    assert_close("dL/dx", grad_input, keras_grad)
    assert_same_dtype("output", output, dtype)
    assert_same_dtype("dL/dx", grad_input, dtype)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_dropout_rate_validation_matches_keras(rate: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Received: rate={rate}")):
        keras.layers.Dropout(rate)
    message = f"Dropout 'bad_rate': rate must be a float between 0 and 1, received rate={rate}"
    with pytest.raises(ValueError, match=re.escape(message)):
        Dropout(rate, name="bad_rate")


# ---------------------------------------------------------------------- #
# Scratch's own random mask
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_dropout_random_mask_statistics(rate: float) -> None:
    size = 40_000
    x = np.ones((4, size // 4))
    layer = Dropout(rate, seed=3)

    output = layer.forward(x, training=True)

    kept = output != 0
    standard_error = np.sqrt(rate * (1 - rate) / size)
    assert abs(kept.mean() - (1 - rate)) < 5 * standard_error
    assert np.allclose(output[kept], 1 / (1 - rate))
    # Inverted dropout keeps the expected value: mean close to 1.
    assert abs(output.mean() - 1.0) < 5 * standard_error / (1 - rate)


def test_dropout_seed_reproduces_masks() -> None:
    x = np.ones((3, 50))
    first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)

    a1, a2 = first.forward(x, training=True), first.forward(x, training=True)
    b1, b2 = second.forward(x, training=True), second.forward(x, training=True)

    assert np.array_equal(a1, b1)
    assert np.array_equal(a2, b2)
    assert not np.array_equal(a1, a2)


def test_dropout_random_mask_follows_noise_shape() -> None:
    layer = Dropout(0.5, noise_shape=(None, 1, 6), seed=0)
    x = np.ones((4, 5, 6))

    output = layer.forward(x, training=True)

    assert np.array_equal(output, np.broadcast_to(output[:, :1, :], x.shape))
    assert 0 < np.count_nonzero(output) < output.size


def test_dropout_backward_uses_forward_mask() -> None:
    layer = Dropout(0.4, seed=5)
    x = np.ones((3, 20))
    output = layer.forward(x, training=True)

    grad_input = layer.backward(np.ones_like(x))

    assert np.array_equal(grad_input, output)


@pytest.mark.parametrize("shape", [(1, 6), (3, 2, 2, 2)])
@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_dropout_gradient_check(rate: float, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    mask = rng.uniform(size=shape) >= rate

    errors = check_layer_gradients(Dropout(rate), x, forward_kwargs={"mask": mask})

    assert errors["input"] <= 1e-6


@pytest.mark.parametrize("training", [True, False])
def test_dropout_identity_gradient_check(training: bool) -> None:
    x = np.random.default_rng(0).standard_normal((2, 5))
    rate = 0.0 if training else 0.5

    errors = check_layer_gradients(Dropout(rate), x, training=training)

    assert errors["input"] <= 1e-6


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("noise_shape", "message"),
    [
        ("abc", "noise_shape must be a tuple or list of integers, received noise_shape='abc'"),
        (5, "noise_shape must be a tuple or list of integers, received noise_shape=5"),
        ((2, 0), "every noise_shape entry must be a positive integer or None, received 0"),
        ((2.5, 1), "every noise_shape entry must be a positive integer or None, received 2.5"),
    ],
)
def test_dropout_rejects_bad_noise_shape(noise_shape: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Dropout 'bad_noise': {message}")):
        Dropout(0.5, noise_shape=noise_shape, name="bad_noise")


def test_dropout_rejects_noise_shape_of_other_rank() -> None:
    layer = Dropout(0.5, noise_shape=(None, 1), name="noise_rank")
    message = (
        "Dropout 'noise_rank': noise_shape (None, 1) has rank 2, but the input shape "
        "(2, 3, 4) has rank 3"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((2, 3, 4)), training=True)


def test_dropout_rejects_noise_shape_not_broadcasting() -> None:
    layer = Dropout(0.5, noise_shape=(None, 2), name="noise_cast")
    message = (
        "Dropout 'noise_cast': noise_shape (None, 2) does not broadcast to the input shape (2, 3)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((2, 3)), training=True)


@pytest.mark.parametrize("mask_shape", [(2, 4), (3,), (2, 3, 1)])
def test_dropout_rejects_mask_shape(mask_shape: tuple[int, ...]) -> None:
    layer = Dropout(0.5, name="mask_shape")
    message = (
        f"Dropout 'mask_shape': mask shape {mask_shape} does not broadcast to "
        "the input shape (2, 3)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((2, 3)), training=True, mask=np.ones(mask_shape))


def test_dropout_rejects_mask_values() -> None:
    layer = Dropout(0.5, name="mask_values")
    with pytest.raises(
        ValueError, match=re.escape("Dropout 'mask_values': mask must contain only 0 and 1")
    ):
        layer.forward(np.ones((2, 3)), training=True, mask=np.full((2, 3), 0.5))


@pytest.mark.parametrize(("rate", "training"), [(0.5, False), (0.0, True), (1.0, True)])
def test_dropout_rejects_mask_when_unused(rate: float, training: bool) -> None:
    layer = Dropout(rate, name="mask_unused")
    message = (
        "Dropout 'mask_unused': a mask applies only in training mode with 0 < rate < 1, "
        f"received training={training} and rate={rate}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((2, 3)), training=training, mask=np.ones((2, 3)))


def test_dropout_rejects_backward_before_forward() -> None:
    message = "Dropout 'early_drop': backward() was called before forward()"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        Dropout(0.5, name="early_drop").backward(np.ones((2, 3)))


@pytest.mark.parametrize("training", [True, False])
def test_dropout_rejects_grad_output_shape(training: bool) -> None:
    layer = Dropout(0.5, name="drop_grad", seed=0)
    layer.forward(np.ones((2, 3)), training=training)
    message = (
        "Dropout 'drop_grad': grad_output shape (2, 4) does not match the forward "
        "output shape (2, 3)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.backward(np.ones((2, 4)))


def test_dropout_rejects_wrong_dtypes() -> None:
    layer = Dropout(0.5, dtype="float64", name="drop_dtype")
    message = "Dropout 'drop_dtype': input dtype float32 does not match the layer's dtype float64"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.forward(np.ones((2, 3), dtype=np.float32), training=True)
    with pytest.raises(TypeError, match=re.escape("Dropout 'drop_dtype': input dtype int64")):
        layer.forward(np.ones((2, 3), dtype=np.int64), training=True)

    layer.forward(np.ones((2, 3)), training=True)
    message = "Dropout 'drop_dtype': grad_output dtype float32 does not match the layer's dtype"
    with pytest.raises(TypeError, match=re.escape(message)):
        layer.backward(np.ones((2, 3), dtype=np.float32))
