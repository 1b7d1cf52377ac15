"""Measurements behind ``bench_step``: FLOP counts, time per layer type, memory, matmul rate.

These helpers import neither backend, so tests can check them on tiny
scratch models without running a benchmark.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

# D runs three training-mode passes per step (real, fake, fake again for
# G's loss), each followed by a backward pass; G runs one of each.
DISCRIMINATOR_PASSES = 3
GENERATOR_PASSES = 1


# ---------------------------------------------------------------------- #
# FLOP count
# ---------------------------------------------------------------------- #
def layer_flops(layer: Any, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(forward, backward)`` FLOPs of a layer's matrix products for one input batch.

    Counts 2 FLOPs per multiply-add of the products a scratch layer makes:
    Dense and Conv2D multiply ``rows x fan_in`` by ``fan_in x units``
    forward, and make two products of the same size backward (dkernel and
    dx). Conv2DTranspose's forward pass is a convolution's input gradient
    with one row per *input* pixel, so its count uses the input's pixels.
    Every other layer (element-wise, batch normalization, reshapes) counts 0.
    """
    kind = type(layer).__name__
    if kind == "Dense":
        in_features, units = layer.params["kernel"].shape
        rows = int(np.prod(input_shape[:-1]))
        forward = 2 * rows * in_features * units
    elif kind == "Conv2D":
        kh, kw, in_channels, filters = layer.params["kernel"].shape
        batch, out_height, out_width, _ = layer.compute_output_shape(input_shape)
        forward = 2 * batch * out_height * out_width * kh * kw * in_channels * filters
    elif kind == "Conv2DTranspose":
        kh, kw, filters, in_channels = layer.params["kernel"].shape
        batch, height, width, _ = input_shape
        forward = 2 * batch * height * width * kh * kw * filters * in_channels
    else:
        return 0, 0
    return forward, 2 * forward


def model_flops(model: Any, batch_size: int) -> dict[str, tuple[int, int]]:
    """Return ``{layer name: (forward, backward)}`` FLOPs of a scratch Sequential model."""
    shape = (batch_size, *model.input_shape[1:])
    counts = {}
    for layer in model.layers:
        counts[layer.name] = layer_flops(layer, shape)
        shape = tuple(layer.compute_output_shape(shape))
    return counts


def step_flops(gan: Any, batch_size: int) -> int:
    """Return the FLOPs of the matrix products in one ``GAN.train_step`` at ``batch_size``."""
    total = 0
    for model, passes in (
        (gan.generator, GENERATOR_PASSES),
        (gan.discriminator, DISCRIMINATOR_PASSES),
    ):
        per_pass = sum(
            forward + backward for forward, backward in model_flops(model, batch_size).values()
        )
        total += passes * per_pass
    return total


# ---------------------------------------------------------------------- #
# Time per layer type
# ---------------------------------------------------------------------- #
class LayerTimer:
    """Add up the wall time of every layer's ``forward`` and ``backward`` by layer type.

    Use as a context manager around scratch training steps. It wraps the
    methods of each layer instance of ``models`` and restores them on exit.
    ``seconds`` maps ``(layer type, "forward" or "backward")`` to seconds.
    """

    def __init__(self, models: Iterable[Any]) -> None:
        self.layers = [layer for model in models for layer in model.layers]
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)

    def _timed(self, method: Any, key: tuple[str, str]) -> Any:
        def timed_method(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = method(*args, **kwargs)
            self.seconds[key] += time.perf_counter() - started
            return result

        return timed_method

    def __enter__(self) -> LayerTimer:
        for layer in self.layers:
            kind = type(layer).__name__
            layer.forward = self._timed(layer.forward, (kind, "forward"))
            layer.backward = self._timed(layer.backward, (kind, "backward"))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for layer in self.layers:
            # The wrappers are instance attributes; deleting them uncovers the class methods.
            del layer.forward
            del layer.backward


# ---------------------------------------------------------------------- #
# Machine measurements
# ---------------------------------------------------------------------- #
def numpy_matmul_gflops(size: int = 1024, dtype: str = "float32", repeats: int = 5) -> float:
    """Return NumPy's GFLOP/s on a ``size x size`` matrix product, the median of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def resident_set_bytes() -> int:
    """Return the current resident set size of this process (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_resident_set_bytes()


def peak_resident_set_bytes() -> int:
    """Return this process's peak resident set size in bytes (``ru_maxrss``)."""
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def make_batch(batch_size: int, dtype: str, noise_dim: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Return random images ``(batch, 28, 28, 1)`` in [-1, 1] and noise ``(batch, noise_dim)``."""
    rng = np.random.default_rng(0)
    x_real = rng.uniform(-1.0, 1.0, size=(batch_size, 28, 28, 1)).astype(dtype)
    z = rng.standard_normal((batch_size, noise_dim)).astype(dtype)
    return x_real, z


def time_blocks(step: Any, steps: int, repeats: int) -> list[float]:
    """Return the mean seconds per step of each of ``repeats`` blocks of ``steps`` calls."""
    blocks = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        blocks.append((time.perf_counter() - started) / steps)
    return blocks
