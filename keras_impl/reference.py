"""Run a Keras layer forward and backward, for comparison with a scratch twin.

The backward pass uses ``tf.GradientTape`` on the scalar
``sum(output * grad_output)``, whose gradient with respect to the output is
exactly ``grad_output``. So the returned gradients are the vector-Jacobian
products that a scratch layer's ``backward(grad_output)`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf


@dataclass
class KerasPass:
    """One forward and backward pass of a Keras layer, as NumPy arrays."""

    output: np.ndarray
    grad_input: np.ndarray
    grad_params: dict[str, np.ndarray]


def keras_forward_backward(
    layer: keras.layers.Layer,
    x: np.ndarray,
    grad_output: np.ndarray | None = None,
    training: bool = False,
) -> KerasPass:
    """Return the output of ``layer(x)``, dL/dx and dL/dw for each trainable weight.

    ``grad_output`` is dL/d(output); it defaults to ones. The weight gradients
    are keyed by the weight's short name (``kernel``, ``bias``, ``gamma``, ...).
    """
    x_tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tensor)
        output = layer(x_tensor, training=training)
        if grad_output is None:
            grad_output = np.ones(output.shape, dtype=x.dtype)
        objective = tf.reduce_sum(output * tf.constant(grad_output, dtype=output.dtype))
    variables = list(layer.trainable_weights)
    gradients = tape.gradient(objective, [x_tensor, *[v.value for v in variables]])
    grad_params = {}
    for variable, gradient in zip(variables, gradients[1:], strict=True):
        if gradient is None:
            gradient = np.zeros(variable.shape, dtype=x.dtype)
        grad_params[variable.name] = np.asarray(gradient)
    grad_input = gradients[0]
    if grad_input is None:
        # TensorFlow returns None when the output does not depend on the
        # input at all (e.g. Dropout with rate 1); the gradient is then zero.
        grad_input = np.zeros(x.shape, dtype=x.dtype)
    return KerasPass(
        output=np.asarray(output),
        grad_input=np.asarray(grad_input),
        grad_params=grad_params,
    )
