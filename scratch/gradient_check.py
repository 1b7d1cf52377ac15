"""Finite-difference gradient checks for scratch layers.

A hand-written ``backward`` is only trusted once it agrees with the
derivative measured by perturbing each input entry. The central difference

    df/da[i] ~ (f(a + eps * e_i) - f(a - eps * e_i)) / (2 * eps)

has truncation error O(eps**2), so with ``eps = 1e-6`` in float64 it agrees
with a correct analytic gradient to about 1e-9 relative error. In float32 the
rounding error of ``f`` (about 1e-7 relative) divided by ``2 * eps`` swamps
the result, so every function here requires float64.

For a layer ``y = layer(x)`` the check uses the scalar objective

    L = sum(layer.forward(x) * grad_output)

with a fixed random ``grad_output``. Its gradient with respect to ``x`` (or a
weight) is the vector-Jacobian product that ``backward(grad_output)``
returns (or stores in ``layer.grads``), so one scalar function checks the
whole backward pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from scratch.layers.base import Layer

logger = logging.getLogger(__name__)


def numerical_gradient(
    f: Callable[[], float], array: np.ndarray, epsilon: float = 1e-6
) -> np.ndarray:
    """Estimate ``df/d(array)`` by central differences, one entry at a time.

    ``f`` takes no arguments and must read ``array`` when called. Each entry
    of ``array`` is set to ``a + epsilon`` and ``a - epsilon`` in place and
    then restored to its exact original value, also when ``f`` raises.

    Args:
        f: the scalar function to differentiate.
        array: a writable float64 array that ``f`` depends on.
        epsilon: the step on each side of the current value.

    Returns:
        A float64 array of ``array.shape``.

    Raises:
        TypeError: if ``array`` is not a float64 NumPy array.
        ValueError: if ``array`` is read-only or ``epsilon`` is not positive.
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        received = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise TypeError(
            f"numerical_gradient: the array must be a float64 NumPy array, received "
            f"{received}; finite differences in float32 are dominated by rounding error."
        )
    if not array.flags.writeable:
        raise ValueError("numerical_gradient: the array is read-only; pass a writable array.")
    if not epsilon > 0:
        raise ValueError(f"numerical_gradient: epsilon must be > 0, received {epsilon}.")

    gradient = np.zeros(array.shape, dtype=np.float64)
    for index in np.ndindex(array.shape):
        original = array[index]
        try:
            array[index] = original + epsilon
            f_plus = float(f())

            array[index] = original - epsilon
            f_minus = float(f())
        finally:
            array[index] = original

        gradient[index] = (f_plus - f_minus) / (2 * epsilon)
    return gradient


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Return ``max|analytic - numeric| / max(|analytic| + |numeric|)``.

    Both maxima run over the whole array, so the error is measured against
    the scale of the largest gradient entry. The element-wise CS231n form
    ``max(|a - n| / (|a| + |n|))`` reports a large error for an entry of
    1e-12 next to entries of 1 whenever rounding noise is comparable to that
    entry. This form does not, yet a wrong backward still gives an error near
    1 (for instance 1/3 when the gradient is off by a factor of 2).

    Two all-zero arrays, and empty arrays, have error 0.

    Raises:
        ValueError: if the shapes differ.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(
            f"relative_error: analytic shape {analytic.shape} does not match "
            f"numeric shape {numeric.shape}."
        )
    if analytic.size == 0:
        return 0.0

    difference = float(np.max(np.abs(analytic - numeric)))
    scale = float(np.max(np.abs(analytic) + np.abs(numeric)))
    if scale == 0.0:
        return 0.0
    return difference / scale


def _require_float64(layer: Layer, what: str, value: np.ndarray) -> None:
    if np.asarray(value).dtype != np.float64:
        raise TypeError(
            f"check_layer_gradients: {type(layer).__name__} '{layer.name}' {what} has dtype "
            f"{np.asarray(value).dtype}, expected float64 (finite differences in float32 "
            "are dominated by rounding error). Build the layer with dtype='float64' and "
            "pass float64 inputs."
        )


def check_layer_gradients(
    layer: Layer,
    x: np.ndarray,
    grad_output: np.ndarray | None = None,
    training: bool = True,
    epsilon: float = 1e-6,
    seed: int = 0,
    forward_kwargs: Mapping[str, object] | None = None,
) -> dict[str, float]:
    """Compare a layer's backward pass with central differences.

    The objective is ``L = sum(layer.forward(x, training) * grad_output)``.
    The analytic gradients come from one ``forward`` and one
    ``backward(grad_output)``. The numeric ones come from
    ``numerical_gradient`` on a copy of ``x`` and on every trainable weight in
    ``layer.params``, perturbed in place. So ``forward`` must read
    ``layer.params`` on each call rather than a copy made earlier.

    The layer's non-trainable state (for example batch norm's moving mean and
    variance, which a training-mode forward updates) is restored before every
    forward call and at the end. The objective is then the same function on
    every call, and the layer leaves the check as it entered it.

    A layer with randomness must be made deterministic through
    ``forward_kwargs``, for example ``{"mask": mask}`` for Dropout.

    Near a kink (ReLU at its threshold, for example) the central difference
    straddles two pieces and disagrees with any one-sided derivative, so
    inputs should stay more than ``epsilon`` away from kinks.

    Args:
        layer: a scratch layer with float64 weights (or not built yet).
        x: a float64 input batch. It is copied, never changed.
        grad_output: dL/d(output); None draws a standard normal array of the
            output's shape from ``numpy.random.default_rng(seed)``.
        training: passed to ``forward``.
        epsilon: the finite-difference step.
        seed: the seed for the default ``grad_output``.
        forward_kwargs: extra keyword arguments for ``forward``.

    Returns:
        ``{"input": error, "<weight name>": error, ...}`` with one
        ``relative_error`` for the input and for every trainable weight.

    Raises:
        TypeError: if ``x``, ``grad_output`` or a weight is not float64.
        ValueError: if ``grad_output`` does not have the output's shape.
    """
    _require_float64(layer, "input", x)
    if layer.dtype is not None and layer.dtype != np.float64:
        raise TypeError(
            f"check_layer_gradients: {type(layer).__name__} '{layer.name}' has dtype "
            f"{layer.dtype}, expected float64 (finite differences in float32 are dominated "
            "by rounding error). Build the layer with dtype='float64'."
        )
    x = np.array(x, dtype=np.float64, copy=True)
    forward_kwargs = dict(forward_kwargs or {})
    saved_state = {name: value.copy() for name, value in layer.state.items()}

    def run_forward() -> np.ndarray:
        for name, value in saved_state.items():
            layer.state[name] = value.copy()
        return layer.forward(x, training=training, **forward_kwargs)

    output = run_forward()
    for name, value in layer.params.items():
        _require_float64(layer, f"weight '{name}'", value)

    if grad_output is None:
        rng = np.random.default_rng(seed)
        grad_output = rng.standard_normal(output.shape)
    grad_output = np.asarray(grad_output)
    _require_float64(layer, "grad_output", grad_output)
    if grad_output.shape != output.shape:
        raise ValueError(
            f"check_layer_gradients: {type(layer).__name__} '{layer.name}' grad_output shape "
            f"{grad_output.shape} does not match the output shape {output.shape}."
        )

    # Analytic gradients: one forward and one backward pass.
    run_forward()
    analytic = {"input": np.array(layer.backward(grad_output), copy=True)}
    for name in layer.params:
        analytic[name] = np.array(layer.grads[name], copy=True)

    # Numeric gradients of the same scalar objective.
    def objective() -> float:
        return float(np.sum(run_forward() * grad_output))

    errors = {"input": relative_error(analytic["input"], numerical_gradient(objective, x, epsilon))}
    for name, value in layer.params.items():
        numeric = numerical_gradient(objective, value, epsilon)
        errors[name] = relative_error(analytic[name], numeric)

    for name, value in saved_state.items():
        layer.state[name] = value
    logger.debug("Gradient check of %s '%s': %s", type(layer).__name__, layer.name, errors)
    return errors
