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
# # Lesson 7: binary cross-entropy and the GAN losses
#
# Lesson 1 wrote the GAN game with $\log D(x)$ and $\log(1 - D(G(z)))$. In
# code, both are binary cross-entropies. This lesson covers three things.
# First, the gradient of binary cross-entropy with respect to the logit.
# Second, why the generator uses the non-saturating loss instead of the
# minimax one. Third, why the discriminator should output logits rather than
# probabilities: what goes wrong in float32, and what Keras quietly does
# about it.
#
# Time: about 40 minutes. Run time: about 15 seconds.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from scratch.layers.activations import Sigmoid
from scratch.losses import (
    BinaryCrossentropy,
    discriminator_loss,
    generator_loss,
    sigmoid_cross_entropy_with_logits,
)

OUTPUT_DIR = Path("runs") / "lessons" / "07_losses"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Binary cross-entropy and its gradient
#
# For a label $z \in \{0, 1\}$ and a predicted probability $p$, the binary
# cross-entropy is
#
# $$\ell(z, p) = -\big(z \log p + (1 - z)\log(1 - p)\big).$$
#
# Let the discriminator output a **logit** $x$ (any real number) and
# $p = \sigma(x) = 1/(1 + e^{-x})$. Using $\log \sigma(x) = -\log(1 + e^{-x})$
# and $\log(1 - \sigma(x)) = -x - \log(1 + e^{-x})$:
#
# $$\ell(z, x) = (1 - z)\,x + \log(1 + e^{-x}), \qquad
#   \frac{\partial \ell}{\partial x} = \sigma(x) - z.$$
#
# The gradient with respect to the logit is simply "prediction minus label",
# bounded in $(-1, 1)$. Through the probability instead, the chain rule has
# two factors, $\partial \ell / \partial p = -z/p + (1 - z)/(1 - p)$, which blows
# up near 0 and 1, times $\sigma'(x) = p(1 - p)$, which vanishes there.
# Their product is the same $\sigma(x) - z$, but computing each factor on its
# own in floating point is where trouble starts (later in this lesson).
#
# `scratch.losses.BinaryCrossentropy` mirrors `keras.losses.BinaryCrossentropy`,
# including `from_logits` and the mean over the batch.

# %%
labels = np.array([[1.0], [0.0], [1.0], [0.0]])
logits = np.array([[2.0], [-1.0], [-3.0], [0.5]])
loss = BinaryCrossentropy(from_logits=True)
print("loss:", loss(labels, logits))
print("gradient:", loss.gradient(labels, logits).ravel())
print("(sigmoid(x) - z) / n:", ((1 / (1 + np.exp(-logits)) - labels) / len(labels)).ravel())

# %% [markdown]
# ## The discriminator's and the generator's losses
#
# With $l_{real}$ and $l_{fake}$ the discriminator's logits on a batch of real
# and a batch of generated images:
#
# - **discriminator**: $L_D = \mathrm{BCE}(1, l_{real}) + \mathrm{BCE}(0, l_{fake})
#   = -\mathbb{E}[\log D(x)] - \mathbb{E}[\log(1 - D(G(z)))]$, which is $-V$,
#   so minimising it maximises the value function;
# - **generator, minimax**: $L_G = \mathbb{E}[\log(1 - D(G(z)))]$, the term
#   of $V$ that depends on $G$, so $\partial L_G / \partial l = -\sigma(l)/n$;
# - **generator, non-saturating**: $L_G = -\mathbb{E}[\log D(G(z))]
#   = \mathrm{BCE}(1, l_{fake})$, so $\partial L_G / \partial l = (\sigma(l) - 1)/n$.
#
# Both generator losses push $l_{fake}$ up, and both are stationary at the
# same point of the game. But early in training the discriminator easily
# separates the fakes from the real images, so $l_{fake}$ is very negative, and there the two
# behave very differently. `scratch.losses.generator_loss` returns each loss
# with its gradient; with a batch of one, the gradient is the per-sample
# derivative.

# %%
logit_grid = np.linspace(-10, 10, 401)
curves = {}
for form in ("minimax", "non-saturating"):
    values, gradients = [], []
    for logit in logit_grid:
        result = generator_loss(np.array([[logit]]), form=form)
        values.append(result.loss)
        gradients.append(result.grad_fake_logits[0, 0])
    curves[form] = (np.array(values), np.array(gradients))

fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 3.6))
for form, (values, gradients) in curves.items():
    ax_loss.plot(logit_grid, values, label=form)
    ax_grad.plot(logit_grid, gradients, label=form)
ax_loss.set_xlabel("D's logit on a fake, l")
ax_loss.set_ylabel("generator loss")
ax_grad.set_xlabel("D's logit on a fake, l")
ax_grad.set_ylabel("dL_G / dl")
ax_grad.axvspan(-10, -3, color="grey", alpha=0.15, label="D confidently rejects")
for ax in (ax_loss, ax_grad):
    ax.legend()
secondary = ax_grad.secondary_xaxis("top")
secondary.set_xticks([-6.9, -2.2, 0, 2.2, 6.9], labels=["0.001", "0.1", "0.5", "0.9", "0.999"])
secondary.set_xlabel("D(G(z)) = sigmoid(l)")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "generator_losses.png", dpi=80)

minimax_gradient = curves["minimax"][1][0]
non_saturating_gradient = curves["non-saturating"][1][0]
print(f"at l = -10: minimax gradient {minimax_gradient:.1e}", end=", ")
print(f"non-saturating gradient {non_saturating_gradient:.3f}")
assert abs(minimax_gradient) < 1e-4
assert abs(non_saturating_gradient) > 0.99

# %% [markdown]
# In the shaded region, where $D(G(z)) < 0.05$, the minimax gradient is
# nearly zero: the generator receives almost no signal exactly when it is
# doing worst. The non-saturating gradient is close to $-1$ there and only
# fades once the discriminator is fooled. The ratio of the two is
# $(1 - D(G(z)))/D(G(z))$, which is 99 at $D(G(z)) = 0.01$. This is why every
# practical GAN, including this project's, uses the non-saturating form.
#
# The discriminator's loss in the same style:

# %%
real_logits = rng.normal(2.0, 1.0, size=(8, 1))
fake_logits = rng.normal(-2.0, 1.0, size=(8, 1))
d_loss = discriminator_loss(real_logits, fake_logits)
print(f"L_D = {d_loss.loss:.4f}")
print("dL_D/d(real logits) = (sigmoid - 1)/n:", np.round(d_loss.grad_real_logits.ravel(), 4))
print("dL_D/d(fake logits) = sigmoid/n      :", np.round(d_loss.grad_fake_logits.ravel(), 4))
print(f"at D = 1/2 everywhere, L_D = 2 log 2 = {2 * np.log(2):.4f}:",
      discriminator_loss(np.zeros((8, 1)), np.zeros((8, 1))).loss)

# %% [markdown]
# $L_D = 2\log 2 = \log 4$ when $D$ cannot tell the two apart: the same
# $-\log 4$ value of the game from lesson 1, with the sign flipped.
#
# ## Why logits are safer than probabilities
#
# Suppose the discriminator ended with a sigmoid and the loss took its
# probability. For a fake ($z = 0$) that $D$ scores with logit $x$, the loss
# is $-\log(1 - \sigma(x))$, which equals $\log(1 + e^{x}) \approx x$ for large
# $x$. In float32, $1 + e^{-x}$ rounds to exactly 1 once $e^{-x}$ is below
# half the spacing of float32 numbers just above 1, $2^{-24}$, that is for
# $x$ above about 16.6. Then $\sigma(x) = 1$, $1 - p = 0$ and the loss is
# infinite. Precision is lost well before that: at $x = 15$, $1 - p$ keeps
# only a few correct bits. Keras guards against the infinity by clipping
# $p$ to $[10^{-7}, 1 - 10^{-7}]$, which caps the loss at about 15.9 and,
# worse, makes its gradient exactly zero beyond the cap. The logit formula
# $\max(x, 0) - xz + \log(1 + e^{-|x|})$ never takes `exp` of a positive
# number and is exact everywhere.

# %%
x_values = np.array([1, 5, 10, 15, 17, 20, 30, 50, 100], dtype=np.float32).reshape(-1, 1)
zeros = np.zeros_like(x_values)
probabilities = Sigmoid(dtype="float32").forward(x_values)  # stable sigmoid, in float32

with np.errstate(divide="ignore"):
    naive = -np.log(1 - probabilities)  # float32, no clipping
clipped = BinaryCrossentropy(from_logits=False, reduction="sum")
from_logits = sigmoid_cross_entropy_with_logits(zeros, x_values)

print(f"{'x':>5} {'exact':>8} {'naive float32':>14} {'clipped p':>10} {'from logits':>12}")
for row, x in enumerate(x_values.ravel()):
    exact = np.logaddexp(0.0, float(x))  # log(1 + e^x) in float64
    clipped_value = clipped(zeros[row : row + 1], probabilities[row : row + 1])
    print(
        f"{x:>5.0f} {exact:>8.3f} {naive[row, 0]:>14.3f} {clipped_value:>10.3f}"
        f" {from_logits[row, 0]:>12.3f}"
    )

# %% [markdown]
# The same comparison for the gradient with respect to the logit, which is
# what training actually uses. From logits it is $\sigma(x) - 0 \approx 1$.
# Through the clipped probability it is
# $\partial \ell / \partial p \cdot \sigma'(x)$, and zero once $p$ is clipped.

# %%
x_dense = np.linspace(0, 30, 301, dtype=np.float32).reshape(-1, 1)
zeros_dense = np.zeros_like(x_dense)
sigmoid = Sigmoid(dtype="float32")
p_dense = sigmoid.forward(x_dense)
per_entry = BinaryCrossentropy(from_logits=False, reduction="sum")
dloss_dp = per_entry.gradient(zeros_dense, p_dense)  # per entry: the sum has no 1/n factor
grad_through_probability = sigmoid.backward(dloss_dp)
grad_from_logits = BinaryCrossentropy(from_logits=True, reduction="sum").gradient(
    zeros_dense, x_dense
)

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.plot(x_dense, grad_from_logits, label="from logits: sigmoid(x)")
ax.plot(x_dense, grad_through_probability, "--", label="through clipped probability")
ax.set_xlabel("logit x of a fake (label 0)")
ax.set_ylabel("d loss / d x (float32)")
ax.legend()
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "logits_vs_probabilities.png", dpi=80)
cut = float(x_dense[np.argmax(grad_through_probability.ravel() == 0), 0])
print(f"the gradient through the probability is exactly 0 from x = {cut:.1f}")

# %% [markdown]
# A discriminator that is confidently wrong (a fake scored with logit 20)
# should get its strongest correction. Through the clipped probability it
# gets none.
#
# ## What Keras does with a sigmoid output
#
# Keras guards against this trap. With the TensorFlow backend,
# `keras.activations.sigmoid`, and so any layer with `activation="sigmoid"`,
# attaches the tensor it was given to its output as an attribute,
# `_keras_logits`. When `BinaryCrossentropy` (with `from_logits=False`)
# receives a tensor that has this attribute, it ignores the probabilities
# and computes the loss from the stored logits, with no clipping. The code
# is in `keras/src/backend/tensorflow/nn.py` (`_get_logits`, used by
# `binary_crossentropy`) in Keras 3.15. A graph tensor produced by a
# `Sigmoid` op gets the same treatment. An eager tensor with no attribute,
# or a NumPy array, takes the clipped probability path.

# %%
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

x_keras = np.array([[-30.0], [0.0], [5.0], [30.0]], dtype=np.float32)
z_keras = np.zeros_like(x_keras)
keras_bce = keras.losses.BinaryCrossentropy(reduction=None)

p_tensor = keras.activations.sigmoid(tf.constant(x_keras))
p_array = np.asarray(p_tensor)  # the same numbers, without the attribute
print("has _keras_logits:", hasattr(p_tensor, "_keras_logits"))
keras_from_tensor = np.asarray(keras_bce(z_keras, p_tensor))
keras_from_array = np.asarray(keras_bce(z_keras, p_array))
scratch_probability = np.array(
    [clipped(z_keras[i : i + 1], p_array[i : i + 1]) for i in range(len(x_keras))]
)
scratch_logits = sigmoid_cross_entropy_with_logits(z_keras, x_keras).ravel()

print(f"{'x':>5} {'Keras, sigmoid tensor':>22} {'scratch, logits':>16}"
      f" {'Keras, plain array':>19} {'scratch, probability':>21}")
for i, x in enumerate(x_keras.ravel()):
    print(
        f"{x:>5.0f} {keras_from_tensor[i]:>22.4g} {scratch_logits[i]:>16.4g}"
        f" {keras_from_array[i]:>19.4g} {scratch_probability[i]:>21.4g}"
    )
np.testing.assert_allclose(keras_from_tensor, scratch_logits, rtol=1e-5)
np.testing.assert_allclose(keras_from_array, scratch_probability, rtol=1e-5)

# %% [markdown]
# The same probabilities give a loss of 30 or of 15.9, depending only on
# whether the tensor still carries its logits. A NumPy implementation cannot
# see such an attribute. So the project avoids the question altogether: the
# discriminator ends with `Dense(1)` and no activation, and both
# implementations call the loss with `from_logits=True`. The scratch
# probability path matches Keras for plain arrays, and the scratch logit
# path matches Keras for sigmoid outputs.
#
# ## Exercises
#
# 1. Derive $\partial \ell / \partial x = \sigma(x) - z$ from
#    $\ell(z, x) = (1 - z)x + \log(1 + e^{-x})$, and check it with
#    `scratch.gradient_check.numerical_gradient` at a few logits in float64.
# 2. Show that the two generator losses have the same stationary points in
#    the idealised game of lesson 1, and that the ratio of their gradients
#    with respect to the logit is $(1 - D(G(z)))/D(G(z))$.
# 3. One-sided label smoothing replaces the real label 1 by 0.9
#    (`BinaryCrossentropy(from_logits=True, label_smoothing=0.2)` does this:
#    $1 \cdot 0.8 + 0.5 \cdot 0.2 = 0.9$). Which logit minimises the loss of a
#    real sample now? Why might this keep $D$ from becoming overconfident?
# 4. Find the smallest float32 $x$ for which `1 - sigmoid(x)` is exactly 0
#    when `sigmoid(x)` is computed as `1 / (1 + np.exp(-x))` in float32.
#    Explain it from the spacing of float32 numbers just above 1
#    ($2^{-23}$). Does computing `np.exp(-x) / (1 + np.exp(-x))` for
#    `1 - sigmoid(x)` avoid the problem?
