"""The base class every scratch layer builds on.

A scratch layer mirrors a Keras layer: the same argument names, the same
weight names and shapes, and the same weight order in ``get_weights()``.
Unlike Keras, it has no automatic differentiation. Each layer writes out its
own ``backward``: given dL/d(output) it returns dL/d(input) and stores dL/dw
for every trainable weight ``w`` in ``self.grads``. Two keywords of
``backward`` let a caller skip work whose result it would throw away (see
``Layer.backward``).

Weights live in two ordered dictionaries:

- ``self.params``: trainable weights (``kernel``, ``bias``, ``gamma``,
  ``beta``), updated by an optimiser from ``self.grads``.
- ``self.state``: non-trainable weights (``moving_mean``,
  ``moving_variance``), updated by the layer itself in training mode.

``get_weights()`` returns them in the order Keras creates them, so a list
from ``keras_layer.get_weights()`` can be passed straight to
``set_weights()``.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))

_layer_counters: dict[str, itertools.count] = {}


def _unique_name(prefix: str) -> str:
    """Return ``prefix``, then ``prefix_1``, ``prefix_2``, ... as Keras does."""
    counter = _layer_counters.setdefault(prefix, itertools.count())
    index = next(counter)
    return prefix if index == 0 else f"{prefix}_{index}"


def _snake_case(name: str) -> str:
    """Turn ``Conv2DTranspose`` into ``conv2d_transpose`` with Keras's own rule."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def standardize_dtype(dtype: object, layer_name: str) -> np.dtype | None:
    """Return ``np.dtype('float32')`` or ``np.dtype('float64')`` (or None).

    Raises:
        TypeError: if ``dtype`` is neither of the two floating types.
    """
    if dtype is None:
        return None
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(
            f"Layer '{layer_name}': dtype {dtype!r} is not a NumPy dtype; "
            "expected 'float32' or 'float64'."
        ) from error
    if resolved not in FLOAT_DTYPES:
        raise TypeError(
            f"Layer '{layer_name}': dtype {resolved} is not supported; "
            "expected 'float32' or 'float64'."
        )
    return resolved


class Layer:
    """A layer with a hand-written forward and backward pass.

    Args:
        name: the layer's name. Defaults to the snake-case class name with a
            counter, as in Keras (``dense``, ``dense_1``, ...).
        dtype: ``'float32'``, ``'float64'`` or None. With None the layer takes
            the dtype of its first input. Inputs of any other dtype
            raise a TypeError instead of being cast silently.

    Subclasses implement ``build(input_shape)`` (create the weights),
    ``compute_output_shape(input_shape)``, ``forward(x, training)`` and
    ``backward(grad_output)``.
    """

    def __init__(self, name: str | None = None, dtype: object = None) -> None:
        prefix = _snake_case(type(self).__name__)
        self.name = name if name is not None else _unique_name(prefix)
        self.dtype = standardize_dtype(dtype, self.name)
        self.built = False
        self.input_shape: tuple[int | None, ...] | None = None
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng()

    # ------------------------------------------------------------------ #
    # Weights
    # ------------------------------------------------------------------ #
    def weight_order(self) -> list[str]:
        """Names of all weights in Keras's ``get_weights()`` order.

        The default is trainable weights first, then non-trainable ones,
        each in creation order. A layer whose Keras twin orders them
        differently overrides this.
        """
        return list(self.params) + list(self.state)

    def get_weights(self) -> list[np.ndarray]:
        """Return copies of all weights, in Keras's ``get_weights()`` order."""
        return [self._weight(name).copy() for name in self.weight_order()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set all weights from a list in Keras's ``get_weights()`` order.

        Raises:
            ValueError: if the number of arrays or any shape differs.
            TypeError: if any array's dtype differs from the layer's dtype.
        """
        names = self.weight_order()
        if len(weights) != len(names):
            raise ValueError(
                f"Layer '{self.name}': expected {len(names)} weight arrays "
                f"{names}, received {len(weights)}."
            )
        for name, value in zip(names, weights, strict=True):
            self.set_weight(name, value)

    def set_weight(self, name: str, value: np.ndarray) -> None:
        """Copy ``value`` into one weight, in place, after checking shape and dtype."""
        current = self._weight(name)
        value = np.asarray(value)
        if value.shape != current.shape:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': {name} shape "
                f"{value.shape} does not match the layer's {current.shape}."
            )
        if value.dtype != current.dtype:
            raise TypeError(
                f"{type(self).__name__} '{self.name}': {name} dtype "
                f"{value.dtype} does not match the layer's {current.dtype}."
            )
        # Copy into the existing array, so that optimisers and containers
        # holding a reference to it see the new values.
        current[...] = value

    def _weight(self, name: str) -> np.ndarray:
        if name in self.params:
            return self.params[name]
        if name in self.state:
            return self.state[name]
        raise KeyError(
            f"Layer '{self.name}' has no weight named {name!r}; "
            f"its weights are {self.weight_order()}."
        )

    def count_params(self) -> int:
        """Number of scalars in all weights, trainable or not (as Keras counts)."""
        return sum(self._weight(name).size for name in self.weight_order())

    # ------------------------------------------------------------------ #
    # Building and checking inputs
    # ------------------------------------------------------------------ #
    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis first)."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        """Return the output shape for ``input_shape`` (batch axis included)."""
        return tuple(input_shape)

    def _prepare_input(self, x: np.ndarray) -> np.ndarray:
        """Check the input's dtype and build the layer on first use."""
        x = np.asarray(x)
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"{type(self).__name__} '{self.name}': input dtype {x.dtype} is "
                "not supported; expected float32 or float64."
            )
        if self.dtype is None:
            self.dtype = x.dtype
        elif x.dtype != self.dtype:
            raise TypeError(
                f"{type(self).__name__} '{self.name}': input dtype {x.dtype} "
                f"does not match the layer's dtype {self.dtype}; cast the input "
                "with x.astype(...) or build the layer with the other dtype."
            )
        if not self.built:
            self.build(x.shape)
        return x

    def _require_forward(self, cache: object) -> None:
        if cache is None:
            raise RuntimeError(
                f"{type(self).__name__} '{self.name}': backward() was called "
                "before forward(); run forward(x, training=True) first."
            )

    def _check_grad_output(self, grad_output: np.ndarray, expected_shape: tuple) -> np.ndarray:
        grad_output = np.asarray(grad_output)
        if grad_output.shape != tuple(expected_shape):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': grad_output shape "
                f"{grad_output.shape} does not match the forward output shape "
                f"{tuple(expected_shape)}."
            )
        if grad_output.dtype != self.dtype:
            raise TypeError(
                f"{type(self).__name__} '{self.name}': grad_output dtype "
                f"{grad_output.dtype} does not match the layer's dtype {self.dtype}."
            )
        return grad_output

    # ------------------------------------------------------------------ #
    # Forward and backward
    # ------------------------------------------------------------------ #
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray | None:
        """Return dL/d(input) from dL/d(output) and store dL/dw in ``self.grads``.

        Args:
            grad_output: dL/d(output), of the last forward pass's output shape.
            weight_gradients: compute and store the weight gradients. With
                False a layer that has weights skips them and empties
                ``self.grads``, so no optimiser can apply the gradients of an
                earlier pass by mistake. Layers without weights ignore it.
            input_gradient: compute dL/d(input). With False the caller does
                not need it: a layer may skip it and return None (a network's
                first layer), or compute it anyway when it is cheap.
        """
        raise NotImplementedError

    def _discard_weight_gradients(self) -> None:
        """Empty ``self.grads`` when a backward pass skips the weight gradients."""
        self.grads.clear()

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    def get_config(self) -> dict:
        """Constructor arguments, as in Keras (``name`` and ``dtype``)."""
        return {"name": self.name, "dtype": None if self.dtype is None else str(self.dtype)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
