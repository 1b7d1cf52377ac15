"""A stack of scratch layers run in order: the twin of ``keras.Sequential``.

Forward chains the layers from first to last::

    h_0 = x,   h_i = layer_i(h_{i-1}),   y = h_n

and backward applies the chain rule in the opposite order: given dL/dy it
calls ``layer_n.backward``, feeds the result to ``layer_{n-1}.backward``, and
so on, returning dL/dx. On the way every layer stores dL/dw for its own
trainable weights, which the model exposes under ``"{layer.name}/{weight}"``
(for example ``"g_up1/kernel"``), the keys optimisers use for their slots.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence

import numpy as np

from scratch.layers.base import Layer

logger = logging.getLogger(__name__)


def _accepts_gradient_options(layer: Layer) -> bool:
    """Return whether ``layer.backward`` takes ``weight_gradients`` and ``input_gradient``."""
    # A layer written outside this package (a student's, say) may define
    # backward(grad_output) only; Sequential then runs it in full.
    parameters = inspect.signature(layer.backward).parameters
    return "weight_gradients" in parameters and "input_gradient" in parameters


class Sequential:
    """Layers applied one after another, with a hand-chained backward pass.

    Args:
        layers: the layers, in order. Their names must be unique.
        name: the model's name (default ``"sequential"``).
        seed: an int, a ``np.random.Generator`` or None. When given, each
            layer gets its own generator (spawned in layer order from this
            one) for its weight initialisers and dropout masks, replacing the
            generator the layer was created with. With None the layers keep
            their own generators.

    Call ``build(input_shape)`` (batch axis first, e.g. ``(None, 100)``) to
    create all weights before the first forward pass.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        name: str | None = None,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self.name = name if name is not None else "sequential"
        self.layers = list(layers)
        if not self.layers:
            raise ValueError(
                f"Sequential '{self.name}': expected at least one layer, received none."
            )
        names = [layer.name for layer in self.layers]
        duplicates = sorted({layer_name for layer_name in names if names.count(layer_name) > 1})
        if duplicates:
            raise ValueError(
                f"Sequential '{self.name}': layer names must be unique, but {duplicates} "
                "occur more than once; pass name=... to each layer."
            )
        if seed is not None:
            self._seed_layers(seed)
        self.input_shape: tuple[int | None, ...] | None = None
        self.built = False

    def _seed_layers(self, seed: int | np.random.Generator) -> None:
        if isinstance(seed, np.random.Generator):
            children = seed.spawn(len(self.layers))
        else:
            children = [
                np.random.default_rng(sequence)
                for sequence in np.random.SeedSequence(seed).spawn(len(self.layers))
            ]
        for layer, rng in zip(self.layers, children, strict=True):
            layer.rng = rng

    # ------------------------------------------------------------------ #
    # Building
    # ------------------------------------------------------------------ #
    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Build every layer in turn, each on the output shape of the one before."""
        shape = tuple(input_shape)
        self.input_shape = shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        self.built = True

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        """Return the output shape for inputs of ``input_shape``."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    @property
    def output_shape(self) -> tuple[int | None, ...]:
        """The output shape for the shape given to ``build`` (batch axis None)."""
        if self.input_shape is None:
            raise RuntimeError(f"Sequential '{self.name}' is not built; call build() first.")
        return self.compute_output_shape(self.input_shape)

    def get_layer(self, name: str) -> Layer:
        """Return the layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(
            f"Sequential '{self.name}' has no layer named {name!r}; "
            f"its layers are {[layer.name for layer in self.layers]}."
        )

    # ------------------------------------------------------------------ #
    # Forward and backward
    # ------------------------------------------------------------------ #
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run ``x`` through every layer; each layer keeps what its backward needs."""
        x = np.asarray(x)
        if self.input_shape is not None and x.shape[1:] != tuple(self.input_shape[1:]):
            raise ValueError(
                f"Sequential '{self.name}': input shape {x.shape} does not match the "
                f"model's input shape {self.input_shape} (batch axis first)."
            )
        h = x
        for layer in self.layers:
            h = layer.forward(h, training=training)
        return h

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray | None:
        """Return dL/dx from dL/dy, storing every layer's weight gradients on the way.

        Args:
            grad_output: dL/dy, of the last forward pass's output shape.
            weight_gradients: with False no layer computes its weight
                gradients and every layer with weights empties its ``grads``,
                so ``self.grads`` raises until the next full backward pass
                (a GAN's generator step needs dL/dx through D, not D's
                weight gradients).
            input_gradient: with False the first layer skips dL/dx and this
                returns None (a GAN's discriminator step needs D's weight
                gradients, not the gradient w.r.t. the images).
        """
        grad = grad_output
        layers = self.layers
        if not input_gradient:
            # Layers below the first one with weights only pass dL/dx down,
            # which the caller does not need here, so they need not run at all.
            with_weights = [index for index, layer in enumerate(layers) if layer.params]
            layers = layers[with_weights[0] :] if with_weights else []
        for index in range(len(layers) - 1, -1, -1):
            layer = layers[index]
            options = {
                "weight_gradients": weight_gradients,
                "input_gradient": input_gradient or index > 0,
            }
            if all(options.values()):
                grad = layer.backward(grad)
            elif _accepts_gradient_options(layer):
                grad = layer.backward(grad, **options)
            else:
                grad = layer.backward(grad)
                if not weight_gradients:
                    layer.grads.clear()
        return grad if input_gradient else None

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    # ------------------------------------------------------------------ #
    # Weights by name
    # ------------------------------------------------------------------ #
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Trainable weights as ``{"layer/weight": array}``; the arrays are the layers' own."""
        return {
            f"{layer.name}/{weight}": value
            for layer in self.layers
            for weight, value in layer.params.items()
        }

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients from the last ``backward``, keyed like ``params``.

        Raises:
            RuntimeError: if a layer has no gradient yet for one of its weights.
        """
        grads = {}
        for layer in self.layers:
            for weight in layer.params:
                if weight not in layer.grads:
                    raise RuntimeError(
                        f"Sequential '{self.name}': layer '{layer.name}' has no gradient "
                        f"for {weight!r}; run forward(x, training=True) and backward() first."
                    )
                grads[f"{layer.name}/{weight}"] = layer.grads[weight]
        return grads

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Non-trainable weights (moving statistics), keyed like ``params``."""
        return {
            f"{layer.name}/{weight}": value
            for layer in self.layers
            for weight, value in layer.state.items()
        }

    def _split_key(self, key: str) -> tuple[Layer, str]:
        layer_name, separator, weight = key.rpartition("/")
        if not separator:
            raise KeyError(
                f"Sequential '{self.name}': weight key {key!r} is not of the form 'layer/weight'."
            )
        return self.get_layer(layer_name), weight

    def assign(self, weights: dict[str, np.ndarray]) -> None:
        """Set weights by key (trainable or not), with the layers' shape and dtype checks."""
        for key, value in weights.items():
            layer, weight = self._split_key(key)
            layer.set_weight(weight, value)

    def get_weights(self) -> list[np.ndarray]:
        """Return copies of all weights, in ``keras_model.get_weights()`` order."""
        return [array for layer in self.layers for array in layer.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set all weights from a list in ``keras_model.get_weights()`` order.

        Raises:
            ValueError: if the number of arrays or any shape differs.
        """
        expected = sum(len(layer.weight_order()) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(
                f"Sequential '{self.name}': expected {expected} weight arrays, "
                f"received {len(weights)}."
            )
        start = 0
        for layer in self.layers:
            count = len(layer.weight_order())
            layer.set_weights(weights[start : start + count])
            start += count

    def count_params(self) -> int:
        """Number of scalars in all weights, trainable or not (as Keras counts)."""
        return sum(layer.count_params() for layer in self.layers)

    # ------------------------------------------------------------------ #
    # Random generators (checkpoints)
    # ------------------------------------------------------------------ #
    def get_rng_state(self) -> dict[str, dict]:
        """Return each layer's generator state, keyed by layer name."""
        return {layer.name: layer.rng.bit_generator.state for layer in self.layers}

    def set_rng_state(self, states: dict[str, dict]) -> None:
        """Restore the generator states returned by ``get_rng_state``."""
        for name, bit_state in states.items():
            self.get_layer(name).rng.bit_generator.state = bit_state

    # ------------------------------------------------------------------ #
    # Description
    # ------------------------------------------------------------------ #
    def summary(self) -> str:
        """Return a table of layers, output shapes and parameter counts, like Keras's."""
        if not self.built:
            raise RuntimeError(f"Sequential '{self.name}' is not built; call build() first.")
        rows = []
        shape = self.input_shape
        for layer in self.layers:
            shape = tuple(layer.compute_output_shape(shape))
            rows.append(
                (f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
            )
        headers = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(3)]

        def line(cells: tuple[str, str, str]) -> str:
            return (
                f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:>{widths[2]}}"
            )

        rule = "-" * len(line(headers))
        trainable = sum(value.size for value in self.params.values())
        non_trainable = sum(value.size for value in self.state.values())
        lines = [
            f'Model: "{self.name}"',
            rule,
            line(headers),
            rule,
            *(line(row) for row in rows),
            rule,
            f"Total params: {trainable + non_trainable:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {non_trainable:,}",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Sequential(name={self.name!r}, layers={[layer.name for layer in self.layers]})"
