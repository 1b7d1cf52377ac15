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
# # Lesson 5: the transposed convolution
#
# The generator must go the other way from the discriminator: from a
# $7 \times 7$ feature map to a $28 \times 28$ image. The DCGAN does this with
# transposed convolutions of stride 2, each doubling height and width. In
# this lesson you will see a transposed convolution as "painting" kernel
# patches and prove that it is the gradient of a convolution (hence its
# name). Then you will work out its output sizes and see the checkerboard
# pattern it can leave when the kernel size is not a multiple of the stride.
#
# Time: about 45 minutes. Run time: about 15 seconds.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from scratch.gradient_check import check_layer_gradients
from scratch.layers.conv2d import Conv2D
from scratch.layers.conv2d_transpose import Conv2DTranspose

OUTPUT_DIR = Path("runs") / "lessons" / "05_conv2d_transpose"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Painting patches
#
# A transposed convolution with kernel `(kh, kw, filters, in_channels)` and
# strides $(s_h, s_w)$ takes each input pixel $(i, j)$ and *adds* the patch
#
# $$\mathrm{out}^{pad}_{b,\; i s_h + d_i,\; j s_w + d_j,\; :} \mathrel{+}=
#   \mathrm{kernel}_{d_i, d_j} \, x_{b, i, j, :}
#   \qquad (0 \le d_i < k_h,\ 0 \le d_j < k_w)$$
#
# to a padded output, which is then cropped to the final size. With stride
# 2, neighbouring input pixels paint patches two output pixels apart, so the
# output is about twice as large. Where patches overlap, they add.
#
# Note the kernel layout: Keras stores a `Conv2DTranspose` kernel as
# `(kh, kw, filters, in_channels)`, output channels *before* input channels,
# the reverse of `Conv2D`. The reason is the next section.
#
# Here is one input pixel, then two, painted with a 3x3 kernel of ones at
# stride 2 (`padding="valid"`, so nothing is cropped):

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
cases = {
    "one pixel": [(1, 1)],
    "two neighbours": [(1, 1), (1, 2)],
    "a 3x3 block": [(i, j) for i in range(3) for j in range(3)],
}
for ax, (title, pixels) in zip(axes, cases.items(), strict=True):
    x = np.zeros((1, 3, 3, 1))
    for i, j in pixels:
        x[0, i, j, 0] = 1.0
    layer = Conv2DTranspose(1, 3, strides=2, padding="valid", use_bias=False, dtype="float64")
    layer.build(x.shape)
    layer.set_weights([np.ones((3, 3, 1, 1))])
    y = layer.forward(x)  # (1, 7, 7, 1)
    image = ax.imshow(y[0, :, :, 0], cmap="viridis", vmin=0, vmax=4)
    for (row, col), value in np.ndenumerate(y[0, :, :, 0]):
        ax.text(col, row, f"{value:.0f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_title(f"{title}: 3x3 -> {y.shape[1]}x{y.shape[2]}")
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "painting.png", dpi=80)

# %% [markdown]
# With all nine input pixels on, the output is not uniform: pixels covered
# by two or four patches get 2 or 4, the others 1. Keep this in mind for
# the checkerboard section.
#
# ## The gradient of a convolution
#
# A convolution is linear in its input, so on flattened arrays it is a
# matrix: $y = C x$. Its input gradient is $dx = C^\top dy$. The transposed
# convolution *is* the map $x \mapsto C^\top x$, for the convolution $C$ that
# goes from the transposed convolution's *output* size back to its *input*
# size with the same kernel, strides and padding. So:
#
# - the forward pass of `Conv2DTranspose` is the input gradient of that
#   `Conv2D`, which is how TensorFlow computes it (`conv2d_backprop_input`);
# - the backward pass of `Conv2DTranspose` is that `Conv2D`'s forward pass;
# - the kernel `(kh, kw, filters, in_channels)`, read as a `Conv2D` kernel,
#   maps `filters` channels to `in_channels`, which is why the order is
#   reversed.
#
# We can build both matrices column by column, by feeding one-hot inputs,
# for a one-row image of width 8, kernel width 3 and stride 2.


# %%
def matrix_of(linear_map, input_shape: tuple[int, ...]) -> np.ndarray:
    """Return the matrix of a linear map on arrays, built one basis vector at a time."""
    columns = []
    for index in range(int(np.prod(input_shape))):
        basis = np.zeros(int(np.prod(input_shape)))
        basis[index] = 1.0
        columns.append(linear_map(basis.reshape(input_shape)).ravel())
    return np.stack(columns, axis=1)


kernel_1d = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)  # (kh, kw, 1, 1)
conv = Conv2D(1, (1, 3), strides=(1, 2), padding="same", use_bias=False, dtype="float64")
conv.build((1, 1, 8, 1))
conv.set_weights([kernel_1d])
transposed = Conv2DTranspose(
    1, (1, 3), strides=(1, 2), padding="same", use_bias=False, dtype="float64"
)
transposed.build((1, 1, 4, 1))
transposed.set_weights([kernel_1d])

C = matrix_of(conv.forward, (1, 1, 8, 1))  # (4, 8): width 8 -> 4
T = matrix_of(transposed.forward, (1, 1, 4, 1))  # (8, 4): width 4 -> 8
print("C, the convolution 8 -> 4:\n", C)
print("T, the transposed convolution 4 -> 8, equals C transposed:", np.array_equal(T, C.T))
assert np.array_equal(T, C.T)

fig, (ax_c, ax_t) = plt.subplots(1, 2, figsize=(7, 3), gridspec_kw={"width_ratios": [2, 1]})
ax_c.imshow(C, cmap="Blues")
ax_c.set_title("Conv2D: C (4 x 8)")
ax_t.imshow(T, cmap="Blues")
ax_t.set_title("Conv2DTranspose: C^T (8 x 4)")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "conv_matrix.png", dpi=80)

# %% [markdown]
# The same holds for full 2-D layers with many channels: the forward pass of
# a `Conv2DTranspose` equals the input gradient of a `Conv2D` with the same
# kernel, evaluated at $dy = x$.

# %%
x = rng.standard_normal((2, 7, 7, 8))  # (batch, 7, 7, in_channels)
up = Conv2DTranspose(4, 5, strides=2, padding="same", use_bias=False, dtype="float64")
y = up.forward(x)  # (2, 14, 14, 4)

down = Conv2D(8, 5, strides=2, padding="same", use_bias=False, dtype="float64")
down.build(y.shape)  # a convolution 14x14x4 -> 7x7x8
down.set_weights([up.get_weights()[0]])
down.forward(np.zeros(y.shape), training=True)
gradient_of_conv = down.backward(x)  # (2, 14, 14, 4)

print("transposed conv output:", y.shape, " conv input gradient:", gradient_of_conv.shape)
print(f"max difference: {np.max(np.abs(y - gradient_of_conv)):.1e}")
assert np.allclose(y, gradient_of_conv, rtol=0, atol=1e-12)

# %% [markdown]
# ## Output sizes
#
# Keras's rules for one axis, with input length $n$, kernel size $k$,
# stride $s$ and `output_padding` $p$:
#
# | padding | $p$ = None | $p$ given |
# | --- | --- | --- |
# | `"valid"` | $(n - 1)s + \max(k, s)$ | $(n - 1)s + k + p$ |
# | `"same"` | $n s$ | $(n - 1)s + (k \bmod 2) + p$ |
#
# Several output sizes map back to the same input size under a strided
# convolution (both 13 and 14 give 7 with $s = 2$, `"same"`), so the
# transposed convolution must pick one; `output_padding` lets you choose.
# The project's `dcgan` generator uses $k = 4$, $s = 2$, `"same"`:
# 7 -> 14 -> 28.

# %%
print(f"{'n':>3} {'k':>2} {'s':>2} {'padding':>8} {'output_padding':>15} {'n_out':>6}")
for n, k, s, padding, output_padding in [
    (7, 4, 2, "same", None),
    (14, 4, 2, "same", None),
    (7, 5, 2, "same", None),
    (7, 5, 2, "valid", None),
    (7, 5, 1, "same", None),
    (7, 3, 2, "same", 0),
    (7, 4, 2, "valid", 1),
]:
    layer = Conv2DTranspose(1, k, strides=s, padding=padding, output_padding=output_padding)
    n_out = layer.compute_output_shape((1, n, n, 1))[1]
    print(f"{n:>3} {k:>2} {s:>2} {padding:>8} {str(output_padding):>15} {n_out:>6}")

# %% [markdown]
# ## Checkerboard artefacts
#
# When the kernel size is not a multiple of the stride, output pixels are
# covered by different numbers of patches in a repeating pattern. Feed a
# constant input through a transposed convolution whose kernel is all ones:
# a perfect upsampler would return a constant image.

# %%
x_constant = np.ones((1, 8, 8, 1))
fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
coverage = {}
for ax, k in zip(axes, (3, 4, 5), strict=True):
    layer = Conv2DTranspose(1, k, strides=2, padding="same", use_bias=False, dtype="float64")
    layer.build(x_constant.shape)
    layer.set_weights([np.ones((k, k, 1, 1))])
    y = layer.forward(x_constant)[0, :, :, 0]  # (16, 16)
    interior = y[3:-3, 3:-3]  # away from the borders, where fewer patches reach
    coverage[k] = (interior.min(), interior.max())
    ax.imshow(y, cmap="gray")
    low, high = interior.min(), interior.max()
    ax.set_title(f"kernel {k}, stride 2\ninterior values {low:.0f} to {high:.0f}")
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "checkerboard.png", dpi=80)
print({k: f"interior values {low:.0f}..{high:.0f}" for k, (low, high) in coverage.items()})
assert coverage[4][0] == coverage[4][1]  # kernel 4, stride 2: even overlap
assert coverage[3][0] != coverage[3][1]  # kernel 3, stride 2: uneven overlap

# %% [markdown]
# With kernel 4 and stride 2, every interior pixel is covered by
# $(4/2)^2 = 4$ patches, and the output is flat. With kernel 3 the coverage
# alternates between 1, 2 and 4, and with kernel 5 (the DCGAN paper's
# choice, and the TensorFlow tutorial's) between 4, 6 and 9: a
# checkerboard. A trained network can learn kernel weights that cancel the
# pattern, but it has to spend effort doing so, and early in training the
# samples often show a faint grid. Kernel sizes divisible by the stride, or
# nearest-neighbour upsampling followed by an ordinary convolution, avoid
# the problem by construction. That is why this project's `dcgan` preset
# uses $4 \times 4$ kernels.
#
# ## Backward pass and equality with Keras
#
# The backward pass reuses the convolution: $dx$ is the convolution of
# $dy$ with the same kernel, and the kernel gradient sums
# `dy_pad[patch].T @ x[pixel]` over the pixels each offset touched. Both the
# loop and the fast version pass the finite-difference check, and both agree
# with `keras.layers.Conv2DTranspose` on shared weights.

# %%
for implementation in ("loop", "fast"):
    layer = Conv2DTranspose(
        3, 3, strides=2, padding="same", dtype="float64", implementation=implementation
    )
    errors = check_layer_gradients(layer, rng.standard_normal((2, 4, 4, 2)))
    print(f"{implementation:>5}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert max(errors.values()) < 1e-8

# %%
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from keras_impl.reference import keras_forward_backward  # noqa: E402

x = rng.standard_normal((2, 7, 7, 3))
header = f"{'kernel':>6} {'strides':>7} {'padding':>7} {'out_pad':>7}"
print(f"{header} {'output':>16} {'max rel. diff':>14}")
for kernel_size, strides, padding, output_padding in [
    (5, 2, "same", None),
    (4, 2, "same", None),
    (3, 2, "valid", None),
    (3, 2, "valid", 1),
    (5, 1, "same", None),
]:
    settings = dict(strides=strides, padding=padding, output_padding=output_padding)
    scratch_layer = Conv2DTranspose(4, kernel_size, dtype="float64", **settings)
    y = scratch_layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = scratch_layer.backward(dy)

    keras_layer = keras.layers.Conv2DTranspose(4, kernel_size, dtype="float64", **settings)
    keras_layer.build(x.shape)
    keras_layer.set_weights(scratch_layer.get_weights())
    reference = keras_forward_backward(keras_layer, x, dy, training=True)

    pairs = [
        (y, reference.output),
        (dx, reference.grad_input),
        (scratch_layer.grads["kernel"], reference.grad_params["kernel"]),
        (scratch_layer.grads["bias"], reference.grad_params["bias"]),
    ]
    worst = max(np.max(np.abs(a - b)) / np.max(np.abs(b)) for a, b in pairs)
    row = f"{kernel_size:>6} {strides:>7} {padding:>7} {str(output_padding):>7}"
    print(f"{row} {str(y.shape):>16} {worst:>14.1e}")
    assert worst < 1e-10

# %% [markdown]
# ## Exercises
#
# 1. By hand, compute the output size of `Conv2DTranspose(k=5, s=2)` on a
#    $7 \times 7$ input for `"same"` and for `"valid"`, then check with
#    `compute_output_shape`.
# 2. Build the matrix $C$ of `Conv2D(1, (1, 4), strides=(1, 2), padding="same")`
#    on a width of 8 and the matrix of the matching `Conv2DTranspose` from
#    width 4. Are they still transposes of each other? Count the non-zeros
#    in each row of $C^\top$ and relate them to the checkerboard.
# 3. Nearest-neighbour upsampling (`np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)`)
#    followed by a `Conv2D(1, 3, padding="same")` with a kernel of ones is
#    another way to double the size. Apply it to the constant input above.
#    Does it show a checkerboard in the interior?
# 4. For kernel size $k$ and stride $s$ in one dimension, show that the
#    number of patches covering interior output pixel $m$ is the number of
#    integers $i$ with $0 \le m - i s < k$, and that it is the same for every
#    $m$ exactly when $s$ divides $k$.
