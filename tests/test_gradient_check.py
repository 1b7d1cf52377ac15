"""Tests for the finite-difference checker itself: it must pass correct
backward passes and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from scratch.gradient_check import check_layer_gradients, numerical_gradient, relative_error
from scratch.layers.base import Layer
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout

TOLERANCE = 1e-6


class _WrongInputGradDense(Dense):
    """Dense whose dx is 1 % too large."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return 1.01 * super().backward(grad_output)


class _WrongBiasGradDense(Dense):
    """Dense whose dbias is the first row of grad_output instead of the sum over the batch."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dx = super().backward(grad_output)
        self.grads["bias"] = np.asarray(grad_output)[0].copy()
        return dx


class _RunningShift(Layer):
    """y = x * kernel + moving_shift; training updates moving_shift like batch norm's stats."""

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.params["kernel"] = np.linspace(0.5, 1.5, input_shape[-1]).astype(self.dtype)
        self.state["moving_shift"] = np.zeros(input_shape[-1], dtype=self.dtype)
        super().build(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._x = x
        y = x * self.params["kernel"] + self.state["moving_shift"]
        if training:
            self.state["moving_shift"] = 0.9 * self.state["moving_shift"] + 0.1 * x.mean(axis=0)
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.grads["kernel"] = (grad_output * self._x).sum(axis=0)
        return grad_output * self.params["kernel"]


def test_numerical_gradient_of_cubic() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))

    numeric = numerical_gradient(lambda: float(np.sum(a**3)), a)

    assert relative_error(3 * a**2, numeric) <= 1e-9


def test_numerical_gradient_restores_array() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 2))
    original = a.copy()

    numerical_gradient(lambda: float(np.sum(np.sin(a))), a)

    assert np.array_equal(a, original)


def test_numerical_gradient_restores_array_on_error() -> None:
    a = np.array([1.0, 2.0])

    def failing() -> float:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(failing, a)
    assert np.array_equal(a, [1.0, 2.0])


def test_numerical_gradient_rejects_float32() -> None:
    a = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64.*received float32"):
        numerical_gradient(lambda: float(a.sum()), a)


def test_numerical_gradient_rejects_bad_arguments() -> None:
    a = np.ones(3)
    with pytest.raises(ValueError, match="epsilon must be > 0, received 0"):
        numerical_gradient(lambda: float(a.sum()), a, epsilon=0.0)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        numerical_gradient(lambda: float(a.sum()), a)


@pytest.mark.parametrize(
    ("analytic", "numeric", "expected"),
    [
        (np.zeros(3), np.zeros(3), 0.0),
        (np.array([1.0, -2.0]), np.array([1.0, -2.0]), 0.0),
        (np.array([2.0, 4.0]), np.array([1.0, 2.0]), 2.0 / 6.0),
        (np.array([1.0, -1.0]), np.array([-1.0, 1.0]), 1.0),
        (np.zeros(0), np.zeros(0), 0.0),
    ],
)
def test_relative_error_values(analytic: np.ndarray, numeric: np.ndarray, expected: float) -> None:
    assert relative_error(analytic, numeric) == pytest.approx(expected)


def test_relative_error_ignores_noise_on_tiny_entries() -> None:
    analytic = np.array([1.0, 1e-12])
    numeric = np.array([1.0, 3e-12])

    assert relative_error(analytic, numeric) < 1e-11
    # The element-wise form would report 0.5 here.
    elementwise = np.abs(analytic - numeric) / (np.abs(analytic) + np.abs(numeric))
    assert np.max(elementwise) == pytest.approx(0.5)


def test_relative_error_shape_mismatch() -> None:
    with pytest.raises(
        ValueError, match=r"analytic shape \(2,\) does not match numeric shape \(3,\)"
    ):
        relative_error(np.zeros(2), np.zeros(3))


def test_check_passes_correct_dense() -> None:
    rng = np.random.default_rng(2)
    layer = Dense(3, activation="tanh", bias_initializer="random_normal", dtype="float64")
    x = rng.standard_normal((4, 5))

    errors = check_layer_gradients(layer, x)

    assert list(errors) == ["input", "kernel", "bias"]
    for name, error in errors.items():
        assert error <= TOLERANCE, f"{name}: relative error {error:.2e}"


def test_check_detects_wrong_input_gradient() -> None:
    rng = np.random.default_rng(3)
    layer = _WrongInputGradDense(3, dtype="float64")

    errors = check_layer_gradients(layer, rng.standard_normal((4, 5)))

    assert errors["input"] > 1e-3
    assert errors["kernel"] <= TOLERANCE


def test_check_detects_wrong_bias_gradient() -> None:
    rng = np.random.default_rng(4)
    layer = _WrongBiasGradDense(3, dtype="float64")

    errors = check_layer_gradients(layer, rng.standard_normal((4, 5)))

    assert errors["bias"] > 1e-2
    assert errors["input"] <= TOLERANCE
    assert errors["kernel"] <= TOLERANCE


def test_check_restores_layer_state() -> None:
    rng = np.random.default_rng(5)
    layer = _RunningShift(dtype="float64")
    x = rng.standard_normal((4, 3)) + 2.0
    layer.forward(x, training=True)
    state_before = layer.state["moving_shift"].copy()
    kernel_before = layer.params["kernel"].copy()

    errors = check_layer_gradients(layer, x, training=True)

    for name, error in errors.items():
        assert error <= TOLERANCE, f"{name}: relative error {error:.2e}"
    assert np.array_equal(layer.state["moving_shift"], state_before)
    assert np.array_equal(layer.params["kernel"], kernel_before)


def test_check_leaves_input_unchanged() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4))
    original = x.copy()

    check_layer_gradients(Dense(2, dtype="float64"), x)

    assert np.array_equal(x, original)


def test_check_dropout_with_explicit_mask() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6))
    mask = rng.uniform(size=x.shape) >= 0.4

    errors = check_layer_gradients(Dropout(0.4), x, forward_kwargs={"mask": mask})

    assert errors["input"] <= TOLERANCE


def test_check_rejects_float32_input() -> None:
    x = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(
        TypeError, match="Dense 'gc_dense' input has dtype float32, expected float64"
    ):
        check_layer_gradients(Dense(2, name="gc_dense"), x)


def test_check_rejects_float32_layer() -> None:
    layer = Dense(2, dtype="float32", name="gc_dense32")
    with pytest.raises(TypeError, match="Dense 'gc_dense32' has dtype float32, expected float64"):
        check_layer_gradients(layer, np.ones((2, 3)))


def test_check_rejects_grad_output_shape() -> None:
    layer = Dense(2, dtype="float64", name="gc_dense_shape")
    with pytest.raises(
        ValueError, match=r"grad_output shape \(2, 3\) does not match the output shape \(2, 2\)"
    ):
        check_layer_gradients(layer, np.ones((2, 3)), grad_output=np.ones((2, 3)))
