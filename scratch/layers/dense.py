"""The fully connected layer, twin of ``keras.layers.Dense``."""

from __future__ import annotations

import numpy as np

from scratch import initializers
from scratch.layers import activations
from scratch.layers.base import Layer


class Dense(Layer):
    """Fully connected layer: ``y = activation(x @ kernel + bias)``.

    Forward, for an input ``x`` of shape ``(batch, ..., in)``::

        z = x @ kernel + bias        # (batch, ..., units)
        y = activation(z)

    Backward, given ``dy = dL/dy``::

        dz      = activation'(z) * dy
        dkernel = sum over all rows of  x_row^T dz_row    # (in, units)
        dbias   = sum over all rows of  dz_row            # (units,)
        dx      = dz @ kernel^T                           # (batch, ..., in)

    where a "row" is one vector along the last axis. As in Keras, an input of
    rank above 2 is contracted over its last axis only, so every position
    along the middle axes shares the same kernel.

    Args:
        units: positive integer, the size of the output's last axis.
        activation: None (or ``'linear'``) for none, or ``'relu'``,
            ``'leaky_relu'``, ``'tanh'``, ``'sigmoid'``
            (see ``scratch.layers.activations.get``).
        use_bias: whether to add ``bias`` (default True).
        kernel_initializer: default ``'glorot_uniform'``, as in Keras.
        bias_initializer: default ``'zeros'``.
        name, dtype: as for every layer (see ``scratch.layers.base.Layer``).

    Weights (Keras order): ``kernel`` of shape ``(in, units)``, then
    ``bias`` of shape ``(units,)`` when ``use_bias``.

    Input shape: ``(batch, ..., in)``, rank at least 2.
    Output shape: ``(batch, ..., units)``.
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | initializers.Initializer = "zeros",
        name: str | None = None,
        dtype: object = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"Dense '{self.name}': units must be a positive integer, received units={units!r}."
            )
        self.units = int(units)
        self.activation_name = activation
        # A named sub-layer does not take a number from the default-name counters.
        self.activation = activations.get(activation, name=f"{self.name}_activation")
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._x: np.ndarray | None = None
        self._output_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create ``kernel`` (in, units) and ``bias`` (units,) for inputs of ``input_shape``."""
        self._check_rank(input_shape)
        if self.dtype is None:
            # Keras's default float type (keras.config.floatx()).
            self.dtype = np.dtype("float32")
        input_dim = input_shape[-1]

        self.params["kernel"] = self.kernel_initializer(
            (input_dim, self.units), self.dtype, self.rng
        )
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.units,), self.dtype, self.rng)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        self._check_rank(input_shape)
        return (*input_shape[:-1], self.units)

    def _check_rank(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) < 2:
            raise ValueError(
                f"Dense '{self.name}': expected an input of rank >= 2 "
                f"(batch, ..., features), received shape {tuple(input_shape)} "
                f"of rank {len(input_shape)}."
            )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        self._check_rank(x.shape)
        x = self._prepare_input(x)
        kernel = self.params["kernel"]
        if x.shape[-1] != kernel.shape[0]:
            raise ValueError(
                f"Dense '{self.name}': input shape {x.shape} has last dimension "
                f"{x.shape[-1]}, but the kernel {kernel.shape} expects {kernel.shape[0]}."
            )
        self._x = x

        # EXERCISE dense_layer: z = x @ kernel, plus the bias when use_bias is set.
        # BEGIN SOLUTION
        z = x @ kernel  # (batch, ..., units)
        if self.use_bias:
            z = z + self.params["bias"]
        # END SOLUTION

        y = z if self.activation is None else self.activation.forward(z, training=training)
        self._output_shape = y.shape
        return y

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray | None:
        """Return dL/dx and store dL/dkernel and dL/dbias (see ``Layer.backward``).

        ``weight_gradients=False`` empties ``self.grads`` after the pass;
        ``input_gradient=False`` returns None. Both products are small here,
        so the exercise below computes everything.
        """
        dx = self._full_backward(grad_output)
        if not weight_gradients:
            self._discard_weight_gradients()
        return dx if input_gradient else None

    def _full_backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Return dL/dx and store dL/dkernel and dL/dbias, every gradient of the layer."""
        self._require_forward(self._x)
        grad_output = self._check_grad_output(grad_output, self._output_shape)
        x = self._x
        kernel = self.params["kernel"]

        dz = grad_output if self.activation is None else self.activation.backward(grad_output)

        # EXERCISE dense_layer: set self.grads for kernel and bias from x and dz; return dx.
        # BEGIN SOLUTION
        # Every row along the last axis is one sample for the kernel.
        x_rows = x.reshape(-1, x.shape[-1])  # (rows, in)
        dz_rows = dz.reshape(-1, self.units)  # (rows, units)
        self.grads["kernel"] = x_rows.T @ dz_rows  # (in, units)
        if self.use_bias:
            self.grads["bias"] = dz_rows.sum(axis=0)  # (units,)

        dx = dz @ kernel.T  # (batch, ..., in)
        return dx
        # END SOLUTION

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation_name,
            "use_bias": self.use_bias,
            "kernel_initializer": getattr(self.kernel_initializer, "__name__", None),
            "bias_initializer": getattr(self.bias_initializer, "__name__", None),
        }
