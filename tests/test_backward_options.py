"""Tests for the ``weight_gradients`` and ``input_gradient`` options of ``backward``.

A backward pass with an option off must return the same gradients that it
does compute as the full pass, must not run the skipped products, and must
leave no weight gradient that an optimiser could apply by mistake. The GAN
step tests in test_gan_step.py check the GAN that uses these options against
Keras, step by step.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import scratch.layers.conv2d as conv2d_module
from scratch.gan import build_gan
from scratch.layers.activations import LeakyReLU
from scratch.layers.conv2d import Conv2D
from scratch.layers.conv2d_transpose import Conv2DTranspose
from scratch.layers.dense import Dense
from scratch.layers.normalization import BatchNormalization
from scratch.layers.reshaping import Flatten
from scratch.sequential import Sequential


def make_layer(kind, dtype):
    """A built layer of ``kind`` and an input for it."""
    rng = np.random.default_rng(0)
    if kind == "conv2d":
        layer = Conv2D(4, 3, strides=2, padding="same", name="conv", dtype=dtype)
        x = rng.standard_normal((2, 7, 6, 3)).astype(dtype)
    elif kind == "conv2d_transpose":
        layer = Conv2DTranspose(4, 4, strides=2, padding="same", name="up", dtype=dtype)
        x = rng.standard_normal((2, 4, 3, 3)).astype(dtype)
    else:
        layer = Dense(4, name="dense", dtype=dtype)
        x = rng.standard_normal((3, 5)).astype(dtype)
    layer.build(x.shape)
    layer.params["bias"][...] = rng.standard_normal(layer.params["bias"].shape)
    return layer, x


def full_backward(layer, x, grad_output):
    layer.forward(x, training=True)
    dx = layer.backward(grad_output)
    return dx, {name: grad.copy() for name, grad in layer.grads.items()}


@pytest.mark.parametrize("kind", ["conv2d", "conv2d_transpose", "dense"])
def test_layer_without_weight_gradients(kind, dtype):
    layer, x = make_layer(kind, dtype)
    grad_output = np.random.default_rng(1).standard_normal(layer.forward(x).shape).astype(dtype)
    expected_dx, _ = full_backward(layer, x, grad_output)

    layer.forward(x, training=True)
    dx = layer.backward(grad_output, weight_gradients=False)

    assert_close("dL/dx", dx, expected_dx)
    assert layer.grads == {}


@pytest.mark.parametrize("kind", ["conv2d", "conv2d_transpose", "dense"])
def test_layer_without_input_gradient(kind, dtype):
    layer, x = make_layer(kind, dtype)
    grad_output = np.random.default_rng(1).standard_normal(layer.forward(x).shape).astype(dtype)
    _, expected_grads = full_backward(layer, x, grad_output)
    layer.grads.clear()

    layer.forward(x, training=True)
    dx = layer.backward(grad_output, input_gradient=False)

    assert dx is None
    assert sorted(layer.grads) == sorted(expected_grads)
    for name, grad in expected_grads.items():
        assert_close(f"dL/d{name}", layer.grads[name], grad)


def test_conv2d_skips_skipped_products(monkeypatch):
    layer, x = make_layer("conv2d", "float64")
    grad_output = np.ones(layer.forward(x).shape)

    def fail(*args, **kwargs):
        raise AssertionError("a skipped product was computed")

    layer.forward(x, training=True)
    with monkeypatch.context() as patch:
        patch.setattr(conv2d_module, "conv2d_chunked_kernel_gradient", fail)
        assert layer.backward(grad_output, weight_gradients=False).shape == x.shape
    with monkeypatch.context() as patch:
        patch.setattr(conv2d_module, "conv2d_input_gradient", fail)
        assert layer.backward(grad_output, input_gradient=False) is None


def conv_model(dtype):
    """Conv2D -> LeakyReLU -> Conv2D -> BN -> Flatten -> Dense, like a small D."""
    model = Sequential(
        [
            Conv2D(3, 3, strides=2, padding="same", name="c1", dtype=dtype),
            LeakyReLU(0.2, name="act", dtype=dtype),
            Conv2D(4, 3, strides=2, padding="same", name="c2", dtype=dtype),
            BatchNormalization(name="bn", dtype=dtype),
            Flatten(name="flatten", dtype=dtype),
            Dense(1, name="logits", dtype=dtype),
        ],
        seed=0,
    )
    model.build((None, 8, 8, 2))
    return model


def test_sequential_without_weight_gradients(dtype):
    model = conv_model(dtype)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 8, 2)).astype(dtype)
    grad_output = rng.standard_normal((3, 1)).astype(dtype)
    model.forward(x, training=True)
    expected_dx = model.backward(grad_output)

    model.forward(x, training=True)
    dx = model.backward(grad_output, weight_gradients=False)

    assert_close("dL/dx", dx, expected_dx)
    for layer in model.layers:
        assert layer.grads == {}, layer.name
    with pytest.raises(RuntimeError, match="'c1' has no gradient for 'kernel'"):
        model.grads  # noqa: B018


def test_sequential_without_input_gradient(dtype):
    model = conv_model(dtype)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 8, 2)).astype(dtype)
    grad_output = rng.standard_normal((3, 1)).astype(dtype)
    model.forward(x, training=True)
    model.backward(grad_output)
    expected = {key: grad.copy() for key, grad in model.grads.items()}

    model.forward(x, training=True)
    dx = model.backward(grad_output, input_gradient=False)

    assert dx is None
    assert list(model.grads) == list(expected)
    for key, grad in expected.items():
        assert_close(key, model.grads[key], grad)


def test_gan_step_skips_unused_gradients(monkeypatch):
    gan = build_gan("dcgan", noise_dim=8, dtype="float64", seed=0)
    rng = np.random.default_rng(4)
    x_real = rng.uniform(-1, 1, (2, 28, 28, 1))
    z = rng.standard_normal((2, 8))
    kernel_gradient_calls, input_gradient_channels = [], []
    kernel_gradient = conv2d_module.conv2d_chunked_kernel_gradient
    input_gradient = conv2d_module.conv2d_input_gradient

    def count_kernel_gradient(x, *args, **kwargs):
        kernel_gradient_calls.append(x.shape[-1])
        return kernel_gradient(x, *args, **kwargs)

    def count_input_gradient(grad_output, kernel, input_shape, *args, **kwargs):
        input_gradient_channels.append(input_shape[-1])
        return input_gradient(grad_output, kernel, input_shape, *args, **kwargs)

    monkeypatch.setattr(conv2d_module, "conv2d_chunked_kernel_gradient", count_kernel_gradient)
    monkeypatch.setattr(conv2d_module, "conv2d_input_gradient", count_input_gradient)
    gan.train_step(x_real, z)

    # D's two Conv2D layers compute kernel gradients in the D step's two
    # backward passes only, never in the G step.
    assert sorted(kernel_gradient_calls) == [1, 1, 64, 64]
    # dL/dx of d_conv1 (1 input channel) is needed in the G step only.
    assert sorted(input_gradient_channels) == [1, 64, 64, 64]
    with pytest.raises(RuntimeError, match="no gradient"):
        gan.discriminator.grads  # noqa: B018


def test_batch_norm_options_skip_grads_and_dx() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 3, 2))
    grad_output = rng.standard_normal(x.shape)
    layer = BatchNormalization(dtype="float64")

    layer.forward(x, training=True)
    dx_full = layer.backward(grad_output)
    grads_full = dict(layer.grads)

    layer.forward(x, training=True)
    dx_only = layer.backward(grad_output, weight_gradients=False)
    assert layer.grads == {}
    np.testing.assert_array_equal(dx_only, dx_full)

    layer.forward(x, training=True)
    nothing = layer.backward(grad_output, input_gradient=False)
    assert nothing is None
    np.testing.assert_array_equal(layer.grads["gamma"], grads_full["gamma"])
    np.testing.assert_array_equal(layer.grads["beta"], grads_full["beta"])
