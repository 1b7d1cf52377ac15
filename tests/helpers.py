"""Comparison helpers shared by the test files.

Tolerances follow one rule: the max abs error between two tensors must be at
most ``factor`` times the magnitude (max abs value) of the expected tensor,
with ``factor`` 1e-10 in float64 and 1e-5 in float32. An all-zero expected
tensor uses ``factor`` as an absolute tolerance.
"""

from __future__ import annotations

import numpy as np

RELATIVE_FACTOR = {np.dtype("float64"): 1e-10, np.dtype("float32"): 1e-5}


def tolerance_for(expected: np.ndarray, factor: float) -> float:
    magnitude = float(np.max(np.abs(expected))) if expected.size else 0.0
    return factor * magnitude if magnitude > 0 else factor


def assert_close(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    factor: float | None = None,
) -> None:
    """Assert that ``actual`` (scratch) matches ``expected`` (Keras) in shape and value.

    The failure message names the tensor, both shapes or the max abs
    difference, and the tolerance.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{name}: scratch shape {actual.shape} != Keras shape {expected.shape}"
    )
    if factor is None:
        factor = RELATIVE_FACTOR[np.dtype(expected.dtype)]
    tolerance = tolerance_for(expected, factor)
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
    assert np.all(np.isfinite(actual)), f"{name}: scratch tensor has non-finite values"
    assert difference <= tolerance, (
        f"{name}: max abs difference {difference:.3e} > tolerance {tolerance:.3e} "
        f"(factor {factor:g} x magnitude {tolerance_for(expected, 1.0):.3e})"
    )


def assert_same_dtype(name: str, actual: np.ndarray, dtype: np.dtype) -> None:
    assert np.asarray(actual).dtype == np.dtype(dtype), (
        f"{name}: dtype {np.asarray(actual).dtype}, expected {np.dtype(dtype)}"
    )


def assert_layer_matches_keras(
    layer: object,
    keras_layer: object,
    x: np.ndarray,
    grad_output: np.ndarray,
    training: bool = True,
) -> None:
    """Assert that a scratch layer's output and every gradient match its Keras twin.

    Both layers must already share weights. Checks the output shape, output,
    dL/dx and dL/dw for every trainable weight, and that each keeps the input dtype.
    """
    from keras_impl.reference import keras_forward_backward

    dtype = x.dtype
    expected = keras_forward_backward(keras_layer, x, grad_output, training=training)

    output = layer.forward(x, training=training)
    grad_input = layer.backward(grad_output)

    assert layer.compute_output_shape(x.shape) == expected.output.shape
    assert_close("output", output, expected.output)
    assert_close("dL/dx", grad_input, expected.grad_input)
    assert sorted(layer.grads) == sorted(expected.grad_params)
    for name, grad in expected.grad_params.items():
        assert_close(f"dL/d{name}", layer.grads[name], grad)
        assert_same_dtype(f"dL/d{name}", layer.grads[name], dtype)
    assert_same_dtype("output", output, dtype)
    assert_same_dtype("dL/dx", grad_input, dtype)
