"""The settings of a training run and its schedule of data and noise, shared by both backends.

Both backends run the same schedule, so their runs can be compared:

- Each epoch visits ``steps_per_epoch = n_images // batch_size`` batches of a
  fresh permutation of the images. The last partial batch is dropped, so
  every batch has the same size. The permutation of epoch ``e`` (counting
  from 0) is drawn from ``default_rng([seed, 1, e])``.
- The noise of global step ``s`` (counting from 1) is drawn from
  ``default_rng([seed, 2, s])``, and the fixed noise for the per-epoch
  image grid from ``default_rng([seed, 3])``.

Data order and noise are thus functions of (seed, epoch, step) and need no
saved random state: a resumed run draws exactly what an uninterrupted run
would have drawn. The run itself is ``keras_impl.training.train``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scratch.architectures import DEFAULT_NOISE_DIM, PRESETS, OptimizerSpec, get_preset

logger = logging.getLogger(__name__)

BACKENDS = ("keras", "scratch")
GENERATOR_LOSSES = ("non-saturating", "minimax")
DTYPES = ("float32", "float64")

# Defaults sized for a CPU: 20 epochs of 10,000 images (3,120 steps of 64)
# give recognisable digits with the Keras backend in under 10 minutes on
# 2 cores. With the 60,000 training images an epoch takes 6 times longer,
# so the README's command passes --limit 10000.
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 64
DEFAULT_SEED = 0
DEFAULT_GRID = 8  # rows and columns of the per-epoch sample grid

# Streams of default_rng([seed, stream, ...]); see the module docstring.
DATA_ORDER_STREAM = 1
NOISE_STREAM = 2
FIXED_NOISE_STREAM = 3

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_CSV_NAME = "metrics.csv"
METRICS_PLOT_NAME = "metrics.png"
GIF_NAME = "progress.gif"
SAMPLES_DIR = "samples"

# Settings a resumed run must share with the checkpoint. The learning rate may
# change on resume (to fine-tune, or to recover from a diverged run).
RESUME_KEYS = (
    "backend",
    "preset",
    "noise_dim",
    "dtype",
    "generator_loss",
    "seed",
    "batch_size",
    "limit",
    "n_images",
)


@dataclass
class TrainConfig:
    """Everything that defines a training run (the ``mnistgen train`` options)."""

    out: Path = Path("runs/mnistgen")
    backend: str = "keras"
    preset: str = "dcgan"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    limit: int | None = None
    seed: int = DEFAULT_SEED
    generator_loss: str = "non-saturating"
    dtype: str = "float32"
    noise_dim: int = DEFAULT_NOISE_DIM
    learning_rate: float | None = None  # None: the preset's own learning rates
    data: Path | None = None
    resume: bool = False
    quiet: bool = False
    grid_rows: int = DEFAULT_GRID
    grid_cols: int = DEFAULT_GRID

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        choices = {
            "backend": BACKENDS,
            "preset": tuple(PRESETS),
            "generator_loss": GENERATOR_LOSSES,
            "dtype": DTYPES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {list(allowed)}, received {getattr(self, name)!r}"
                )
        positive = ("epochs", "batch_size", "noise_dim", "grid_rows", "grid_cols")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, received {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1 image, received {self.limit}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, received {self.seed}")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise ValueError(
                f"learning_rate must be a positive number, received {self.learning_rate}"
            )

    def optimizer_specs(self) -> tuple[OptimizerSpec, OptimizerSpec]:
        """Return ``(d_spec, g_spec)``: the preset's, with ``learning_rate`` applied if set."""
        preset = get_preset(self.preset)
        specs = (preset.d_optimizer, preset.g_optimizer)
        if self.learning_rate is None:
            return specs
        return tuple(dataclasses.replace(spec, learning_rate=self.learning_rate) for spec in specs)


@dataclass
class TrainResult:
    """The outcome of a run.

    ``status`` is "finished", "interrupted", "non-finite" or "up-to-date".
    """

    status: str
    epoch: int
    step: int
    steps_per_epoch: int
    seconds: float
    out: Path
    message: str
    last_metrics: dict[str, float] = field(default_factory=dict)
    start_step: int = 0


# ---------------------------------------------------------------------- #
# Schedule: data order and noise as functions of (seed, epoch, step)
# ---------------------------------------------------------------------- #
def epoch_order(seed: int, epoch: int, n_images: int) -> np.ndarray:
    """Return the image permutation of ``epoch`` (counting from 0)."""
    return np.random.default_rng([seed, DATA_ORDER_STREAM, epoch]).permutation(n_images)


def step_noise(seed: int, step: int, batch_size: int, noise_dim: int, dtype: str) -> np.ndarray:
    """Return z of global ``step`` (counting from 1), shape ``(batch_size, noise_dim)``."""
    rng = np.random.default_rng([seed, NOISE_STREAM, step])
    return rng.standard_normal((batch_size, noise_dim)).astype(dtype)


def fixed_noise(seed: int, n: int, noise_dim: int, dtype: str) -> np.ndarray:
    """Return the noise for the per-epoch grid, the same for every epoch."""
    rng = np.random.default_rng([seed, FIXED_NOISE_STREAM])
    return rng.standard_normal((n, noise_dim)).astype(dtype)


def epoch_batches(
    x: np.ndarray, config: TrainConfig, epoch: int, start_batch: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return the images and noise of ``epoch`` from batch ``start_batch`` on.

    Shapes ``(k * batch_size, 28, 28, 1)`` and ``(k * batch_size, noise_dim)``
    with ``k = steps_per_epoch - start_batch``; batch ``b`` is rows
    ``b * batch_size`` to ``(b + 1) * batch_size``.
    """
    steps_per_epoch = x.shape[0] // config.batch_size
    order = epoch_order(config.seed, epoch, x.shape[0])
    used = order[start_batch * config.batch_size : steps_per_epoch * config.batch_size]
    first_step = epoch * steps_per_epoch + start_batch + 1
    noise = [
        step_noise(config.seed, step, config.batch_size, config.noise_dim, config.dtype)
        for step in range(first_step, (epoch + 1) * steps_per_epoch + 1)
    ]
    z = np.concatenate(noise) if noise else np.zeros((0, config.noise_dim), config.dtype)
    return x[used], z


