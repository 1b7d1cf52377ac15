"""Copy the weights of one layer between Keras and scratch.

Weights are matched by their Keras short name (``kernel``, ``bias``,
``gamma``, ``beta``, ``moving_mean``, ``moving_variance``) and by their order
in ``keras_layer.weights``, which a scratch layer's ``weight_order()``
reproduces. Nothing is written until every weight has been checked, so a
failed copy leaves both layers unchanged.

Layers are twins when their class names are equal (``Dense`` and ``Dense``,
``Conv2DTranspose`` and ``Conv2DTranspose``), or when the Keras layer is an
``Activation`` whose function is the scratch layer's (``Activation("tanh")``
and ``Tanh``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np

from scratch.layers.base import Layer

logger = logging.getLogger(__name__)

# Scratch class for each function name that keras.layers.Activation accepts here.
ACTIVATION_TWINS = {
    "linear": "Linear",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
}


@dataclass(frozen=True)
class _WeightInfo:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


def _describe(layer: keras.layers.Layer | Layer, side: str) -> str:
    """Return e.g. ``Dense 'dense_1' (Keras)``."""
    return f"{type(layer).__name__} '{layer.name}' ({side})"


def _twin_class_name(keras_layer: keras.layers.Layer) -> str:
    """Return the class name of the scratch layer that mirrors ``keras_layer``."""
    if isinstance(keras_layer, keras.layers.Activation):
        function_name = getattr(keras_layer.activation, "__name__", repr(keras_layer.activation))
        if function_name not in ACTIVATION_TWINS:
            raise TypeError(
                f"{_describe(keras_layer, 'Keras')} applies activation {function_name!r}, "
                f"which has no scratch twin; supported: {sorted(ACTIVATION_TWINS)}."
            )
        return ACTIVATION_TWINS[function_name]
    return type(keras_layer).__name__


def _check_twins(keras_layer: keras.layers.Layer, scratch_layer: Layer) -> None:
    if not isinstance(scratch_layer, Layer):
        raise TypeError(
            f"Expected a scratch layer (a scratch.layers.base.Layer) to pair with "
            f"{_describe(keras_layer, 'Keras')}, received {type(scratch_layer).__name__}."
        )
    if not isinstance(keras_layer, keras.layers.Layer):
        raise TypeError(
            f"Expected a Keras layer to pair with {_describe(scratch_layer, 'scratch')}, "
            f"received {type(keras_layer).__name__}."
        )
    expected = _twin_class_name(keras_layer)
    if type(scratch_layer).__name__ != expected:
        raise TypeError(
            f"{_describe(keras_layer, 'Keras')} does not match "
            f"{_describe(scratch_layer, 'scratch')}: expected a scratch {expected}."
        )


def _keras_weights(keras_layer: keras.layers.Layer) -> list[_WeightInfo]:
    return [
        _WeightInfo(
            variable.name, tuple(int(dim) for dim in variable.shape), np.dtype(variable.dtype)
        )
        for variable in keras_layer.weights
    ]


def _scratch_weights(scratch_layer: Layer) -> list[_WeightInfo]:
    names = scratch_layer.weight_order()
    values = scratch_layer.get_weights()
    return [
        _WeightInfo(name, value.shape, value.dtype)
        for name, value in zip(names, values, strict=True)
    ]


def _check_weights_match(keras_layer: keras.layers.Layer, scratch_layer: Layer) -> None:
    """Raise unless both layers have the same weight names, shapes and dtypes in order."""
    _check_twins(keras_layer, scratch_layer)
    keras_side = _describe(keras_layer, "Keras")
    scratch_side = _describe(scratch_layer, "scratch")
    keras_infos = _keras_weights(keras_layer)
    scratch_infos = _scratch_weights(scratch_layer)

    keras_names = [info.name for info in keras_infos]
    scratch_names = [info.name for info in scratch_infos]
    if keras_names != scratch_names:
        hints = []
        if not keras_layer.built:
            hints.append(f"{keras_side} is not built; call it on an input or build(input_shape)")
        if not scratch_layer.built:
            hints.append(
                f"{scratch_side} is not built; run forward on an input or build(input_shape)"
            )
        hint = f" ({'; '.join(hints)}.)" if hints else ""
        raise ValueError(
            f"{keras_side} weights {keras_names} do not match {scratch_side} "
            f"weights {scratch_names}.{hint}"
        )

    for keras_info, scratch_info in zip(keras_infos, scratch_infos, strict=True):
        name = keras_info.name
        if keras_info.shape != scratch_info.shape:
            raise ValueError(
                f"{keras_side} {name} shape {keras_info.shape} does not match "
                f"{scratch_side} {name} shape {scratch_info.shape}."
            )
        if keras_info.dtype != scratch_info.dtype:
            raise TypeError(
                f"{keras_side} {name} dtype {keras_info.dtype} does not match "
                f"{scratch_side} {name} dtype {scratch_info.dtype}; build both "
                "layers with the same dtype."
            )


def copy_keras_to_scratch(keras_layer: keras.layers.Layer, scratch_layer: Layer) -> None:
    """Copy every weight of ``keras_layer`` into its scratch twin.

    Both layers must be built. Trainable and non-trainable weights are
    copied (batch norm's moving statistics too).

    Raises:
        TypeError: if the layers are not twins or a dtype differs.
        ValueError: if the weight names or any shape differ.
    """
    _check_weights_match(keras_layer, scratch_layer)

    for variable in keras_layer.weights:
        scratch_layer.set_weight(variable.name, np.asarray(variable.numpy()))
    logger.debug(
        "Copied %d weights from %s to %s",
        len(keras_layer.weights),
        _describe(keras_layer, "Keras"),
        _describe(scratch_layer, "scratch"),
    )


def copy_scratch_to_keras(scratch_layer: Layer, keras_layer: keras.layers.Layer) -> None:
    """Copy every weight of ``scratch_layer`` into its Keras twin.

    Both layers must be built. Trainable and non-trainable weights are
    copied (batch norm's moving statistics too).

    Raises:
        TypeError: if the layers are not twins or a dtype differs.
        ValueError: if the weight names or any shape differ.
    """
    _check_weights_match(keras_layer, scratch_layer)

    for variable, value in zip(keras_layer.weights, scratch_layer.get_weights(), strict=True):
        variable.assign(value)
    logger.debug(
        "Copied %d weights from %s to %s",
        len(keras_layer.weights),
        _describe(scratch_layer, "scratch"),
        _describe(keras_layer, "Keras"),
    )
