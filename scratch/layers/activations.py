"""Element-wise activation layers: ReLU, LeakyReLU, Tanh and Sigmoid.

Each layer keeps what its backward pass needs from the forward pass: the
input for ReLU and LeakyReLU, the output for Tanh and Sigmoid (their
derivatives are cheapest written in terms of the output).

Keras twins: ``keras.layers.ReLU``, ``keras.layers.LeakyReLU``,
``keras.layers.Activation("tanh")`` and ``keras.layers.Activation("sigmoid")``.
The ``activation=`` argument of Dense and the convolutions accepts the same
names (see ``get``).
"""

from __future__ import annotations

import numpy as np

from scratch.layers.base import Layer


def _leaky_relu_slope(negative_slope: float) -> float:
    """Return ``negative_slope`` rounded to float32, the slope ``tf.nn.leaky_relu`` uses.

    TensorFlow stores the op's ``alpha`` as a 32-bit float attribute, so in
    float64 Keras multiplies by ``float32(0.2) = 0.20000000298...``, not 0.2.
    """
    return float(np.float32(negative_slope))


class ReLU(Layer):
    """Rectified linear unit, with Keras's optional slope, cap and threshold.

    Forward::

        f(x) = min(x, max_value)                if x > threshold
             = negative_slope * (x - threshold) otherwise

    So ``f(threshold) = 0``, as in Keras's implementation. Its docstring
    gives ``x`` for ``x >= threshold``, but its code keeps ``x`` only for
    ``x > threshold``.

    Backward: ``df/dx`` is 1 for ``threshold < x < max_value``,
    ``negative_slope`` for ``x < threshold`` and 0 above ``max_value``. At
    the kinks the layer returns the one-sided derivative that Keras 3 with
    TensorFlow returns (``keras/src/activations/activations.py``, checked
    against Keras 3.15):

    - at ``x == threshold``: 0, except ``negative_slope`` when
      ``threshold == 0`` and ``max_value is None`` (Keras then calls
      ``tf.nn.leaky_relu``, whose gradient at 0 is the slope);
    - at ``x == max_value``: 1 (the gradient of ``tf.clip_by_value``),
      except 0 when ``max_value == 6`` and ``threshold == 0`` (Keras then
      calls ``tf.nn.relu6``).

    When Keras calls ``tf.nn.leaky_relu``, the slope is rounded to float32
    as there (see ``_leaky_relu_slope``).

    Args:
        max_value: upper cap, or None for no cap (Keras default None).
        negative_slope: slope below the threshold (default 0.0).
        threshold: where the linear part starts (default 0.0).

    Input shape: any. Output shape: same as input.
    """

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0.0:
            raise ValueError(
                f"ReLU '{self.name}': max_value must be None or >= 0, received {max_value}."
            )
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError(
                f"ReLU '{self.name}': negative_slope must be >= 0, received {negative_slope}."
            )
        if threshold is None or threshold < 0.0:
            raise ValueError(
                f"ReLU '{self.name}': threshold must be >= 0, received {threshold}."
            )
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._x = x

        if self.threshold == 0 and self.max_value is None and self._slope() <= 1:
            # max(x, slope * x) is the same piecewise function for 0 <= slope <= 1.
            # It avoids np.where, which took 26x longer on 1.6M random float32 values.
            slope = x.dtype.type(self._slope())
            return np.maximum(x, slope * x) if slope != 0 else np.maximum(x, 0)

        above = x > self.threshold
        y = np.where(above, x, self._slope() * (x - self.threshold))
        if self.max_value is not None:
            y = np.minimum(y, self.max_value)
        return y.astype(x.dtype, copy=False)

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._x)
        grad_output = self._check_grad_output(grad_output, self._x.shape)
        x = self._x

        linear = x > self.threshold
        if self.max_value is not None and self._uses_relu6():
            linear &= x < self.max_value
        elif self.max_value is not None:
            linear &= x <= self.max_value

        if self._uses_leaky_relu():
            negative = ~linear
        else:
            negative = x < self.threshold

        # linear and negative never overlap, so the sum is 1, the slope or 0 exactly.
        # Arithmetic on the masks, in x's dtype, avoids the slower np.where.
        slope = linear + x.dtype.type(self._slope()) * negative
        return grad_output * slope

    def _slope(self) -> float:
        if self._uses_leaky_relu():
            return _leaky_relu_slope(self.negative_slope)
        return self.negative_slope

    def _uses_leaky_relu(self) -> bool:
        """Return whether Keras computes this ReLU with ``tf.nn.leaky_relu``."""
        return self.negative_slope != 0 and self.max_value is None and self.threshold == 0

    def _uses_relu6(self) -> bool:
        """Return whether Keras computes this ReLU's positive part with ``tf.nn.relu6``."""
        return self.threshold == 0 and self.max_value == 6

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


class LeakyReLU(Layer):
    """Leaky ReLU: ``f(x) = x`` for ``x > 0``, else ``negative_slope * x``.

    Backward: ``df/dx = 1`` for ``x > 0``, else ``negative_slope``. At
    ``x = 0`` this is the slope, as the gradient of ``tf.nn.leaky_relu``.
    The slope is rounded to float32, as in that op (see ``_leaky_relu_slope``).

    Args:
        negative_slope: slope for negative inputs. Keras's default is 0.3;
            the DCGAN paper uses 0.2.

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                f"LeakyReLU '{self.name}': negative_slope must be >= 0, "
                f"received {negative_slope}."
            )
        self.negative_slope = negative_slope
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._x = x

        slope = x.dtype.type(_leaky_relu_slope(self.negative_slope))
        if slope <= 1:
            # max(x, slope * x) is the same piecewise function for slope <= 1,
            # and much faster than np.where on a random mask.
            return np.maximum(x, slope * x)
        return np.where(x > 0, x, slope * x)

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._x)
        grad_output = self._check_grad_output(grad_output, self._x.shape)

        # EXERCISE leaky_relu_backward: slope 1 for x > 0, else _leaky_relu_slope(negative_slope).
        # BEGIN SOLUTION
        # 1 where x > 0, else the slope: both masks and the slope in x's dtype
        # give the exact values without np.where's slow random branches.
        positive = self._x > 0
        slope = positive + self.dtype.type(_leaky_relu_slope(self.negative_slope)) * ~positive
        return grad_output * slope
        # END SOLUTION

    def get_config(self) -> dict:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class Tanh(Layer):
    """Hyperbolic tangent: ``y = tanh(x)``, with ``dy/dx = 1 - y**2``.

    G's output layer: it maps to (-1, 1), the range MNIST pixels are scaled to.

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)

        y = np.tanh(x)
        self._y = y
        return y

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._y)
        grad_output = self._check_grad_output(grad_output, self._y.shape)

        return grad_output * (1 - self._y**2)


class Sigmoid(Layer):
    """Logistic sigmoid: ``y = 1 / (1 + exp(-x))``, with ``dy/dx = y * (1 - y)``.

    The forward pass never calls ``exp`` of a large positive number: for
    ``x < 0`` it uses the equal form ``exp(x) / (1 + exp(x))``.

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)

        exp_minus_abs = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + exp_minus_abs), exp_minus_abs / (1 + exp_minus_abs))
        self._y = y.astype(x.dtype, copy=False)
        return self._y

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._y)
        grad_output = self._check_grad_output(grad_output, self._y.shape)

        # EXERCISE sigmoid_backward: dy/dx = y * (1 - y), with y = sigmoid(x) kept in self._y.
        # BEGIN SOLUTION
        return grad_output * self._y * (1 - self._y)
        # END SOLUTION


class Linear(Layer):
    """Identity, ``y = x``: what ``activation=None`` or ``'linear'`` means in Keras."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._shape = x.shape
        return x

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._shape)
        return self._check_grad_output(grad_output, self._shape)


_ACTIVATIONS = {
    "linear": Linear,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
}


def get(identifier: str | None, name: str | None = None) -> Layer | None:
    """Return a fresh activation layer for an ``activation=`` argument.

    ``None`` and ``'linear'`` return None (no activation). The other names
    are Keras's: ``'relu'``, ``'leaky_relu'`` (Keras's function default slope
    0.2), ``'tanh'`` and ``'sigmoid'``.
    """
    if identifier is None or identifier == "linear":
        return None
    if isinstance(identifier, str) and identifier in _ACTIVATIONS:
        if identifier == "leaky_relu":
            # keras.activations.leaky_relu defaults to 0.2, unlike the
            # LeakyReLU layer's 0.3.
            return LeakyReLU(negative_slope=0.2, name=name)
        return _ACTIVATIONS[identifier](name=name)
    raise ValueError(
        f"Unknown activation {identifier!r}; expected None or one of {sorted(_ACTIVATIONS)}."
    )
