"""Find the first layer where a scratch model and its Keras twin disagree.

``compare_models`` runs the Keras model once, forward and backward under
``tf.GradientTape``, and keeps every layer's input, output and gradients.
Then each scratch layer is run on its own, fed the Keras layer's input in
the forward pass and the Keras gradient at the layer's output in the
backward pass. So each row of the table measures one layer alone: an error
shows only in the row of the layer that makes it, not in every row after
it (forward) or before it (backward).

In training mode, a scratch Dropout layer reuses the mask that Keras drew:
the kept positions are where the Keras output is non-zero.
NOTE: a unit whose input is exactly 0 then counts as dropped. Its output is
0 either way, but its gradient becomes 0 where Keras keeps it. Random
real-valued inputs almost never contain an exact 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from keras_impl.model_weights import copy_keras_model_to_scratch, pair_layers
from scratch.sequential import Sequential

# Largest allowed max-abs difference, as a fraction of the Keras tensor's
# max abs value; the same rule as the test suite's assert_close.
DEFAULT_FACTOR = {np.dtype("float64"): 1e-10, np.dtype("float32"): 1e-5}


@dataclass
class LayerComparison:
    """One row of the comparison: the max abs differences for one layer.

    ``grad_params_diff`` is None for a layer without trainable weights. The
    ``*_scale`` fields are the Keras tensors' max abs values, which set the
    tolerance.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    forward_diff: float
    grad_input_diff: float
    grad_params_diff: float | None
    forward_scale: float
    grad_input_scale: float
    grad_params_scale: float | None
    factor: float

    def _within(self, diff: float | None, scale: float | None) -> bool:
        if diff is None:
            return True
        tolerance = self.factor * scale if scale else self.factor
        return math.isfinite(diff) and diff <= tolerance

    @property
    def passed(self) -> bool:
        """True when every difference is within ``factor`` times its Keras tensor's magnitude."""
        return (
            self._within(self.forward_diff, self.forward_scale)
            and self._within(self.grad_input_diff, self.grad_input_scale)
            and self._within(self.grad_params_diff, self.grad_params_scale)
        )


def _max_abs(array: np.ndarray) -> float:
    return float(np.max(np.abs(array))) if array.size else 0.0


def _max_abs_diff(actual: np.ndarray, expected: np.ndarray, what: str) -> float:
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise ValueError(
            f"{what}: scratch shape {actual.shape} does not match Keras shape {expected.shape}."
        )
    if not actual.size:
        return 0.0
    return float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))


@dataclass
class KerasLayerPass:
    """The tensors of one Keras layer in one forward and backward pass of the model."""

    x: np.ndarray
    y: np.ndarray
    grad_output: np.ndarray
    grad_input: np.ndarray
    grad_params: dict[str, np.ndarray]


def keras_layer_passes(
    keras_model: keras.Model,
    x: np.ndarray,
    grad_output: np.ndarray | None = None,
    training: bool = False,
) -> list[KerasLayerPass]:
    """Run the Keras model layer by layer under one tape; return each layer's tensors.

    The backward pass differentiates ``sum(model(x) * grad_output)``, so the
    gradients are the vector-Jacobian products a scratch ``backward`` computes.
    ``grad_output`` defaults to ones.
    """
    layers = list(keras_model.layers)
    inputs, outputs = [], []
    h = tf.constant(x)
    with tf.GradientTape() as tape:
        for layer in layers:
            tape.watch(h)
            inputs.append(h)
            h = layer(h, training=training)
            outputs.append(h)
        if grad_output is None:
            grad_output = np.ones(h.shape, dtype=x.dtype)
        objective = tf.reduce_sum(h * tf.constant(grad_output, dtype=h.dtype))

    variables = [list(layer.trainable_weights) for layer in layers]
    flat_variables = [variable for group in variables for variable in group]
    gradients = tape.gradient(objective, [*inputs, *[v.value for v in flat_variables]])

    def to_numpy(grad: tf.Tensor | None, shape: tuple) -> np.ndarray:
        return np.zeros(shape, dtype=x.dtype) if grad is None else np.asarray(grad)

    grad_inputs = [
        to_numpy(grad, tuple(tensor.shape))
        for tensor, grad in zip(inputs, gradients[: len(inputs)], strict=True)
    ]
    # The gradient at a layer's output is the gradient at the next layer's input.
    grad_outputs = [*grad_inputs[1:], np.asarray(grad_output)]

    passes, position = [], len(inputs)
    for index, group in enumerate(variables):
        grad_params = {}
        for variable in group:
            grad_params[variable.name] = to_numpy(gradients[position], tuple(variable.shape))
            position += 1
        passes.append(
            KerasLayerPass(
                x=np.asarray(inputs[index]),
                y=np.asarray(outputs[index]),
                grad_output=grad_outputs[index],
                grad_input=grad_inputs[index],
                grad_params=grad_params,
            )
        )
    return passes


def _compare_weight_grads(
    scratch_layer: object, keras_grads: dict[str, np.ndarray]
) -> tuple[float | None, float | None]:
    """Return the (diff, scale) of the weight whose gradient differs most relative to its size."""
    if not keras_grads:
        return None, None
    worst_ratio, worst = -1.0, (None, None)
    for name, keras_grad in keras_grads.items():
        if name not in scratch_layer.grads:
            raise KeyError(
                f"Layer '{scratch_layer.name}': Keras has a gradient for {name!r} but the "
                f"scratch layer's gradients are {sorted(scratch_layer.grads)}."
            )
        diff = _max_abs_diff(scratch_layer.grads[name], keras_grad, f"{scratch_layer.name}/{name}")
        scale = _max_abs(keras_grad)
        ratio = diff / scale if scale else diff
        if not math.isfinite(ratio) or ratio > worst_ratio:
            worst_ratio, worst = (math.inf if not math.isfinite(ratio) else ratio), (diff, scale)
    return worst


def compare_models(
    keras_model: keras.Model,
    scratch_model: Sequential,
    x: np.ndarray,
    grad_output: np.ndarray | None = None,
    training: bool = False,
    factor: float | None = None,
    copy_weights: bool = False,
) -> list[LayerComparison]:
    """Compare the two models layer by layer on input ``x``; return one row per layer.

    Args:
        keras_model: a Keras Sequential model.
        scratch_model: its scratch twin, with the same layers in the same order.
        x: the input batch, in the models' dtype.
        grad_output: dL/d(model output); defaults to ones.
        training: run both in training mode (batch statistics in batch
            normalization, which also updates both models' moving statistics).
        factor: tolerance as a fraction of each Keras tensor's magnitude;
            defaults to 1e-10 in float64 and 1e-5 in float32.
        copy_weights: first copy every Keras weight into the scratch model.
            Leave False to compare the weights the scratch model already has.
    """
    x = np.asarray(x)
    if x.dtype not in DEFAULT_FACTOR:
        raise TypeError(
            f"compare_models: x dtype {x.dtype} is not supported; expected float32 or float64."
        )
    expected_shape = (x.shape[0], *keras_model.outputs[0].shape[1:])
    if grad_output is not None and np.shape(grad_output) != expected_shape:
        raise ValueError(
            f"compare_models: grad_output shape {np.shape(grad_output)} does not match the "
            f"model output shape {expected_shape}."
        )
    pairs = pair_layers(keras_model, scratch_model)
    if copy_weights:
        copy_keras_model_to_scratch(keras_model, scratch_model)
    if factor is None:
        factor = DEFAULT_FACTOR[x.dtype]

    passes = keras_layer_passes(keras_model, x, grad_output, training)

    rows = []
    for (keras_layer, scratch_layer), keras_pass in zip(pairs, passes, strict=True):
        if training and type(keras_layer).__name__ == "Dropout":
            keep = keras_pass.y != 0
            y = scratch_layer.forward(keras_pass.x, training=True, mask=keep)
        else:
            y = scratch_layer.forward(keras_pass.x, training=training)
        dx = scratch_layer.backward(keras_pass.grad_output)
        grad_params_diff, grad_params_scale = _compare_weight_grads(
            scratch_layer, keras_pass.grad_params
        )

        rows.append(
            LayerComparison(
                name=keras_layer.name,
                kind=type(keras_layer).__name__,
                output_shape=tuple(keras_pass.y.shape),
                forward_diff=_max_abs_diff(y, keras_pass.y, f"{keras_layer.name} output"),
                grad_input_diff=_max_abs_diff(
                    dx, keras_pass.grad_input, f"{keras_layer.name} input gradient"
                ),
                grad_params_diff=grad_params_diff,
                forward_scale=_max_abs(keras_pass.y),
                grad_input_scale=_max_abs(keras_pass.grad_input),
                grad_params_scale=grad_params_scale,
                factor=factor,
            )
        )
    return rows


def first_failure(rows: list[LayerComparison]) -> LayerComparison | None:
    """Return the first row that is out of tolerance, or None when all pass."""
    return next((row for row in rows if not row.passed), None)


def format_table(rows: list[LayerComparison]) -> str:
    """Return the rows as a fixed-width text table, one line per layer."""
    headers = (
        "layer", "class", "output shape", "forward", "grad input", "grad weights", "status"
    )

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.2e}"

    cells = [
        (
            row.name,
            row.kind,
            str(row.output_shape),
            number(row.forward_diff),
            number(row.grad_input_diff),
            number(row.grad_params_diff),
            "ok" if row.passed else "FAIL",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [headers, *cells]) for i in range(len(headers))]

    def render(line: tuple[str, ...]) -> str:
        return "  ".join(
            f"{text:<{width}}" if i < 3 else f"{text:>{width}}"
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        )

    rule = "-" * len(render(headers))
    lines = [
        "max abs difference, scratch vs Keras, each layer fed Keras's input and output gradient",
        rule,
        render(headers),
        rule,
        *(render(line) for line in cells),
        rule,
    ]
    failure = first_failure(rows)
    if failure is None and rows:
        lines.append(f"all {len(rows)} layers within {rows[0].factor:g} x magnitude")
    elif failure is not None:
        lines.append(f"first failing layer: {failure.name} ({failure.kind})")
    return "\n".join(lines)
