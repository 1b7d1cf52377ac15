"""Tests for benchmarks/bench_step.py and step_metrics.py: FLOPs, layer timer, report.

The default run checks the helpers on tiny models, without timing
assertions. The run of the whole benchmark is marked ``benchmark`` and runs
only on demand (``pytest -m benchmark``).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import PROJECT_ROOT
from helpers import assert_close

from benchmarks import bench_step, step_metrics
from scratch.gan import build_gan
from scratch.layers.activations import LeakyReLU, ReLU
from scratch.layers.conv2d import Conv2D, conv2d_forward
from scratch.layers.conv2d_transpose import Conv2DTranspose
from scratch.layers.dense import Dense
from scratch.layers.normalization import BatchNormalization
from scratch.layers.reshaping import Flatten
from scratch.sequential import Sequential


def tiny_model() -> Sequential:
    """Conv2D -> BN -> LeakyReLU -> Conv2DTranspose -> ReLU -> Flatten -> Dense on 6x6x2 images."""
    model = Sequential(
        [
            Conv2D(3, 3, strides=2, padding="same", name="conv", dtype="float64"),
            BatchNormalization(name="bn", dtype="float64"),
            LeakyReLU(0.2, name="lrelu", dtype="float64"),
            Conv2DTranspose(2, 4, strides=2, padding="same", name="up", dtype="float64"),
            ReLU(name="relu", dtype="float64"),
            Flatten(name="flatten", dtype="float64"),
            Dense(1, name="logits", dtype="float64"),
        ],
        name="tiny",
        seed=0,
    )
    model.build((None, 6, 6, 2))
    return model


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", [1, 2])
def test_conv2d_flops_match_product_shape(padding, strides):
    layer = Conv2D(4, 3, strides=strides, padding=padding, dtype="float64")
    x = np.zeros((2, 7, 7, 3))
    layer.forward(x)
    kernel = layer.params["kernel"]

    # The forward product is columns (rows x fan_in) @ kernel matrix (fan_in x filters).
    _, columns = conv2d_forward(x, kernel, layer.strides, layer.padding_amounts(x.shape))
    expected = 2 * columns.shape[0] * columns.shape[1] * kernel.shape[-1]

    forward, backward = step_metrics.layer_flops(layer, x.shape)
    assert forward == expected
    assert backward == 2 * expected


def test_conv2d_transpose_flops_use_input_pixels():
    layer = Conv2DTranspose(5, 4, strides=2, padding="same", dtype="float64")
    x_shape = (3, 7, 7, 6)
    layer.build(x_shape)

    # One row per input pixel: (batch * 7 * 7, 6) @ (6, 4 * 4 * 5).
    expected = 2 * (3 * 7 * 7) * 6 * (4 * 4 * 5)

    assert step_metrics.layer_flops(layer, x_shape) == (expected, 2 * expected)


def test_dense_flops_count_every_row():
    layer = Dense(7, dtype="float64")
    layer.build((4, 3, 5))

    assert step_metrics.layer_flops(layer, (4, 3, 5)) == (2 * 12 * 5 * 7, 4 * 12 * 5 * 7)


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(), BatchNormalization(), Flatten()])
def test_layers_without_products_count_zero(layer):
    assert step_metrics.layer_flops(layer, (2, 4, 4, 3)) == (0, 0)


def test_model_flops_follow_shapes():
    model = tiny_model()
    counts = step_metrics.model_flops(model, batch_size=2)

    assert list(counts) == [layer.name for layer in model.layers]
    # conv: (2, 6, 6, 2) -> (2, 3, 3, 3), 3x3 kernel.
    assert counts["conv"][0] == 2 * (2 * 3 * 3) * (3 * 3 * 2) * 3
    # up: input (2, 3, 3, 3), 4x4 kernel, 2 filters.
    assert counts["up"][0] == 2 * (2 * 3 * 3) * 3 * (4 * 4 * 2)
    # logits: Flatten gives (2, 6 * 6 * 2).
    assert counts["logits"][0] == 2 * 2 * 72 * 1
    assert counts["bn"] == (0, 0)


def test_step_flops_counts_passes_and_scales_with_batch():
    gan = build_gan("dcgan", dtype="float32", seed=0)

    def network_total(model):
        return sum(f + b for f, b in step_metrics.model_flops(model, 8).values())

    expected = network_total(gan.generator) + 3 * network_total(gan.discriminator)
    assert step_metrics.step_flops(gan, 8) == expected
    assert step_metrics.step_flops(gan, 16) == 2 * expected


def test_layer_timer_records_every_type_and_restores_methods():
    model = tiny_model()
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2))
    grad = np.ones((4, 1))
    expected_y = model.forward(x, training=True)
    expected_dx = model.backward(grad)

    with step_metrics.LayerTimer([model]) as timer:
        y = model.forward(x, training=True)
        dx = model.backward(grad)

    kinds = {type(layer).__name__ for layer in model.layers}
    assert set(timer.seconds) == {(k, d) for k in kinds for d in ("forward", "backward")}
    assert all(seconds >= 0 for seconds in timer.seconds.values())
    for layer in model.layers:
        assert "forward" not in vars(layer), f"{layer.name}: forward is still wrapped"
        assert "backward" not in vars(layer), f"{layer.name}: backward is still wrapped"
    assert_close("timed output", y, expected_y)
    assert_close("timed dx", dx, expected_dx)


def test_numpy_matmul_gflops_is_positive():
    rate = step_metrics.numpy_matmul_gflops(size=64, repeats=2)
    assert np.isfinite(rate)
    assert rate > 0


def test_report_shows_ratio_and_layer_table():
    args = bench_step.build_parser().parse_args(["--steps", "2", "--repeats", "1"])
    common = {"batch_size": 64, "rss_growth": 2**20, "gflops": 1.0}
    results = [
        {**common, "backend": "keras", "images_per_second": 200.0},
        {
            **common,
            "backend": "scratch",
            "images_per_second": 100.0,
            "images_per_second_rounds": [90.0, 110.0],
            "tracemalloc_peak": 2**21,
            "matmul_gflops": 4.0,
            "seconds_per_step": 0.64,
            "timed_step_seconds": 0.5,
            "layer_seconds": {"Conv2D forward": 0.2, "Conv2D backward": 0.2},
        },
    ]
    report = bench_step.format_report(results, bench_step.machine_summary(), args)

    assert "| scratch | 64 | 100 | 90, 110 | 0.50 | 1.0 | 2.0 | 1.0 |" in report
    assert "| Conv2D | 200.0 | 200.0 | 80% |" in report
    assert "25% of it" in report


def test_parser_rejects_zero_steps():
    with pytest.raises(SystemExit):
        bench_step.main(["--steps", "0"])


@pytest.mark.benchmark
def test_benchmark_quick_run_reports_both_backends():
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_step", "--quick", "--batch-sizes", "64"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "| keras | 64 |" in completed.stdout
    assert "| scratch | 64 |" in completed.stdout
    assert "Scratch time per layer type" in completed.stdout
