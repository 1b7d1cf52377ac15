"""Inverted dropout, twin of ``keras.layers.Dropout``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scratch.layers.base import Layer


class Dropout(Layer):
    """Drop each input unit with probability ``rate`` during training.

    Training forward, with ``keep ~ Bernoulli(1 - rate)`` drawn per unit::

        scale = 1 / (1 - rate)
        y     = where(keep, x * scale, 0)

    Scaling the kept units by ``scale`` keeps the expected value of every
    unit equal to ``x``, so inference needs no correction: there ``y = x``.

    Backward: ``dx = where(keep, dy * scale, 0)``, with the mask of the last
    forward pass.

    The edge cases follow Keras 3.15 with the TensorFlow backend
    (``keras/src/backend/tensorflow/random.py`` and ``tf.nn`` dropout).
    ``rate = 0`` is the identity and ``rate = 1`` returns zeros, also in
    training. ``scale`` is computed in float64 and rounded to the input's
    dtype before the product, so the outputs equal Keras's bit for bit.
    TensorFlow keeps a unit when a uniform draw in [0, 1) is ``>= rate``.
    This layer draws the same way from NumPy, so its masks differ from
    Keras's for the same seed. Pass ``mask=`` to ``forward`` to reproduce a
    Keras mask.

    Args:
        rate: float in [0, 1], the fraction of units to drop.
        noise_shape: shape of the mask, broadcast over the input; ``None``
            entries take the input's size. For example ``(batch, 1, features)``
            drops the same features at every time step. None means the
            input's shape.
        seed: seed for this layer's NumPy generator.
        name, dtype: as for every layer (see ``scratch.layers.base.Layer``).

    Input shape: any. Output shape: same as input.
    """

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        name: str | None = None,
        dtype: object = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if not 0 <= rate <= 1:
            raise ValueError(
                f"Dropout '{self.name}': rate must be a float between 0 and 1, "
                f"received rate={rate}."
            )
        self.rate = rate
        self.noise_shape = self._validate_noise_shape(noise_shape)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._keep: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._input_shape: tuple[int, ...] | None = None

    def _validate_noise_shape(
        self, noise_shape: Sequence[int | None] | None
    ) -> tuple[int | None, ...] | None:
        if noise_shape is None:
            return None
        if isinstance(noise_shape, str):
            raise ValueError(
                f"Dropout '{self.name}': noise_shape must be a tuple or list of "
                f"integers, received noise_shape={noise_shape!r}."
            )
        try:
            noise_shape = tuple(noise_shape)
        except TypeError as error:
            raise ValueError(
                f"Dropout '{self.name}': noise_shape must be a tuple or list of "
                f"integers, received noise_shape={noise_shape!r}."
            ) from error
        for index, dim in enumerate(noise_shape):
            if dim is None:
                continue
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
                raise ValueError(
                    f"Dropout '{self.name}': every noise_shape entry must be a "
                    f"positive integer or None, received {dim!r} at index {index} "
                    f"of noise_shape={noise_shape}."
                )
        return noise_shape

    def _concrete_noise_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Return the mask's shape for an input: ``noise_shape`` with None filled in."""
        if self.noise_shape is None:
            return input_shape
        if len(self.noise_shape) != len(input_shape):
            raise ValueError(
                f"Dropout '{self.name}': noise_shape {self.noise_shape} has rank "
                f"{len(self.noise_shape)}, but the input shape {input_shape} has rank "
                f"{len(input_shape)}."
            )
        shape = tuple(
            size if dim is None else dim
            for dim, size in zip(self.noise_shape, input_shape, strict=True)
        )
        for dim, size in zip(shape, input_shape, strict=True):
            if dim not in (1, size):
                raise ValueError(
                    f"Dropout '{self.name}': noise_shape {self.noise_shape} does not "
                    f"broadcast to the input shape {input_shape}; each entry must be "
                    "None, 1 or the input's size."
                )
        return shape

    def _check_mask(self, mask: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """Return ``mask`` as booleans after checking its shape and values."""
        mask = np.asarray(mask)
        broadcastable = mask.ndim == len(input_shape) and all(
            dim in (1, size) for dim, size in zip(mask.shape, input_shape, strict=True)
        )
        if not broadcastable:
            raise ValueError(
                f"Dropout '{self.name}': mask shape {mask.shape} does not broadcast "
                f"to the input shape {input_shape}; expected the same rank with each "
                "dimension 1 or the input's size."
            )
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(
                f"Dropout '{self.name}': mask must contain only 0 and 1 (1 keeps "
                f"a unit), received values {np.unique(mask)[:5]}."
            )
        return mask.astype(bool)

    def forward(
        self, x: np.ndarray, training: bool = False, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Apply dropout in training mode, the identity otherwise.

        Args:
            x: the input.
            training: drop units only when True.
            mask: optional 0/1 array (1 keeps a unit) used instead of a random
                draw. It must broadcast to ``x`` and is only accepted in
                training mode with ``0 < rate < 1``, the one case where a
                mask is applied.
        """
        x = self._prepare_input(x)
        self._input_shape = x.shape
        dropping = training and 0 < self.rate < 1
        if mask is not None and not dropping:
            raise ValueError(
                f"Dropout '{self.name}': a mask applies only in training mode with "
                f"0 < rate < 1, received training={training} and rate={self.rate}."
            )

        if not training or self.rate == 0:
            self._keep, self._scale = None, None
            return x
        if self.rate == 1:
            self._keep, self._scale = np.zeros(x.shape, dtype=bool), np.zeros((), dtype=x.dtype)
            return np.zeros_like(x)

        if mask is None:
            noise_shape = self._concrete_noise_shape(x.shape)
            keep = self.rng.uniform(size=noise_shape) >= self.rate
        else:
            keep = self._check_mask(mask, x.shape)
        self._keep = np.broadcast_to(keep, x.shape)
        self._scale = np.asarray(1 / (1 - self.rate), dtype=x.dtype)

        y = np.where(self._keep, x * self._scale, np.zeros((), dtype=x.dtype))
        return y

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._input_shape)
        grad_output = self._check_grad_output(grad_output, self._input_shape)

        if self._keep is None:
            return grad_output
        dx = np.where(self._keep, grad_output * self._scale, np.zeros((), dtype=self.dtype))
        return dx

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }
