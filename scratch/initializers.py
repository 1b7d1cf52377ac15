"""Weight initialisers with Keras's names and fan rules.

The values differ from Keras's (another random generator), but the
distributions are the same, so a scratch model trains like its Keras twin.
Tests that compare the two copy Keras's weights instead of relying on seeds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], np.dtype, np.random.Generator], np.ndarray]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` for a weight shape, as Keras computes them.

    A 2-D kernel ``(in, out)`` has fans ``in`` and ``out``. A convolution
    kernel ``(kh, kw, a, b)`` has fan_in ``kh * kw * a`` and fan_out
    ``kh * kw * b``. For Conv2DTranspose, whose kernel is ``(kh, kw, out, in)``,
    Keras uses the same rule, so its "fan_in" counts the filters.
    """
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field_size = int(np.prod(shape[:-2]))
    return shape[-2] * receptive_field_size, shape[-1] * receptive_field_size


def zeros(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def ones(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    return np.ones(shape, dtype=dtype)


def glorot_uniform(
    shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator
) -> np.ndarray:
    """Draw from U(-limit, limit), ``limit = sqrt(6 / (fan_in + fan_out))``.

    This is Keras's default kernel initialiser.
    """
    fan_in, fan_out = compute_fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def random_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """N(mean, stddev^2), as ``keras.initializers.RandomNormal``; DCGAN uses stddev 0.02."""

    def initialize(
        shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.normal(mean, stddev, size=shape).astype(dtype)

    initialize.__name__ = f"random_normal(mean={mean}, stddev={stddev})"
    return initialize


_BY_NAME: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "glorot_uniform": glorot_uniform,
    "random_normal": random_normal(),
}


def get(identifier: str | Initializer) -> Initializer:
    """Return an initialiser from its Keras name or a callable ``(shape, dtype, rng)``."""
    if callable(identifier):
        return identifier
    if identifier in _BY_NAME:
        return _BY_NAME[identifier]
    raise ValueError(
        f"Unknown initializer {identifier!r}; expected one of {sorted(_BY_NAME)} "
        "or a callable (shape, dtype, rng) -> array."
    )
