"""Generate digits from a checkpoint of either backend, with either backend.

A checkpoint stores the generator's weights under Keras's layer and weight
names (see ``keras_impl.checkpoints``), so the generator can be rebuilt from
the checkpoint's preset in NumPy (``scratch.models``) or in Keras
(``keras_impl.models``) and loaded by name, whichever backend trained it.
The scratch generator needs no TensorFlow and starts faster.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from keras_impl import checkpoints
from keras_impl.schedule import BACKENDS

logger = logging.getLogger(__name__)


def sample_noise(seed: int, n: int, noise_dim: int, dtype: str) -> np.ndarray:
    """Return ``n`` noise vectors drawn from N(0, 1) with ``default_rng(seed)``."""
    return np.random.default_rng(seed).standard_normal((n, noise_dim)).astype(dtype)


def generate_from_checkpoint(
    checkpoint: checkpoints.Checkpoint, z: np.ndarray, backend: str | None = None
) -> np.ndarray:
    """Return ``G(z)`` in inference mode, shape ``(n, 28, 28, 1)``, values in [-1, 1].

    ``backend`` is "scratch" or "keras"; None uses the backend that saved the checkpoint.
    """
    metadata = checkpoint.metadata
    backend = backend or metadata.get("backend")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, received {backend!r}")
    for key in ("preset", "noise_dim", "dtype"):
        if key not in metadata:
            raise checkpoints.CheckpointError(f"{checkpoint.path}: metadata has no {key!r}")
    preset, noise_dim, dtype = metadata["preset"], int(metadata["noise_dim"]), metadata["dtype"]
    if z.shape[1:] != (noise_dim,):
        raise ValueError(
            f"z has shape {z.shape}; the checkpoint's generator takes (n, {noise_dim})"
        )
    weights = checkpoint.weights["generator"]

    if backend == "scratch":
        from scratch.models import build_generator

        generator = build_generator(preset, noise_dim, dtype)
        checkpoints.set_scratch_weights(generator, weights, "generator", checkpoint.path)
        return generator.forward(z.astype(dtype), training=False)

    from keras_impl.models import build_generator as build_keras_generator

    generator = build_keras_generator(preset, noise_dim, dtype)
    checkpoints.set_keras_weights(generator, weights, "generator", checkpoint.path)
    return np.asarray(generator(z.astype(dtype), training=False))


def sample_grid(
    checkpoint_path: str | Path,
    out: str | Path,
    rows: int = 8,
    cols: int = 8,
    seed: int = 0,
    backend: str | None = None,
) -> Path:
    """Save a ``rows`` x ``cols`` PNG grid of digits generated from ``checkpoint_path``."""
    from keras_impl.outputs import save_grid

    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be at least 1, received {rows} x {cols}")
    checkpoint = checkpoints.load_checkpoint(checkpoint_path)
    z = sample_noise(seed, rows * cols, int(checkpoint.metadata["noise_dim"]),
                     checkpoint.metadata["dtype"])
    images = generate_from_checkpoint(checkpoint, z, backend)
    logger.info(
        "Generated %d digits from %s (trained with %s, step %s) using the %s backend",
        rows * cols, checkpoint_path, checkpoint.metadata.get("backend"),
        checkpoint.metadata.get("step"), backend or checkpoint.metadata.get("backend"),
    )
    return save_grid(images, out, rows, cols)
