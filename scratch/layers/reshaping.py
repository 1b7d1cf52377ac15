"""Layers that only rearrange entries: Reshape and Flatten.

Neither has weights, and the backward pass of each is the inverse
rearrangement of ``grad_output``: a reshape back to the input's shape (and,
for Flatten with ``channels_first``, the inverse transpose).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scratch.layers.base import Layer


class Reshape(Layer):
    """Reshape every sample to ``target_shape``; the batch axis is kept.

    Forward: ``y = x.reshape(batch, *target_shape)``.
    Backward: ``dx = dy.reshape(x.shape)``.

    Args:
        target_shape: the output shape without the batch axis. One entry
            may be -1; its size is inferred from the input's size, as in
            Keras.

    Input shape: ``(batch, ...)`` with as many entries per sample as
    ``target_shape`` has.
    Output shape: ``(batch, *target_shape)``.
    """

    def __init__(
        self, target_shape: Sequence[int], name: str | None = None, dtype: object = None
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        target_shape = tuple(target_shape)
        for dim in target_shape:
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < -1:
                raise ValueError(
                    f"Reshape '{self.name}': each entry of target_shape must be a "
                    f"non-negative integer or -1 for one inferred size, received "
                    f"target_shape={target_shape}."
                )
        if target_shape.count(-1) > 1:
            raise ValueError(
                f"Reshape '{self.name}': target_shape may contain at most one -1, "
                f"received target_shape={target_shape}."
            )
        self.target_shape = target_shape
        self._input_shape: tuple[int, ...] | None = None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Return ``(batch, *target_shape)`` with the -1 resolved.

        Raises:
            ValueError: if the input has no batch axis or its per-sample
                size cannot be arranged as ``target_shape``.
        """
        if len(input_shape) < 1:
            raise ValueError(
                f"Reshape '{self.name}': expected an input with a batch axis, "
                f"received shape {tuple(input_shape)}."
            )
        sample_shape = tuple(input_shape[1:])
        if None in sample_shape:
            resolved = tuple(None if dim == -1 else dim for dim in self.target_shape)
            return (input_shape[0], *resolved)

        sample_size = math.prod(sample_shape)
        known_size = math.prod(dim for dim in self.target_shape if dim != -1)
        if -1 not in self.target_shape:
            if known_size != sample_size:
                raise ValueError(
                    f"Reshape '{self.name}': cannot reshape samples of shape "
                    f"{sample_shape} ({sample_size} entries) to target_shape "
                    f"{self.target_shape} ({known_size} entries)."
                )
            return (input_shape[0], *self.target_shape)

        if known_size == 0 or sample_size % known_size != 0:
            raise ValueError(
                f"Reshape '{self.name}': cannot reshape samples of shape "
                f"{sample_shape} ({sample_size} entries) to target_shape "
                f"{self.target_shape}: {sample_size} is not a multiple of the "
                f"known entries' product {known_size}."
            )
        resolved = tuple(
            sample_size // known_size if dim == -1 else dim for dim in self.target_shape
        )
        return (input_shape[0], *resolved)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        output_shape = self.compute_output_shape(x.shape)
        self._input_shape = x.shape

        return x.reshape(output_shape)  # (batch, *target_shape)

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._input_shape)
        grad_output = self._check_grad_output(
            grad_output, self.compute_output_shape(self._input_shape)
        )

        return grad_output.reshape(self._input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": self.target_shape}


class Flatten(Layer):
    """Flatten every sample to one axis; the batch axis is kept.

    Forward: ``y = x.reshape(batch, -1)``, entries in C order (last axis
    fastest). With ``data_format='channels_first'`` the channel axis is first
    moved to the end, so that the flattened order is the same as for the
    ``channels_last`` layout of the same image.

    Backward: the inverse, ``dx = dy.reshape(x.shape)`` (and the inverse
    transpose for ``channels_first``).

    Args:
        data_format: ``'channels_last'`` or ``'channels_first'``.
            None means ``'channels_last'``.

    Input shape: ``(batch, ...)``, rank at least 1. An input ``(batch,)``
    becomes ``(batch, 1)``, as in Keras.
    Output shape: ``(batch, product of the other sizes)``.
    """

    def __init__(
        self, data_format: str | None = None, name: str | None = None, dtype: object = None
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        # NOTE: Keras resolves None from ~/.keras/keras.json (image_data_format);
        # scratch has no such file, so None is always channels_last.
        data_format = "channels_last" if data_format is None else str(data_format).lower()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                f"Flatten '{self.name}': data_format must be 'channels_last' or "
                f"'channels_first', received data_format={data_format!r}."
            )
        self.data_format = data_format
        self._input_shape: tuple[int, ...] | None = None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        if len(input_shape) < 1:
            raise ValueError(
                f"Flatten '{self.name}': expected an input of rank >= 1 with a batch "
                f"axis, received shape {tuple(input_shape)}."
            )
        sample_shape = tuple(input_shape[1:])
        if None in sample_shape:
            return (input_shape[0], None)
        return (input_shape[0], math.prod(sample_shape))

    def _channels_to_end(self, rank: int) -> tuple[int, ...] | None:
        """Return the transpose axes for channels_first inputs, else None."""
        if self.data_format == "channels_first" and rank > 2:
            return (0, *range(2, rank), 1)
        return None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        output_shape = self.compute_output_shape(x.shape)
        self._input_shape = x.shape

        axes = self._channels_to_end(x.ndim)
        if axes is not None:
            x = x.transpose(axes)  # (batch, ..., channels)
        return x.reshape(output_shape)  # (batch, features)

    def backward(
        self,
        grad_output: np.ndarray,
        *,
        weight_gradients: bool = True,
        input_gradient: bool = True,
    ) -> np.ndarray:
        self._require_forward(self._input_shape)
        grad_output = self._check_grad_output(
            grad_output, self.compute_output_shape(self._input_shape)
        )

        axes = self._channels_to_end(len(self._input_shape))
        if axes is None:
            return grad_output.reshape(self._input_shape)
        channels_last_shape = tuple(self._input_shape[axis] for axis in axes)
        dx = grad_output.reshape(channels_last_shape)
        return dx.transpose(np.argsort(axes))  # back to (batch, channels, ...)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}
