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
# # Lesson 1: the GAN game
#
# A generative adversarial network (GAN) is two models trained against each
# other:
#
# - the **generator** $G$ turns a noise vector $z \sim p_z$ into a sample
#   $G(z)$. The samples follow some distribution $p_g$ that we never write
#   down; we can only draw from it.
# - the **discriminator** $D$ takes a sample $x$ and returns $D(x) \in (0, 1)$,
#   its estimate of the probability that $x$ came from the data rather than
#   from $G$.
#
# In this lesson you will write down the game they play, work out its
# solution on paper, check that solution with numbers, and then train a tiny
# one-dimensional GAN in plain NumPy until $p_g$ matches $p_{data}$.
#
# Time: about 30 minutes. Run time: a few seconds.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

OUTPUT_DIR = Path("runs") / "lessons" / "01_gan_game"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## The value function
#
# Goodfellow et al. (2014) define the game through one number, the **value**
#
# $$V(D, G) = \mathbb{E}_{x \sim p_{data}}[\log D(x)]
#           + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))].$$
#
# $D$ wants $V$ large: $D(x) \to 1$ on real samples and $D(G(z)) \to 0$ on
# fakes. $G$ wants $V$ small: it wants $D$ to believe its fakes. The game is
#
# $$\min_G \max_D V(D, G).$$
#
# The first term is the log-likelihood of a logistic classifier on the real
# samples and the second on the fakes, so maximising $V$ over $D$ is exactly
# training a binary classifier with the cross-entropy loss (lesson 7).
#
# ## The best discriminator for a fixed generator
#
# Write both expectations as integrals over $x$ (the second through the
# density $p_g$ of $G(z)$):
#
# $$V(D, G) = \int \big[p_{data}(x) \log D(x) + p_g(x) \log(1 - D(x))\big]\,dx.$$
#
# For each $x$ separately, $D$ maximises $a \log y + b \log(1 - y)$ over
# $y \in (0, 1)$, with $a = p_{data}(x)$ and $b = p_g(x)$. Setting the
# derivative $a / y - b / (1 - y)$ to zero gives
#
# $$D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)}.$$
#
# Where only real data lives, $D^* = 1$; where only fakes live, $D^* = 0$;
# where both are equally likely, $D^* = 1/2$. Let us draw it for two
# Gaussians.


# %%
def normal_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Density of N(mean, std^2) at x."""
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


x_grid = np.linspace(-12, 12, 4001)  # wide enough that the tails integrate to ~0
p_data = normal_pdf(x_grid, mean=1.0, std=0.7)
p_g = normal_pdf(x_grid, mean=-1.0, std=1.2)
d_star = p_data / (p_data + p_g)

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(x_grid, p_data, label="$p_{data}$ = N(1, 0.7²)")
ax.plot(x_grid, p_g, label="$p_g$ = N(-1, 1.2²)")
ax.plot(x_grid, d_star, "k--", label="$D^*(x)$")
ax.set_xlabel("x")
ax.set_xlim(-5, 5)
ax.legend()
ax.set_title("The optimal discriminator for a fixed generator")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "optimal_discriminator.png", dpi=80)

# %% [markdown]
# $D^*$ is high only in a window around the data. Far out on the right,
# the wider Gaussian $p_g$ has the heavier tail, so $D^*$ falls back towards
# 0 there too. A discriminator that only looked at whether $x$ is large or
# small could not express this; ours will need a feature that depends on $x^2$.
#
# ## The value at the optimum
#
# Put $D^*$ back into $V$:
#
# $$V(D^*, G) = \mathbb{E}_{p_{data}}\Big[\log \frac{p_{data}}{p_{data} + p_g}\Big]
#             + \mathbb{E}_{p_g}\Big[\log \frac{p_g}{p_{data} + p_g}\Big].$$
#
# Divide each denominator by 2 and take the factor out as $-\log 2$ twice:
#
# $$V(D^*, G) = -\log 4 + \mathrm{KL}\Big(p_{data} \,\Big\|\, \frac{p_{data} + p_g}{2}\Big)
#             + \mathrm{KL}\Big(p_g \,\Big\|\, \frac{p_{data} + p_g}{2}\Big)
#             = -\log 4 + 2\,\mathrm{JSD}(p_{data} \,\|\, p_g).$$
#
# The Jensen-Shannon divergence is never negative and is zero only when the
# two distributions are equal. So the generator that minimises
# $\max_D V(D, G)$ is the one with $p_g = p_{data}$; there $D^* = 1/2$
# everywhere and $V = -\log 4 \approx -1.386$.
#
# We can check the identity numerically by integrating on the grid.


# %%
def integrate(values: np.ndarray, x: np.ndarray) -> float:
    """Trapezoidal rule on a grid (NumPy's trapezoid, written out)."""
    return float(np.sum((values[1:] + values[:-1]) * np.diff(x)) / 2)


def value_at_optimum(p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray) -> float:
    """V(D*, G) by numerical integration; the tiny constant keeps log(0) away."""
    tiny = 1e-300
    d_star = p_data / (p_data + p_g + tiny)
    integrand = p_data * np.log(d_star + tiny) + p_g * np.log(1 - d_star + tiny)
    return integrate(integrand, x)


def jensen_shannon(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    tiny = 1e-300
    m = (p + q) / 2
    kl_pm = integrate(p * np.log((p + tiny) / (m + tiny)), x)
    kl_qm = integrate(q * np.log((q + tiny) / (m + tiny)), x)
    return (kl_pm + kl_qm) / 2


print(f"{'generator':>22} {'V(D*, G)':>10} {'-log 4 + 2 JSD':>15}")
for g_mean, g_std in [(-1.0, 1.2), (0.0, 0.7), (1.0, 1.0), (1.0, 0.7)]:
    p_g = normal_pdf(x_grid, g_mean, g_std)
    v = value_at_optimum(p_data, p_g, x_grid)
    v_from_jsd = -np.log(4) + 2 * jensen_shannon(p_data, p_g, x_grid)
    print(f"N({g_mean:4.1f}, {g_std:.1f}²) {'':8} {v:10.4f} {v_from_jsd:15.4f}")
    assert abs(v - v_from_jsd) < 1e-6
print(f"-log 4 = {-np.log(4):.4f}")

# %% [markdown]
# The last row is $p_g = p_{data}$, and its value is $-\log 4$.
#
# ## Why the discriminator moves first
#
# The argument above shows: *if* $D$ is optimal, then $G$ minimising $V$
# minimises the Jensen-Shannon divergence. The generator's gradient is only
# a useful signal when $D$ is close to $D^*$ for the current $G$. At the
# start, $D$ is random and has learned nothing about either distribution, so a
# step of $G$ against it goes nowhere in particular.
#
# That is why the training algorithm of Goodfellow et al. (2014) takes $k$ steps
# of $D$ (ascending $V$) and then one step of $G$ (descending $V$), and
# repeats. In practice $k = 1$ is common for image GANs, but both networks
# still alternate, and $D$ goes first in each round.
#
# ## A one-dimensional GAN in NumPy
#
# - Data: $p_{data} = N(1, 0.7^2)$.
# - Generator: an affine map of one noise value, $G(z) = a z + b$ with
#   $z \sim N(0, 1)$. So $p_g = N(b, a^2)$, and $G$ wins exactly when
#   $|a| = 0.7$ and $b = 1$.
# - Discriminator: logistic regression on the features $(1, x, x^2)$,
#   $D(x) = \sigma(w_0 + w_1 x + w_2 x^2)$ with $\sigma(s) = 1/(1 + e^{-s})$.
#   The log-ratio of two Gaussian densities is a quadratic in $x$, so this
#   family contains $D^*$ for every $G$.
#
# **Discriminator step.** $D$ minimises the binary cross-entropy
# $L_D = -\frac{1}{n}\sum \log D(x_{real}) - \frac{1}{n}\sum \log(1 - D(x_{fake}))$,
# which is $-V$ estimated on a batch. With the logit $s = w \cdot \phi(x)$,
# $\partial L_D / \partial s$ is $D(x) - 1$ for a real sample and $D(x)$ for a
# fake, so
#
# $$\frac{\partial L_D}{\partial w} = \frac{1}{n}\sum_{real} (D(x) - 1)\,\phi(x)
#                                   + \frac{1}{n}\sum_{fake} D(x)\,\phi(x).$$
#
# **Generator step.** The minimax generator loss $\log(1 - D(G(z)))$ has a
# tiny gradient exactly when $D$ rejects the fakes confidently, which is the
# usual situation early in training (lesson 7 plots this). The original
# paper therefore suggests the *non-saturating* loss
# $L_G = -\frac{1}{n}\sum \log D(G(z))$, which has the same fixed point. Its
# gradient, by the chain rule through $s(x) = w_0 + w_1 x + w_2 x^2$ and
# $x = a z + b$:
#
# $$\frac{\partial L_G}{\partial x} = (D(x) - 1)(w_1 + 2 w_2 x), \qquad
#   \frac{\partial L_G}{\partial a} = \frac{1}{n}\sum \frac{\partial L_G}{\partial x} z, \qquad
#   \frac{\partial L_G}{\partial b} = \frac{1}{n}\sum \frac{\partial L_G}{\partial x}.$$

# %%
DATA_MEAN, DATA_STD = 1.0, 0.7


def sigmoid(s: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-s)) without overflow: exp is only taken of -|s|."""
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1 / (1 + e), e / (1 + e))


def features(x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, x**2], axis=1)  # (n, 3)


def discriminator(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return sigmoid(features(x) @ w)


def estimate_value(w: np.ndarray, a: float, b: float, n: int = 4096) -> float:
    """Monte Carlo estimate of V(D, G) on fresh samples."""
    x_real = rng.normal(DATA_MEAN, DATA_STD, n)
    x_fake = a * rng.normal(size=n) + b
    tiny = 1e-12
    return float(
        np.mean(np.log(discriminator(w, x_real) + tiny))
        + np.mean(np.log(1 - discriminator(w, x_fake) + tiny))
    )


# %% [markdown]
# The training loop: $k = 5$ discriminator steps per generator step, plain
# gradient descent, batches of 256. The generator starts far away, at
# $N(-1.5, 0.3^2)$. We keep snapshots to draw later.

# %%
a, b = 0.3, -1.5  # generator
w = np.zeros(3)  # discriminator: D(x) = 1/2 everywhere at the start
learning_rate_d, learning_rate_g, k, batch_size = 0.3, 0.05, 5, 256
snapshot_steps = [0, 30, 60, 120, 200, 399]
snapshots, history = {}, []

for step in range(400):
    for _ in range(k):
        x_real = rng.normal(DATA_MEAN, DATA_STD, batch_size)
        x_fake = a * rng.normal(size=batch_size) + b
        d_real = discriminator(w, x_real)
        d_fake = discriminator(w, x_fake)
        grad_w = ((d_real - 1)[:, None] * features(x_real)).mean(axis=0) + (
            d_fake[:, None] * features(x_fake)
        ).mean(axis=0)
        w -= learning_rate_d * grad_w

    z = rng.normal(size=batch_size)
    x_fake = a * z + b
    d_fake = discriminator(w, x_fake)
    grad_x = (d_fake - 1) * (w[1] + 2 * w[2] * x_fake)
    a -= learning_rate_g * np.mean(grad_x * z)
    b -= learning_rate_g * np.mean(grad_x)

    if step % 5 == 0 or step == 399:
        history.append((step, a, b, estimate_value(w, a, b)))
    if step in snapshot_steps:
        snapshots[step] = (a, b, w.copy())

print(f"final generator: N({b:.3f}, {abs(a):.3f}²); target N({DATA_MEAN}, {DATA_STD}²)")
print(f"final discriminator weights: {np.round(w, 3)} (all zero means D = 1/2)")

# %% [markdown]
# Each panel shows the data density, the generator's density $N(b, a^2)$,
# a histogram of 2,000 fakes, and the discriminator $D(x)$ at that step.

# %%
fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharex=True, sharey=True)
x_plot = np.linspace(-4, 4, 400)
for ax, step in zip(axes.flat, snapshot_steps, strict=True):
    a_s, b_s, w_s = snapshots[step]
    fakes = a_s * rng.normal(size=2000) + b_s
    ax.hist(fakes, bins=60, range=(-4, 4), density=True, alpha=0.3, color="C1")
    ax.plot(x_plot, normal_pdf(x_plot, DATA_MEAN, DATA_STD), "C0", label="$p_{data}$")
    ax.plot(x_plot, normal_pdf(x_plot, b_s, max(abs(a_s), 1e-3)), "C1", label="$p_g$")
    ax.plot(x_plot, discriminator(w_s, x_plot), "k--", label="D(x)")
    ax.set_ylim(0, 1.6)
    ax.set_title(f"step {step}")
axes[0, 0].legend(loc="upper left")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "toy_gan_densities.png", dpi=80)

# %% [markdown]
# From about step 20 to step 100 the generator's spread $|a|$ is nearly
# zero: it moves its whole mass towards where $D$ is currently highest. The
# discriminator then learns, through its $x^2$ feature, that a narrow spike
# is suspicious, and the spread grows back. This back-and-forth is the GAN
# game in miniature, and its failure to settle is what lesson 10 calls mode
# collapse.
#
# The parameters and the estimated value over time:

# %%
steps, a_hist, b_hist, v_hist = map(np.array, zip(*history, strict=True))
fig, (ax_params, ax_value) = plt.subplots(1, 2, figsize=(11, 3.5))
ax_params.plot(steps, np.abs(a_hist), label="|a| (spread)")
ax_params.plot(steps, b_hist, label="b (mean)")
ax_params.axhline(DATA_STD, color="C0", ls=":", lw=1)
ax_params.axhline(DATA_MEAN, color="C1", ls=":", lw=1)
ax_params.set_xlabel("generator step")
ax_params.legend()
ax_value.plot(steps, v_hist, label="V(D, G), Monte Carlo")
ax_value.axhline(-np.log(4), color="k", ls="--", label="-log 4")
ax_value.set_xlabel("generator step")
ax_value.legend()
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "toy_gan_history.png", dpi=80)

# %%
assert abs(abs(a) - DATA_STD) < 0.1, f"spread {abs(a):.3f} did not reach {DATA_STD}"
assert abs(b - DATA_MEAN) < 0.1, f"mean {b:.3f} did not reach {DATA_MEAN}"
assert abs(v_hist[-1] + np.log(4)) < 0.05

# %% [markdown]
# At the end $p_g \approx p_{data}$, the discriminator weights are near zero
# (so $D \approx 1/2$ everywhere) and the value is near $-\log 4$, as the
# theory predicts. On the way, the estimate dips below $-\log 4$. That is
# no contradiction: $-\log 4$ is the minimum of $\max_D V(D, G)$, and the
# $D$ of a given step is not at its maximum.
#
# The image GANs of the later lessons play the same game. The generator is
# a stack of transposed convolutions instead of $az + b$, the discriminator a
# stack of convolutions instead of three features, and the optimiser is Adam
# instead of plain gradient descent. Nothing guarantees convergence there:
# the theory assumes $D$ can reach $D^*$ and that $G$ moves in the space of
# all distributions, not of network weights.
#
# ## Exercises
#
# 1. Set `k = 1` and `learning_rate_g = 0.2`. Does training still converge?
#    Plot $|a|$ and $b$ and describe what happens.
# 2. Replace the generator's non-saturating loss with the minimax loss
#    $\frac{1}{n}\sum \log(1 - D(G(z)))$. Derive $\partial L_G / \partial x$
#    (you should find $-D(x)(w_1 + 2 w_2 x)$), implement it, and compare the first 50
#    steps with the original run.
# 3. Remove the $x^2$ feature, so $D(x) = \sigma(w_0 + w_1 x)$. Which of the
#    two generator parameters can still be learned, and why? (Hint: once the
#    means agree, what is the best linear logit?)
# 4. Make the data a mixture of two Gaussians, $\frac12 N(-2, 0.5^2) +
#    \frac12 N(2, 0.5^2)$. The affine generator cannot represent it. Where
#    does it end up, and what does $D$ look like there?
