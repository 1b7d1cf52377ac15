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
# # Lesson 6: batch normalisation
#
# The DCGAN paper found that batch normalisation was needed to train deep
# generators at all. The layer standardises each channel over the batch and
# then applies a learned scale and shift. It has two modes that behave quite
# differently, and its backward pass is the hardest in this project. In this
# lesson you will see both modes, watch the moving statistics converge, and
# derive the backward pass step by step.
#
# Time: about 50 minutes. Run time: about 15 seconds.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from scratch.gradient_check import check_layer_gradients
from scratch.layers.normalization import BatchNormalization

OUTPUT_DIR = Path("runs") / "lessons" / "06_batch_normalization"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Training mode
#
# For channel $c$, take all $N$ values of that channel in the batch (for
# NHWC images, $N = \text{batch} \times \text{height} \times \text{width}$):
#
# $$\mu = \frac{1}{N}\sum_i x_i, \qquad
#   \sigma^2 = \frac{1}{N}\sum_i (x_i - \mu)^2, \qquad
#   \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
#   y_i = \gamma \hat x_i + \beta.$$
#
# The variance is the biased one (divided by $N$). Keras's defaults are
# $\epsilon = 10^{-3}$, $\gamma = 1$, $\beta = 0$. After normalisation each
# channel has mean $\beta$ and standard deviation close to $\gamma$, whatever
# the scale of the input.

# %%
# Three channels with very different means and spreads.
x = rng.standard_normal((16, 6, 6, 3)) * np.array([0.5, 3.0, 10.0]) + np.array([2.0, -5.0, 20.0])
layer = BatchNormalization(dtype="float64")
y = layer.forward(x, training=True)

for channel in range(3):
    x_channel, y_channel = x[..., channel], y[..., channel]
    print(
        f"channel {channel}: input mean {x_channel.mean():6.2f} std {x_channel.std():5.2f}"
        f"  ->  output mean {y_channel.mean():5.2f} std {y_channel.std():.4f}"
    )

fig, (ax_in, ax_out) = plt.subplots(1, 2, figsize=(10, 3))
for channel in range(3):
    ax_in.hist(x[..., channel].ravel(), bins=40, alpha=0.6, label=f"channel {channel}")
    ax_out.hist(y[..., channel].ravel(), bins=40, alpha=0.6, label=f"channel {channel}")
ax_in.set_title("input")
ax_out.set_title("after BatchNormalization (training mode)")
ax_in.legend()
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "normalised_channels.png", dpi=80)

# %% [markdown]
# The standard deviation is slightly below 1 because of $\epsilon$: for
# channel 0, $\sigma \approx 0.5$ and $0.5 / \sqrt{0.25 + 0.001} \approx 0.998$.
#
# In training mode, one sample's output depends on the *other* samples in
# its batch, through $\mu$ and $\sigma^2$. The same image in two different
# batches gives two different outputs:

# %%
sample = x[:1]
batch_a = np.concatenate([sample, rng.standard_normal((7, 6, 6, 3))])
batch_b = np.concatenate([sample, 5 + rng.standard_normal((7, 6, 6, 3))])
layer = BatchNormalization(dtype="float64")
out_a = layer.forward(batch_a, training=True)[0]
out_b = layer.forward(batch_b, training=True)[0]
print(f"same sample, two batches: max output difference {np.max(np.abs(out_a - out_b)):.2f}")

# %% [markdown]
# This matters for GANs. The usual DCGAN step sends a batch of only real
# images and a batch of only fake images through the discriminator
# separately, so each batch is normalised with its own statistics.
#
# ## Inference mode and the moving statistics
#
# At inference time there may be a single sample, and its output should not
# depend on anything else. So the layer keeps exponential moving averages,
# updated at every training-mode call with `momentum` $m$ (Keras's default
# 0.99):
#
# $$\mu_{moving} \leftarrow m\, \mu_{moving} + (1 - m)\, \mu_{batch}, \qquad
#   \sigma^2_{moving} \leftarrow m\, \sigma^2_{moving} + (1 - m)\, \sigma^2_{batch},$$
#
# and `training=False` uses them in place of the batch statistics. They
# start at $\mu_{moving} = 0$ and $\sigma^2_{moving} = 1$. Starting from 0, after
# $k$ updates with a constant batch mean $\mu$ the moving mean is
# $(1 - m^k)\mu$; with $m = 0.99$ it takes $\log 0.01 / \log 0.99 \approx 458$
# updates to come within 1 % of $\mu$.

# %%
layer = BatchNormalization(dtype="float64")
data_mean, data_std = 3.0, 2.0
moving_means, moving_variances, gaps = [], [], []
x_test = data_mean + data_std * rng.standard_normal((64, 4))
for _step in range(800):
    batch = data_mean + data_std * rng.standard_normal((64, 4))
    layer.forward(batch, training=True)
    moving_means.append(layer.state["moving_mean"][0])
    moving_variances.append(layer.state["moving_variance"][0])
    # The same test batch in both modes: how far apart are the outputs?
    y_train_mode = layer.forward(x_test, training=True)
    y_inference = layer.forward(x_test, training=False)
    gaps.append(np.mean(np.abs(y_train_mode - y_inference)))
    # The extra training-mode call above also updated the moving statistics;
    # for this experiment that only makes them converge a little faster.

steps = np.arange(1, 801)
fig, (ax_stats, ax_gap) = plt.subplots(1, 2, figsize=(10, 3.2))
ax_stats.plot(steps, moving_means, label="moving_mean")
ax_stats.plot(steps, moving_variances, label="moving_variance")
ax_stats.axhline(data_mean, color="C0", ls=":")
ax_stats.axhline(data_std**2, color="C1", ls=":")
ax_stats.set_xlabel("training-mode calls")
ax_stats.legend()
ax_gap.semilogy(steps, gaps)
ax_gap.set_xlabel("training-mode calls")
ax_gap.set_title("mean |training-mode output - inference output|")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "moving_statistics.png", dpi=80)
print(f"after 800 updates: moving_mean {moving_means[-1]:.3f}", end=", ")
print(f"moving_variance {moving_variances[-1]:.3f}")
assert abs(moving_means[-1] - data_mean) < 0.1

# %% [markdown]
# For the first few hundred steps, inference mode gives very different
# outputs from training mode. A GAN trained for only a short time, then
# sampled with `training=False`, can therefore produce noticeably worse
# images than the same generator in training mode. Keep this in mind when
# you look at sample grids from short runs in lesson 10.
#
# ## The backward pass
#
# In inference mode, $\mu$ and $\sigma^2$ are constants, the layer is the
# per-channel affine map $y = \gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$,
# and $dx = \gamma\, dy / \sqrt{\sigma^2 + \epsilon}$.
#
# In training mode, each $x_i$ reaches the loss three ways: directly through
# $\hat x_i$, through $\sigma^2$, and through $\mu$. With $dy$ given and
# $s = 1/\sqrt{\sigma^2 + \epsilon}$, all sums over the $N$ values of a channel:
#
# $$d\beta = \sum_i dy_i, \qquad d\gamma = \sum_i dy_i\, \hat x_i, \qquad
#   d\hat x_i = \gamma\, dy_i,$$
#
# $$d\sigma^2 = \sum_i d\hat x_i\,(x_i - \mu) \cdot \left(-\tfrac12\right) s^3,$$
#
# $$d\mu = \sum_i d\hat x_i\,(-s) + d\sigma^2 \cdot \frac{1}{N}\sum_i -2(x_i - \mu),$$
#
# $$dx_i = d\hat x_i\, s + d\sigma^2 \cdot \frac{2 (x_i - \mu)}{N} + \frac{d\mu}{N}.$$
#
# The second term of $d\mu$ is zero, because centred values sum to zero.
# Collecting the terms gives the compact form
#
# $$dx_i = \frac{s}{N}\Big(N\, d\hat x_i - \sum_j d\hat x_j
#         - \hat x_i \sum_j d\hat x_j\, \hat x_j\Big).$$
#
# `scratch/layers/normalization.py` writes out the three steps. Here we
# compute the compact form by hand and compare.

# %%
x = rng.standard_normal((8, 5, 5, 2)) * 2 + 1
dy = rng.standard_normal(x.shape)
layer = BatchNormalization(dtype="float64")
layer.build(x.shape)
layer.set_weights([np.array([1.5, 0.5]), np.array([0.1, -0.2]), np.zeros(2), np.ones(2)])
layer.forward(x, training=True)
dx_layer = layer.backward(dy)

axes = (0, 1, 2)
n = x.size // x.shape[-1]
mean = x.mean(axis=axes)
s = 1 / np.sqrt(x.var(axis=axes) + layer.epsilon)
x_hat = (x - mean) * s
dx_hat = dy * layer.params["gamma"]
dx_compact = (s / n) * (
    n * dx_hat - dx_hat.sum(axis=axes) - x_hat * (dx_hat * x_hat).sum(axis=axes)
)
print(f"max |layer - compact formula| = {np.max(np.abs(dx_layer - dx_compact)):.1e}")
assert np.allclose(dx_layer, dx_compact, rtol=0, atol=1e-12)

# %% [markdown]
# The compact form shows two facts worth remembering. In each channel $dx$
# sums to zero: adding a constant to a whole channel does not change the
# normalised output, so the gradient has no component in that direction.
# And $dx$ is nearly orthogonal to $\hat x$, because scaling a channel
# hardly changes the output. Not exactly: $\sum_i \hat x_i^2 = N \sigma^2 /
# (\sigma^2 + \epsilon)$ is slightly below $N$, so the scale invariance, and
# the orthogonality, hold only up to terms of relative size
# $\epsilon / \sigma^2$.

# %%
print("sum of dx per channel:", dx_layer.sum(axis=axes))
cosine = (dx_layer * x_hat).sum(axis=axes) / (
    np.linalg.norm(dx_layer.reshape(-1, 2), axis=0) * np.linalg.norm(x_hat.reshape(-1, 2), axis=0)
)
print("cosine between dx and x_hat per channel:", cosine)
print("epsilon / variance per channel:", layer.epsilon / x.var(axis=axes))
assert np.all(np.abs(dx_layer.sum(axis=axes)) < 1e-12)

# %% [markdown]
# Finite differences confirm both modes. The check restores the moving
# statistics before every call, so the training-mode updates do not change
# the function being differentiated.

# %%
for training in (True, False):
    errors = check_layer_gradients(
        BatchNormalization(dtype="float64"), rng.standard_normal((4, 3, 3, 2)), training=training
    )
    print(f"training={training!s:>5}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert max(errors.values()) < 1e-7

# %% [markdown]
# ## Equal to Keras
#
# Keras's weight order is `[gamma, beta, moving_mean, moving_variance]`, the
# same as the scratch layer's `get_weights()`. We compare the output, all
# gradients and the updated moving statistics after one training step.

# %%
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from keras_impl.reference import keras_forward_backward  # noqa: E402

x = rng.standard_normal((8, 5, 5, 3)) * 3 + 2
dy = rng.standard_normal(x.shape)
scratch_layer = BatchNormalization(momentum=0.8, dtype="float64")
scratch_layer.build(x.shape)
weights = [
    rng.uniform(0.5, 1.5, 3),
    rng.standard_normal(3),
    rng.standard_normal(3),
    rng.uniform(0.5, 2, 3),
]
scratch_layer.set_weights(weights)
y = scratch_layer.forward(x, training=True)
dx = scratch_layer.backward(dy)

keras_layer = keras.layers.BatchNormalization(momentum=0.8, dtype="float64")
keras_layer.build(x.shape)
keras_layer.set_weights(weights)
reference = keras_forward_backward(keras_layer, x, dy, training=True)
keras_weights = keras_layer.get_weights()

comparisons = {
    "output": (y, reference.output),
    "dx": (dx, reference.grad_input),
    "dgamma": (scratch_layer.grads["gamma"], reference.grad_params["gamma"]),
    "dbeta": (scratch_layer.grads["beta"], reference.grad_params["beta"]),
    "moving_mean": (scratch_layer.state["moving_mean"], keras_weights[2]),
    "moving_variance": (scratch_layer.state["moving_variance"], keras_weights[3]),
}
for name, (ours, theirs) in comparisons.items():
    relative = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
    print(f"{name:>16}: max relative difference {relative:.1e}")
    assert relative < 1e-10

# %% [markdown]
# ## Exercises
#
# 1. Starting from the three-step backward pass above, derive the compact
#    form of $dx_i$. (Substitute $d\sigma^2$ and $d\mu$, and use
#    $x_i - \mu = \hat x_i / s$.)
# 2. Pass a batch of a single rank-2 sample, shape `(1, 4)`, through a
#    training-mode layer. What are the output and $dx$, and why? What happens
#    to `moving_variance` over many such calls?
# 3. Re-run the moving-statistics experiment with `momentum=0.9`. How many
#    steps does the moving mean need to come within 1 % now? Derive the number
#    from $(1 - m^k)$ first.
# 4. The DCGAN generator puts BatchNormalization after its Dense layer,
#    whose input has shape `(batch, units)`. Over which axes are the
#    statistics taken there, and how many values $N$ enter each mean?
