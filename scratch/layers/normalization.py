"""Batch normalization, the twin of ``keras.layers.BatchNormalization``.

The layer has two modes, and so two forward and two backward passes:

- training (``forward(x, training=True)``): normalise with the mean and
  variance of the current batch, update the moving statistics, and let the
  backward pass flow through those batch statistics;
- inference (``training=False``, the default): normalise with the moving
  statistics, which act as constants, so the layer is an affine map per
  channel and its backward pass is a per-channel scaling.

The numerics follow Keras 3.15 with the TensorFlow backend
(``keras/src/layers/normalization/batch_normalization.py``, which calls
``tf.nn.moments`` and ``tf.nn.batch_normalization``), so float32 outputs
agree with Keras's to rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scratch import initializers
from scratch.layers.base import Layer

logger = logging.getLogger(__name__)


@dataclass
class _ForwardCache:
    """Tensors from the last ``forward`` that ``backward`` reuses."""

    training: bool
    x_centered: np.ndarray  # x - mean, with the batch mean or the moving mean
    inv_std: np.ndarray  # 1 / sqrt(variance + epsilon), shape (channels,)
    output_shape: tuple[int, ...]


class BatchNormalization(Layer):
    """Normalise each channel to zero mean and unit variance, then scale and shift.

    For a channel ``c``, with the statistics taken over every axis except
    ``axis`` (the batch axis, and the height and width axes of an NHWC
    image), training mode computes::

        mean     = (1 / N) * sum_i x_i
        variance = (1 / N) * sum_i (x_i - mean)**2       (biased: divides by N)
        x_hat_i  = (x_i - mean) / sqrt(variance + epsilon)
        y_i      = gamma * x_hat_i + beta

    where ``N`` is the number of values per channel (``batch * height * width``
    for NHWC inputs). Inference mode uses ``moving_mean`` and
    ``moving_variance`` in place of ``mean`` and ``variance``. Each
    training-mode call then updates the moving statistics::

        moving_mean     = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + variance * (1 - momentum)

    The moving variance averages the biased batch variance, as in Keras.

    With a batch of one rank-2 input (``N = 1``) the batch variance is 0, so
    ``x_hat`` is 0, the output is ``beta``, the input gradient is 0, and
    ``moving_variance`` shrinks by the factor ``momentum`` per call. Keras
    does the same without a warning.

    Args:
        axis: the channel axis, normalised separately (default -1; use 1 for
            channels-first images). Any axis of the input is accepted.
        momentum: the weight of the old value in the moving averages (0.99).
        epsilon: added to the variance before the square root (1e-3).
        center: if True, add the trainable offset ``beta``; if False the
            layer has no ``beta`` weight.
        scale: if True, multiply by the trainable ``gamma``; if False the
            layer has no ``gamma`` weight.
        beta_initializer: ``"zeros"`` by default.
        gamma_initializer: ``"ones"`` by default.
        moving_mean_initializer: ``"zeros"`` by default.
        moving_variance_initializer: ``"ones"`` by default.
        name, dtype: see ``Layer``.

    Weights, in Keras's ``get_weights()`` order: ``gamma`` and ``beta``
    (trainable, in ``self.params``, each present only when ``scale`` or
    ``center`` is True), then ``moving_mean`` and ``moving_variance``
    (non-trainable, in ``self.state``). All have shape ``(channels,)``.

    Input shape: any, for example ``(batch, features)`` after Dense or
    ``(batch, height, width, channels)`` after a convolution. After the first
    call the rank and the size of ``axis`` are fixed, as in Keras.
    Output shape: same as input.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 0.001,
        center: bool = True,
        scale: bool = True,
        beta_initializer: str | Callable = "zeros",
        gamma_initializer: str | Callable = "ones",
        moving_mean_initializer: str | Callable = "zeros",
        moving_variance_initializer: str | Callable = "ones",
        name: str | None = None,
        dtype: object = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        # NOTE: Keras accepts any epsilon. A negative one can make
        # variance + epsilon negative and the output NaN, so it is rejected here.
        if self.epsilon < 0:
            raise ValueError(
                f"BatchNormalization '{self.name}': epsilon must be >= 0, "
                f"received {epsilon}."
            )
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        # Look the names up now, so a typo fails here and not at the first call.
        self._initializers = {
            "gamma": initializers.get(gamma_initializer),
            "beta": initializers.get(beta_initializer),
            "moving_mean": initializers.get(moving_mean_initializer),
            "moving_variance": initializers.get(moving_variance_initializer),
        }
        self._cache: _ForwardCache | None = None

    # ------------------------------------------------------------------ #
    # Building and shape checks
    # ------------------------------------------------------------------ #
    def _channel_axis(self, ndim: int) -> int:
        """Return ``axis`` as a non-negative index for an input of rank ``ndim``."""
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"BatchNormalization '{self.name}': axis {self.axis} is out of bounds "
                f"for an input of rank {ndim}; expected an axis in [{-ndim}, {ndim - 1}]."
            )
        return self.axis % ndim

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create ``gamma``, ``beta``, ``moving_mean`` and ``moving_variance``.

        A layer without a dtype gets float32, Keras's default.
        """
        input_shape = tuple(input_shape)
        channel_axis = self._channel_axis(len(input_shape))
        channels = input_shape[channel_axis]
        if channels is None:
            raise ValueError(
                f"BatchNormalization '{self.name}': input shape {input_shape} has no "
                f"size on axis {self.axis}; the channel axis must have a known size."
            )
        if self.dtype is None:
            self.dtype = np.dtype("float32")

        shape = (int(channels),)
        names = []
        if self.scale:
            names.append("gamma")
        if self.center:
            names.append("beta")
        for weight_name in names:
            self.params[weight_name] = self._initial_value(weight_name, shape)
        for weight_name in ("moving_mean", "moving_variance"):
            self.state[weight_name] = self._initial_value(weight_name, shape)

        # Every axis except the channel axis is reduced. The statistics are
        # reshaped to ``stats_shape`` to broadcast against the input.
        self._reduction_axes = tuple(i for i in range(len(input_shape)) if i != channel_axis)
        self._stats_shape = tuple(
            shape[0] if i == channel_axis else 1 for i in range(len(input_shape))
        )
        super().build(input_shape)

    def _initial_value(self, weight_name: str, shape: tuple[int, ...]) -> np.ndarray:
        value = np.asarray(self._initializers[weight_name](shape, self.dtype, self.rng))
        if value.shape != shape or value.dtype != self.dtype:
            raise ValueError(
                f"BatchNormalization '{self.name}': the {weight_name} initializer returned "
                f"shape {value.shape} and dtype {value.dtype}, expected {shape} and {self.dtype}."
            )
        return value

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        self._channel_axis(len(input_shape))
        return tuple(input_shape)

    def _check_input_shape(self, shape: tuple[int, ...]) -> None:
        built_shape = self.input_shape
        if len(shape) != len(built_shape):
            raise ValueError(
                f"BatchNormalization '{self.name}': input shape {shape} has rank "
                f"{len(shape)}, but the layer was built for rank-{len(built_shape)} "
                f"inputs of shape {built_shape}. Pass inputs of that rank or create "
                "a new layer."
            )
        channels = self.state["moving_mean"].shape[0]
        if shape[self.axis] != channels:
            raise ValueError(
                f"BatchNormalization '{self.name}': input shape {shape} has "
                f"{shape[self.axis]} channels on axis {self.axis}, but the layer's "
                f"weights expect {channels}. Pass inputs with {channels} channels or "
                "create a new layer."
            )

    # ------------------------------------------------------------------ #
    # Forward
    # ------------------------------------------------------------------ #
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Normalise ``x`` with batch statistics (training) or moving ones (inference)."""
        x = self._prepare_input(x)
        self._check_input_shape(x.shape)
        axes = self._reduction_axes

        if training:
            mean = np.mean(x, axis=axes)  # (channels,)
            x_centered = x - mean.reshape(self._stats_shape)
            variance = np.mean(np.square(x_centered), axis=axes)  # (channels,)
            self._update_moving_statistics(mean, variance)
        else:
            mean = self.state["moving_mean"]
            variance = self.state["moving_variance"]
            x_centered = x - mean.reshape(self._stats_shape)

        inv_std = 1.0 / np.sqrt(variance + self.epsilon)  # (channels,)

        # y = gamma * x_hat + beta, computed in the order TensorFlow uses
        # (tf.nn.batch_normalization): fold gamma and inv_std into one
        # per-channel scale, then y = x * scale + (beta - mean * scale).
        # So float32 outputs round as Keras's do.
        scale = inv_std * self.params["gamma"] if self.scale else inv_std
        if self.center:
            shift = self.params["beta"] - mean * scale
        else:
            shift = -mean * scale
        y = x * scale.reshape(self._stats_shape)
        y += shift.reshape(self._stats_shape)

        self._cache = _ForwardCache(
            training=bool(training),
            x_centered=x_centered,
            inv_std=inv_std,
            output_shape=y.shape,
        )
        return y

    def _update_moving_statistics(self, mean: np.ndarray, variance: np.ndarray) -> None:
        # Keras multiplies by momentum and (1 - momentum) cast to the layer's
        # dtype, so this update does too.
        momentum = self.dtype.type(self.momentum)
        one_minus_momentum = self.dtype.type(1.0 - self.momentum)

        moving_mean = self.state["moving_mean"]
        moving_variance = self.state["moving_variance"]
        self.state["moving_mean"] = moving_mean * momentum + mean * one_minus_momentum
        self.state["moving_variance"] = (
            moving_variance * momentum + variance * one_minus_momentum
        )

    # ------------------------------------------------------------------ #
    # Backward
    # ------------------------------------------------------------------ #
    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray | None:
        """Return dL/dx and store dL/dgamma and dL/dbeta in ``self.grads``.

        Inference mode treats the moving statistics as constants, so
        ``dx = grad_output * gamma * inv_std``. Training mode also
        differentiates through the batch mean and variance.

        With ``weight_gradients=False`` ``self.grads`` is left empty, and with
        ``input_gradient=False`` this returns None. The two per-channel sums
        behind dgamma and dbeta are computed either way, because dx needs them.
        """
        self._require_forward(self._cache)
        cache = self._cache
        grad_output = self._check_grad_output(grad_output, cache.output_shape)
        axes = self._reduction_axes
        inv_std = cache.inv_std  # (channels,)
        x_centered = cache.x_centered

        # EXERCISE batch_norm_backward: per-channel sum_dy, sum_dy_x_centered, then dbeta, dgamma.
        # BEGIN SOLUTION
        # Two per-channel sums of grad_output give every gradient below. Since
        # x_hat = x_centered * inv_std, sum(grad_output * x_hat) is inv_std times
        # the second sum, so x_hat itself is never formed.
        sum_dy = np.sum(grad_output, axis=axes)  # (channels,)
        sum_dy_x_centered = np.sum(grad_output * x_centered, axis=axes)  # (channels,)
        if self.center:
            self.grads["beta"] = sum_dy
        if self.scale:
            self.grads["gamma"] = sum_dy_x_centered * inv_std
        # END SOLUTION

        if not weight_gradients:
            self.grads.clear()
        if not input_gradient:
            return None

        # dx_hat = grad_output * gamma. Only its per-channel factor is kept.
        gamma = self.params["gamma"] if self.scale else np.ones_like(inv_std)

        if not cache.training:
            return grad_output * (gamma * inv_std).reshape(self._stats_shape)

        return self._backward_through_batch_statistics(
            grad_output, gamma, sum_dy, sum_dy_x_centered, x_centered, inv_std
        )

    def _backward_through_batch_statistics(
        self,
        grad_output: np.ndarray,
        gamma: np.ndarray,
        sum_dy: np.ndarray,
        sum_dy_x_centered: np.ndarray,
        x_centered: np.ndarray,
        inv_std: np.ndarray,
    ) -> np.ndarray:
        """Chain rule through x_hat = (x - mean) * inv_std with batch mean and variance.

        Every x_i reaches the loss three ways: directly through x_hat_i, through
        the variance and through the mean. The three steps below collect them,
        with ``dx_hat = grad_output * gamma``.
        Together they equal the compact form
        ``dx = inv_std / N * (N * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat))``.
        """
        n = x_centered.size // x_centered.shape[self.axis]
        stats_shape = self._stats_shape

        # EXERCISE batch_norm_backward: dvar, then dmean, then dx as the sum of its three paths.
        # BEGIN SOLUTION
        # Sums of dx_hat are gamma times the sums of grad_output.
        sum_dx_hat = gamma * sum_dy  # (channels,)
        sum_dx_hat_x_centered = gamma * sum_dy_x_centered  # (channels,)

        # d(inv_std)/d(variance) = -0.5 * (variance + epsilon)**-1.5 = -0.5 * inv_std**3
        dvar = sum_dx_hat_x_centered * -0.5 * inv_std**3  # (channels,)

        # The second term is 0 in exact arithmetic, because the centered
        # values sum to 0. TensorFlow's moments drop it with a stop_gradient on
        # the mean inside the variance. It stays here for the full chain rule.
        dmean = -sum_dx_hat * inv_std  # (channels,)
        dmean = dmean + dvar * -2.0 * np.mean(x_centered, axis=self._reduction_axes)

        # dx = dx_hat * inv_std + dvar * 2 * x_centered / N + dmean / N, with the
        # per-channel factors folded first so each term is one pass over the batch.
        dx = grad_output * (gamma * inv_std).reshape(stats_shape)
        dx += x_centered * (dvar * 2.0 / n).reshape(stats_shape)
        dx += (dmean / n).reshape(stats_shape)
        return dx
        # END SOLUTION

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": self.beta_initializer,
            "gamma_initializer": self.gamma_initializer,
            "moving_mean_initializer": self.moving_mean_initializer,
            "moving_variance_initializer": self.moving_variance_initializer,
        }
