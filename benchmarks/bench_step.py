"""One GAN training step, scratch against Keras: speed, memory, GFLOP/s and time per layer type.

Run from the repository root::

    python -m benchmarks.bench_step            # batch sizes 64 and 256, float32
    python -m benchmarks.bench_step --quick    # a few steps only, to check that it runs

A step is one discriminator update then one generator update on the same
batch of random images in [-1, 1] and the same noise for both backends
(``scratch.gan.GAN.train_step`` and ``keras_impl.gan.KerasGAN.train_step``
wrapped in one ``tf.function``, as ``fit`` wraps it).

Every measurement runs in its own subprocess, one after the other, so the
two backends never share a process, a BLAS thread pool or a memory
high-water mark. Each subprocess pins its thread count (``--threads``,
default 1) through ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` for NumPy and through TensorFlow's intra- and inter-op
thread settings for Keras. OpenBLAS and TensorFlow with free thread counts
in one process oversubscribe the cores and slow both down.

Reported per backend and batch size:

- images per second: the median over ``--repeats`` blocks of ``--steps``
  steps, after ``--warmup`` untimed steps (Keras traces its graph then);
- step memory: the growth of the process's peak resident set
  (``ru_maxrss``) over the resident set measured just before the first
  step. The same measure works for both backends, because TensorFlow's
  allocations are invisible to Python's ``tracemalloc``. For the scratch
  backend ``tracemalloc``'s peak during the first step (which also
  allocates the buffers later steps reuse) is reported too: NumPy reports
  its array buffers to it, so that number is exact for NumPy data;
- GFLOP/s: the multiply-adds of every Dense and convolution product in one
  step (counted analytically by ``step_flops``, 2 FLOPs per multiply-add)
  over the step time. Both backends do the same arithmetic, so the same
  count is used for both;
- NumPy's own float32 matrix-product rate on a square product, the
  practical ceiling of the scratch backend;
- for the scratch backend, the time per layer type and direction
  (``LayerTimer``), from separate steps so the timer's overhead does not
  touch the images per second.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.step_metrics import (
    LayerTimer,
    make_batch,
    numpy_matmul_gflops,
    peak_resident_set_bytes,
    resident_set_bytes,
    step_flops,
    time_blocks,
)

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------------- #
# Workers: one backend, one batch size, in a subprocess
# ---------------------------------------------------------------------- #
def run_scratch(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the scratch backend and return the worker's result."""
    from scratch.gan import build_gan

    gan = build_gan(args.preset, dtype=args.dtype, seed=0)
    x_real, z = make_batch(args.batch_size, args.dtype)
    rss_before = resident_set_bytes()

    # The first step is traced: it also allocates the buffers that later steps
    # reuse (the convolutions' shared workspace, the optimizer's slots).
    tracemalloc.start()
    resident, _ = tracemalloc.get_traced_memory()
    gan.train_step(x_real, z)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    for _ in range(args.warmup - 1):
        gan.train_step(x_real, z)
    blocks = time_blocks(lambda: gan.train_step(x_real, z), args.steps, args.repeats)

    with LayerTimer([gan.generator, gan.discriminator]) as timer:
        started = time.perf_counter()
        for _ in range(args.steps):
            gan.train_step(x_real, z)
        timed_step_seconds = (time.perf_counter() - started) / args.steps
    layer_seconds = {
        f"{kind} {direction}": seconds / args.steps
        for (kind, direction), seconds in timer.seconds.items()
    }
    return {
        "blocks": blocks,
        "flops": step_flops(gan, args.batch_size),
        "rss_growth": peak_resident_set_bytes() - rss_before,
        "peak_rss": peak_resident_set_bytes(),
        "tracemalloc_peak": peak - resident,
        "layer_seconds": layer_seconds,
        "timed_step_seconds": timed_step_seconds,
        "matmul_gflops": numpy_matmul_gflops(dtype=args.dtype),
    }


def run_keras(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the Keras backend and return the worker's result."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from keras_impl.gan import build_keras_gan
    from scratch.gan import build_gan

    gan = build_keras_gan(args.preset, dtype=args.dtype, seed=0)
    x_real, z = make_batch(args.batch_size, args.dtype)
    data = (tf.constant(x_real), tf.constant(z))
    train_function = tf.function(gan.train_step)

    def step() -> None:
        metrics = train_function(data)
        float(metrics["d_loss"])

    rss_before = resident_set_bytes()
    for _ in range(max(args.warmup, 1)):
        step()
    blocks = time_blocks(step, args.steps, args.repeats)
    return {
        "blocks": blocks,
        # The same products as the scratch step, so the same count.
        "flops": step_flops(build_gan(args.preset, dtype=args.dtype, seed=0), args.batch_size),
        "rss_growth": peak_resident_set_bytes() - rss_before,
        "peak_rss": peak_resident_set_bytes(),
    }


def run_worker(args: argparse.Namespace) -> None:
    """Run one measurement and print it as one JSON line on stdout."""
    result = run_scratch(args) if args.worker == "scratch" else run_keras(args)
    seconds = statistics.median(result["blocks"])
    result.update(
        backend=args.worker,
        batch_size=args.batch_size,
        seconds_per_step=seconds,
        images_per_second=args.batch_size / seconds,
        gflops=result["flops"] / seconds / 1e9,
    )
    print(json.dumps(result))


def combine_rounds(measurements: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the rounds of one backend and batch size: median speed, maximum memory.

    The other fields (layer times, FLOPs) come from the round whose speed is
    the median (the lower middle one for an even count).
    """
    ordered = sorted(measurements, key=lambda result: result["images_per_second"])
    combined = dict(ordered[(len(ordered) - 1) // 2])
    speeds = [result["images_per_second"] for result in measurements]
    combined["images_per_second"] = statistics.median(speeds)
    combined["images_per_second_rounds"] = speeds
    combined["seconds_per_step"] = combined["batch_size"] / combined["images_per_second"]
    combined["gflops"] = combined["flops"] / combined["seconds_per_step"] / 1e9
    for key in ("rss_growth", "peak_rss", "tracemalloc_peak"):
        if key in combined:
            combined[key] = max(result[key] for result in measurements)
    return combined


def spawn_worker(backend: str, batch_size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``run_worker`` for one backend and batch size in a fresh Python process."""
    command = [
        sys.executable, "-m", "benchmarks.bench_step", "--worker", backend,
        "--batch-size", str(batch_size), "--preset", args.preset, "--dtype", args.dtype,
        "--steps", str(args.steps), "--repeats", str(args.repeats),
        "--warmup", str(args.warmup), "--threads", str(args.threads),
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    env.update({name: str(args.threads) for name in THREAD_VARIABLES})
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"bench_step: the {backend} worker at batch size {batch_size} failed "
            f"with exit code {completed.returncode}:\n{completed.stderr[-2000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- #
# Report
# ---------------------------------------------------------------------- #
def machine_summary() -> dict[str, Any]:
    """Return the facts a reader needs to compare runs: cores, load, BLAS, versions."""
    blas = "unknown"
    try:
        blas_info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas_info.get('name')} {blas_info.get('version')}"
    except (TypeError, KeyError):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "load_average": [round(value, 2) for value in load],
    }


def format_report(
    results: list[dict[str, Any]], machine: dict[str, Any], args: argparse.Namespace
) -> str:
    """Return the Markdown tables of a run."""
    mib = 1024 * 1024
    lines = [
        f"preset {args.preset}, {args.dtype}, {args.threads} thread(s) per backend, "
        f"median of {args.rounds} round(s), each the median of {args.repeats} blocks "
        f"of {args.steps} steps",
        f"machine: {machine['cpu_count']} cores, {machine['processor']}, NumPy {machine['numpy']} "
        f"with {machine['blas']}, load average (1, 5, 15 min) {machine['load_average']} "
        f"before the run, {machine.get('load_average_after', 'not measured')} after",
        "",
        "| backend | batch size | images/s | images/s per round | scratch / keras "
        "| step memory (MiB) | tracemalloc peak (MiB) | GFLOP/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keras_rates = {r["batch_size"]: r for r in results if r["backend"] == "keras"}
    for result in results:
        keras = keras_rates.get(result["batch_size"])
        ratio = ""
        if result["backend"] == "scratch" and keras is not None:
            ratio = f"{result['images_per_second'] / keras['images_per_second']:.2f}"
        traced = result.get("tracemalloc_peak")
        per_round = result.get("images_per_second_rounds", [result["images_per_second"]])
        per_round_text = ", ".join(f"{speed:.0f}" for speed in per_round)
        lines.append(
            f"| {result['backend']} | {result['batch_size']} | {result['images_per_second']:.0f} "
            f"| {per_round_text} | {ratio} | {result['rss_growth'] / mib:.1f} "
            f"| {'' if traced is None else f'{traced / mib:.1f}'} | {result['gflops']:.1f} |"
        )

    for result in results:
        if result["backend"] != "scratch":
            continue
        lines += [
            "",
            f"NumPy {args.dtype} matrix product (1024 x 1024): "
            f"{result['matmul_gflops']:.1f} GFLOP/s; the scratch step reaches "
            f"{result['gflops'] / result['matmul_gflops']:.0%} of it at batch size "
            f"{result['batch_size']}.",
            "",
            f"Scratch time per layer type, batch size {result['batch_size']} (ms per step):",
            "",
            "| layer type | forward | backward | share |",
            "| --- | ---: | ---: | ---: |",
        ]
        by_kind: dict[str, dict[str, float]] = defaultdict(dict)
        for key, seconds in result["layer_seconds"].items():
            kind, direction = key.split()
            by_kind[kind][direction] = seconds
        total = sum(result["layer_seconds"].values())
        step_total = result["timed_step_seconds"]
        for kind, times in sorted(by_kind.items(), key=lambda item: -sum(item[1].values())):
            forward, backward = times.get("forward", 0.0), times.get("backward", 0.0)
            lines.append(
                f"| {kind} | {forward * 1e3:.1f} | {backward * 1e3:.1f} "
                f"| {(forward + backward) / step_total:.0%} |"
            )
        # Both numbers come from the same timed steps, so the difference is the
        # time spent outside the layers (losses, optimizer, gradient copies).
        outside = result["timed_step_seconds"] - total
        lines.append(
            f"| outside the layers (losses, optimizer) | {outside * 1e3:.1f} | "
            f"| {outside / result['timed_step_seconds']:.0%} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_step",
        description="Time one GAN training step of both backends, each in its own subprocess.",
    )
    parser.add_argument("--preset", default="dcgan", help="architecture preset (default dcgan)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[64, 256], help="default: 64 256"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per block (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks; the median is kept")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="threads per backend (default 1)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="subprocesses per backend and batch size, alternating backends so a change "
        "of load hits both; the median speed is kept (default 2)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 round of 2 blocks of 2 steps, 1 warm-up step"
    )
    parser.add_argument("--json", help="also write the raw results to this JSON file")
    parser.add_argument("--worker", choices=["scratch", "keras"], help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.warmup, args.rounds = 2, 2, 1, 1
    if min(args.steps, args.repeats, args.threads, args.rounds) < 1 or args.warmup < 0:
        raise SystemExit(
            "bench_step: --steps, --repeats, --threads and --rounds must be >= 1, --warmup >= 0."
        )
    if args.worker is not None:
        run_worker(args)
        return 0

    machine = machine_summary()
    rounds: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for round_index in range(args.rounds):
        for batch_size in args.batch_sizes:
            for backend in ("keras", "scratch"):
                logger.info(
                    "round %d: measuring %s at batch size %d", round_index + 1, backend, batch_size
                )
                rounds[backend, batch_size].append(spawn_worker(backend, batch_size, args))
    results = [combine_rounds(measurements) for measurements in rounds.values()]
    machine["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    print(format_report(results, machine, args))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine, "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(main())
