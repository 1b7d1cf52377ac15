"""Copy all weights between a Keras Sequential model and its scratch twin.

Layers are paired in order (Keras's ``model.layers`` leaves out the input
layer). Before anything is copied, every pair is checked: same layer name,
same kind (class), and the same number and shapes of weights. A mismatch
raises with both layers and both shapes in the message, and leaves the
target model unchanged. The per-layer copy is ``keras_impl.weights``.

The optimiser helpers read and write a Keras Adam's slots under the keys
that ``scratch.optimizers`` uses (``"momentum/g_up1/kernel"``). They use
the private ``_momentums``, ``_velocities`` and ``_get_variable_index`` of
``keras.optimizers.Adam`` (Keras 3.15), which have no public accessor.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_impl.weights import ACTIVATION_TWINS, copy_keras_to_scratch, copy_scratch_to_keras
from scratch.layers.base import Layer
from scratch.sequential import Sequential


def _is_twin(keras_layer: keras.layers.Layer, scratch_layer: Layer) -> bool:
    """True when the scratch layer's class, or one of its bases, mirrors the Keras class."""
    expected = type(keras_layer).__name__
    if isinstance(keras_layer, keras.layers.Activation):
        function_name = getattr(keras_layer.activation, "__name__", "")
        expected = ACTIVATION_TWINS.get(function_name, expected)
    return expected in [cls.__name__ for cls in type(scratch_layer).__mro__]


def _describe(layer: object, side: str) -> str:
    return f"{side} layer '{layer.name}' ({type(layer).__name__})"


def pair_layers(
    keras_model: keras.Model, scratch_model: Sequential, check_names: bool = True
) -> list[tuple[keras.layers.Layer, Layer]]:
    """Return the layers of both models side by side, after checking that they match.

    Every pair must be of the same kind: the Keras class name is the scratch
    layer's class or one of its bases, or ``Activation("tanh")`` pairs with
    ``Tanh``. The names must be equal unless ``check_names`` is False. The
    weights must agree in number, shapes and dtypes.

    Raises:
        ValueError: on the first kind, name, count or shape mismatch, naming both layers.
        TypeError: on the first dtype mismatch.
    """
    keras_layers = list(keras_model.layers)
    scratch_layers = list(scratch_model.layers)
    if len(keras_layers) != len(scratch_layers):
        raise ValueError(
            f"Keras model '{keras_model.name}' has {len(keras_layers)} layers "
            f"{[layer.name for layer in keras_layers]} but scratch model "
            f"'{scratch_model.name}' has {len(scratch_layers)} "
            f"{[layer.name for layer in scratch_layers]}."
        )

    pairs = list(zip(keras_layers, scratch_layers, strict=True))
    for index, (keras_layer, scratch_layer) in enumerate(pairs):
        keras_side = _describe(keras_layer, "Keras")
        scratch_side = _describe(scratch_layer, "scratch")
        if not _is_twin(keras_layer, scratch_layer):
            raise ValueError(
                f"Layer {index}: {keras_side} and {scratch_side} are different kinds of layer."
            )
        if check_names and keras_layer.name != scratch_layer.name:
            raise ValueError(
                f"Layer {index}: {keras_side} and {scratch_side} have different names; "
                "build both models from the same preset."
            )

        keras_shapes = [tuple(weight.shape) for weight in keras_layer.weights]
        scratch_names = scratch_layer.weight_order()
        scratch_arrays = scratch_layer.get_weights()
        scratch_shapes = [tuple(array.shape) for array in scratch_arrays]
        if len(keras_shapes) != len(scratch_shapes):
            raise ValueError(
                f"Layer {index}: {keras_side} has {len(keras_shapes)} weights "
                f"{keras_shapes} but {scratch_side} has {len(scratch_shapes)} "
                f"{dict(zip(scratch_names, scratch_shapes, strict=True))}."
            )
        for keras_weight, name, scratch_array in zip(
            keras_layer.weights, scratch_names, scratch_arrays, strict=True
        ):
            if tuple(keras_weight.shape) != scratch_array.shape:
                raise ValueError(
                    f"Layer {index}: {keras_side} weight '{keras_weight.name}' has shape "
                    f"{tuple(keras_weight.shape)} but {scratch_side} weight '{name}' has "
                    f"shape {scratch_array.shape}."
                )
            if np.dtype(keras_weight.dtype) != scratch_array.dtype:
                raise TypeError(
                    f"Layer {index}: {keras_side} weight '{keras_weight.name}' has dtype "
                    f"{keras_weight.dtype} but {scratch_side} weight '{name}' has dtype "
                    f"{scratch_array.dtype}; build both models with the same dtype."
                )
    return pairs


def copy_keras_model_to_scratch(
    keras_model: keras.Model, scratch_model: Sequential, check_names: bool = True
) -> None:
    """Set every weight of ``scratch_model`` (trainable and moving statistics) from Keras."""
    for keras_layer, scratch_layer in pair_layers(keras_model, scratch_model, check_names):
        copy_keras_to_scratch(keras_layer, scratch_layer)


def copy_scratch_model_to_keras(
    scratch_model: Sequential, keras_model: keras.Model, check_names: bool = True
) -> None:
    """Set every weight of ``keras_model`` (trainable and moving statistics) from scratch."""
    for keras_layer, scratch_layer in pair_layers(keras_model, scratch_model, check_names):
        copy_scratch_to_keras(scratch_layer, keras_layer)


def keras_optimizer_state(
    optimizer: keras.optimizers.Optimizer, keras_model: keras.Model
) -> dict[str, np.ndarray]:
    """Return a built Keras Adam's state in the format of scratch ``Optimizer.get_state``.

    Keys: ``"iterations"`` and ``"momentum/layer/weight"``, ``"velocity/layer/weight"``
    for every trainable weight of ``keras_model``.
    """
    state = {"iterations": np.asarray(int(optimizer.iterations), dtype=np.int64)}
    slots = (("momentum", optimizer._momentums), ("velocity", optimizer._velocities))
    for slot, variables in slots:
        for layer in keras_model.layers:
            for weight in layer.trainable_weights:
                index = optimizer._get_variable_index(weight)
                state[f"{slot}/{layer.name}/{weight.name}"] = np.asarray(variables[index])
    return state


def set_keras_optimizer_state(
    optimizer: keras.optimizers.Optimizer, keras_model: keras.Model, state: dict[str, np.ndarray]
) -> None:
    """Set a built Keras Adam's iteration count and slots from a scratch optimiser's state.

    Raises:
        KeyError: if ``state`` lacks a slot for one of the model's trainable weights.
    """
    slots = (("momentum", optimizer._momentums), ("velocity", optimizer._velocities))
    for slot, variables in slots:
        for layer in keras_model.layers:
            for weight in layer.trainable_weights:
                key = f"{slot}/{layer.name}/{weight.name}"
                if key not in state:
                    raise KeyError(
                        f"set_keras_optimizer_state: the state has no {key!r} entry; "
                        f"build the scratch optimiser on the same model first."
                    )
                variables[optimizer._get_variable_index(weight)].assign(state[key])
    optimizer.iterations.assign(int(state["iterations"]))


def keras_weights_by_key(keras_model: keras.Model) -> dict[str, np.ndarray]:
    """Return every Keras weight as ``{"layer/weight": array}``, the scratch model's keys."""
    weights = {}
    for layer in keras_model.layers:
        for variable in layer.weights:
            weights[f"{layer.name}/{variable.name}"] = np.asarray(variable)
    return weights
