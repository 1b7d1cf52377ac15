"""Training throughput of the two backends on the same preset, batch size and dtype.

Run from the repository root::

    python -m benchmarks.bench_throughput --preset dcgan --batch-size 64 --steps 20

Both backends train on the same random batches in [-1, 1] (throughput does
not depend on the pixel values) with the same noise: the Keras backend
through ``KerasGAN.fit``, as ``mnistgen train`` does, and the scratch backend
through ``GAN.train_step`` in a loop. Each backend first runs ``--warmup``
steps that are not timed (Keras traces its training function then). The
script prints images per second for each backend and their ratio.

Each measurement is one function returning a ``Measurement``, so further
measurements (peak memory, GFLOP/s, time per layer) can be added beside
``measure_keras`` and ``measure_scratch``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger(__name__)


@dataclass
class Measurement:
    """Timed training steps of one backend."""

    backend: str
    steps: int
    batch_size: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.steps * self.batch_size / self.seconds

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps


def make_batches(
    steps: int, batch_size: int, noise_dim: int, dtype: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``steps`` batches of images ``(steps * batch, 28, 28, 1)`` and of noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(steps * batch_size, 28, 28, 1)).astype(dtype)
    z = rng.standard_normal((steps * batch_size, noise_dim)).astype(dtype)
    return x, z


def measure_keras(
    preset: str, batch_size: int, steps: int, warmup: int, dtype: str, noise_dim: int = 100
) -> Measurement:
    """Time ``steps`` steps of ``KerasGAN.fit`` after ``warmup`` untimed steps."""

    import tensorflow as tf

    from keras_impl.gan import build_keras_gan

    gan = build_keras_gan(preset, noise_dim, dtype, seed=0)

    def run(n_steps: int, seed: int) -> float:
        # tf.data keeps float64 batches float64 (fit would cast NumPy arrays to floatx).
        batches = tf.data.Dataset.from_tensor_slices(
            make_batches(n_steps, batch_size, noise_dim, dtype, seed)
        ).batch(batch_size)
        started = time.perf_counter()
        gan.fit(batches, epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - started

    run(warmup, seed=1)
    return Measurement("keras", steps, batch_size, run(steps, seed=2))


def measure_scratch(
    preset: str, batch_size: int, steps: int, warmup: int, dtype: str, noise_dim: int = 100
) -> Measurement:
    """Time ``steps`` calls of ``GAN.train_step`` after ``warmup`` untimed ones."""
    from scratch.gan import build_gan

    gan = build_gan(preset, noise_dim, dtype, seed=0)

    def run(n_steps: int, seed: int) -> float:
        x, z = make_batches(n_steps, batch_size, noise_dim, dtype, seed)
        started = time.perf_counter()
        for step in range(n_steps):
            rows = slice(step * batch_size, (step + 1) * batch_size)
            gan.train_step(x[rows], z[rows])
        return time.perf_counter() - started

    run(warmup, seed=1)
    return Measurement("scratch", steps, batch_size, run(steps, seed=2))


def run_benchmark(
    preset: str = "dcgan",
    batch_size: int = 64,
    steps: int = 20,
    warmup: int = 2,
    dtype: str = "float32",
) -> dict[str, Measurement]:
    """Measure both backends with the same settings; return them keyed by backend."""
    return {
        "keras": measure_keras(preset, batch_size, steps, warmup, dtype),
        "scratch": measure_scratch(preset, batch_size, steps, warmup, dtype),
    }


def format_report(results: dict[str, Measurement], preset: str, dtype: str) -> str:
    """Return the table of images/s per backend and the Keras/scratch ratio."""
    keras_result, scratch_result = results["keras"], results["scratch"]
    lines = [
        f"preset {preset}, batch {keras_result.batch_size}, {dtype}, "
        f"{keras_result.steps} timed steps per backend, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()})",
        f"{'backend':<8}  {'images/s':>9}  {'s/step':>8}",
    ]
    for result in (keras_result, scratch_result):
        lines.append(
            f"{result.backend:<8}  {result.images_per_second:9.1f}  {result.seconds_per_step:8.3f}"
        )
    ratio = keras_result.images_per_second / scratch_result.images_per_second
    lines.append(f"keras / scratch throughput ratio: {ratio:.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_throughput",
        description="Training throughput (images/s) of the Keras and scratch backends.",
    )
    parser.add_argument("--preset", default="dcgan", help="architecture preset; default: dcgan")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step; default: 64")
    parser.add_argument("--steps", type=int, default=20, help="timed steps; default: 20")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first; default: 2")
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="default: float32"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "steps", "warmup"):
        if getattr(args, name) < 1:
            build_parser().error(f"--{name.replace('_', '-')} must be at least 1")
    results = run_benchmark(args.preset, args.batch_size, args.steps, args.warmup, args.dtype)
    print(format_report(results, args.preset, args.dtype))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
