# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3: activations and their gradients
#
# Without a non-linear function between them, a stack of dense or
# convolution layers collapses into one linear map. The DCGAN uses four
# activations:
#
# | activation | $f(x)$ | $f'(x)$ | used in |
# | --- | --- | --- | --- |
# | ReLU | $\max(x, 0)$ | $1$ if $x > 0$, else $0$ | G's hidden layers |
# | LeakyReLU | $x$ if $x > 0$, else $\alpha x$ | $1$ if $x > 0$, else $\alpha$ | D (0.2) |
# | tanh | $\tanh x$ | $1 - \tanh^2 x$ | G's output, range $(-1, 1)$ |
# | sigmoid | $1 / (1 + e^{-x})$ | $\sigma(x)(1 - \sigma(x))$ | the loss only (lesson 7) |
#
# The derivatives of tanh and sigmoid are written in terms of the *output*,
# so the scratch layers keep $y$ from the forward pass, not $x$. ReLU and
# LeakyReLU keep $x$, because their derivative depends on its sign.
#
# Time: about 30 minutes. Run time: about 15 seconds.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from scratch.gradient_check import check_layer_gradients
from scratch.layers.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from scratch.layers.dense import Dense

OUTPUT_DIR = Path("runs") / "lessons" / "03_activations"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Values and derivatives
#
# An element-wise layer's backward pass is $dx = f'(x) \odot dy$. Passing
# $dy = 1$ therefore returns $f'(x)$ itself, which is how the derivative
# curves below are drawn: from each layer's own `backward`.

# %%
x = np.linspace(-4, 4, 801)
layers = {
    "ReLU": ReLU(dtype="float64"),
    "LeakyReLU(0.2)": LeakyReLU(negative_slope=0.2, dtype="float64"),
    "tanh": Tanh(dtype="float64"),
    "sigmoid": Sigmoid(dtype="float64"),
}

fig, axes = plt.subplots(1, 4, figsize=(13, 3), sharex=True)
for ax, (name, layer) in zip(axes, layers.items(), strict=True):
    y = layer.forward(x, training=True)
    derivative = layer.backward(np.ones_like(x))
    ax.plot(x, y, label="f(x)")
    ax.plot(x, derivative, "--", label="f'(x)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(name)
axes[0].legend()
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "activations.png", dpi=80)

# %% [markdown]
# Two things to see in the picture:
#
# - The derivative of sigmoid is at most $1/4$ (at $x = 0$), and that of
#   tanh at most $1$. Both go to zero for large $|x|$: the unit
#   **saturates**, and almost no gradient flows back through it.
# - ReLU's derivative is exactly 0 for every negative input. A unit whose
#   input is negative for every sample gets no gradient at all and stops
#   learning (a "dead" ReLU). LeakyReLU keeps a small slope $\alpha$ there,
#   which is why the DCGAN discriminator uses it: the generator's gradient
#   must pass back *through* the discriminator, and it should not be cut off.
#
# ## Checking each backward pass
#
# Finite differences (lesson 2) need care at a kink: a central difference
# that straddles $x = 0$ measures the average of the two slopes. So the
# inputs here are kept at least 0.01 away from 0.

# %%
x_check = rng.standard_normal((3, 4))
x_check = np.where(np.abs(x_check) < 0.01, 0.5, x_check)
for name, layer_class in [
    ("ReLU", lambda: ReLU(dtype="float64")),
    ("LeakyReLU", lambda: LeakyReLU(negative_slope=0.2, dtype="float64")),
    ("tanh", lambda: Tanh(dtype="float64")),
    ("sigmoid", lambda: Sigmoid(dtype="float64")),
]:
    errors = check_layer_gradients(layer_class(), x_check)
    print(f"{name:>10}: relative error of dx {errors['input']:.1e}")
    assert errors["input"] < 1e-8

# %% [markdown]
# ## What happens exactly at the kink
#
# Mathematically ReLU has no derivative at 0; any value in $[0, 1]$ is a
# valid subgradient. A framework must still return *a* number, and to
# match Keras the scratch layers return the same one. With the TensorFlow
# backend, Keras 3 computes `LeakyReLU` with `tf.nn.leaky_relu`, whose
# gradient at exactly 0 is the slope $\alpha$, while plain `ReLU` gives 0.

# %%
zero = np.zeros((1, 1))
kink_layers = {"ReLU": ReLU(dtype="float64"), "LeakyReLU(0.2)": LeakyReLU(0.2, dtype="float64")}
for name, layer in kink_layers.items():
    layer.forward(zero, training=True)
    print(f"{name:>15}: derivative at 0 = {layer.backward(np.ones((1, 1)))[0, 0]}")

# %% [markdown]
# Notice the printed slope: `0.20000000298023224`, not `0.2`. TensorFlow
# stores the slope of `tf.nn.leaky_relu` as a 32-bit float, so even a
# float64 Keras model multiplies by $\mathrm{float32}(0.2)$. The scratch
# layer rounds the same way so that the two agree to the last bit. Let us
# confirm against Keras.

# %%
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from keras_impl.reference import keras_forward_backward  # noqa: E402

x_compare = rng.standard_normal((4, 6))
dy = rng.standard_normal((4, 6))
pairs = {
    "ReLU": (ReLU(dtype="float64"), keras.layers.ReLU(dtype="float64")),
    "LeakyReLU": (
        LeakyReLU(negative_slope=0.2, dtype="float64"),
        keras.layers.LeakyReLU(negative_slope=0.2, dtype="float64"),
    ),
    "tanh": (Tanh(dtype="float64"), keras.layers.Activation("tanh", dtype="float64")),
    "sigmoid": (Sigmoid(dtype="float64"), keras.layers.Activation("sigmoid", dtype="float64")),
}
for name, (scratch_layer, keras_layer) in pairs.items():
    y_scratch = scratch_layer.forward(x_compare, training=True)
    dx_scratch = scratch_layer.backward(dy)
    keras_pass = keras_forward_backward(keras_layer, x_compare, dy, training=True)
    y_difference = np.max(np.abs(y_scratch - keras_pass.output))
    dx_difference = np.max(np.abs(dx_scratch - keras_pass.grad_input))
    print(f"{name:>10}: max |y diff| {y_difference:.1e}, max |dx diff| {dx_difference:.1e}")
    assert y_difference < 1e-12
    assert dx_difference < 1e-12

# %% [markdown]
# ## Gradients through depth
#
# Backpropagation multiplies one derivative per layer. For a chain of
# scalar units, $\partial L / \partial x_0 = \prod_l f'(z_l)\, w_l \cdot
# \partial L / \partial y$. With sigmoid every factor $f'$ is at most
# $1/4$, so the gradient can shrink geometrically with depth. The next cell
# builds stacks of `Dense(64)` plus an activation, with Keras's default
# Glorot-uniform kernels, and measures how the size of $dx$ compares with
# the size of $dy$ at the top, for depths 1 to 20.

# %%
def gradient_ratio(activation: type, depth: int, seed: int) -> float:
    """||dL/dx|| / ||dL/dy|| through `depth` pairs of Dense(64) and an activation."""
    layer_rng = np.random.default_rng(seed)
    stack = []
    for _ in range(depth):
        dense = Dense(64, dtype="float64")
        dense.rng = layer_rng
        stack += [dense, activation(dtype="float64")]
    h = layer_rng.standard_normal((32, 64))
    for layer in stack:
        h = layer.forward(h, training=True)
    dy = layer_rng.standard_normal(h.shape)
    grad = dy
    for layer in reversed(stack):
        grad = layer.backward(grad)
    return float(np.linalg.norm(grad) / np.linalg.norm(dy))


depths = [1, 2, 4, 6, 8, 12, 16, 20]
fig, ax = plt.subplots(figsize=(6, 3.5))
for activation in (Sigmoid, Tanh, ReLU, LeakyReLU):
    ratios = [gradient_ratio(activation, depth, seed=depth) for depth in depths]
    ax.semilogy(depths, ratios, "o-", label=activation.__name__)
ax.set_xlabel("number of Dense + activation layers")
ax.set_ylabel("||dx|| / ||dy||")
ax.legend()
ax.set_title("Gradient size at the input")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "gradient_through_depth.png", dpi=80)
sigmoid_ratio = gradient_ratio(Sigmoid, 20, seed=0)
print(f"sigmoid, 20 layers: ||dx|| / ||dy|| = {sigmoid_ratio:.1e}")
assert sigmoid_ratio < 1e-3

# %% [markdown]
# With sigmoid the gradient falls by twelve orders of magnitude over 20
# layers. With tanh it shrinks only slowly, to a few tenths after 20
# layers. Glorot's initialisation was designed to keep this ratio near one
# for units that behave linearly near zero, which tanh does (slope 1 at 0)
# and sigmoid (slope $1/4$) does not.
# ReLU and LeakyReLU lose roughly a factor $\sqrt{2}$ per layer. A ReLU
# passes only about half of its inputs, which halves the variance at each
# layer, and Glorot's rule does not account for that (He initialisation
# doubles the kernel variance to fix it). The DCGAN is only a few layers
# deep and uses batch normalisation (lesson 6), so neither effect hurts it
# much. Sigmoid, however, appears in it only at the very end, folded into
# the loss.
#
# ## Exercises
#
# 1. Show that $\tanh(x) = 2\sigma(2x) - 1$ and derive
#    $\tanh'(x) = 1 - \tanh^2(x)$ from $\sigma'(x) = \sigma(x)(1 - \sigma(x))$.
#    Check the identity numerically with the `Tanh` and `Sigmoid` layers.
# 2. Create `ReLU(max_value=6.0)` (ReLU6). Plot its value and derivative,
#    and compare its derivative at exactly 6 with Keras's
#    `keras.layers.ReLU(max_value=6.0)` using `keras_forward_backward`.
# 3. He initialisation draws kernels from $U(-l, l)$ with
#    $l = \sqrt{6 / n_{in}}$. Write it as a function
#    `(shape, dtype, rng) -> array`, pass it as `kernel_initializer=` to the
#    `Dense` layers in `gradient_ratio`, and redraw the ReLU curve. Why does
#    it flatten?
# 4. Dead ReLUs: pass 1,000 standard-normal samples through `Dense(64)` with
#    its bias set to $-3$, then ReLU. What fraction of the units output 0
#    for every sample? What gradient do their kernels get?
