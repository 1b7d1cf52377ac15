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
# # Lesson 2: dense layers and backpropagation
#
# Every network in this project is a chain of layers, and every layer has
# two jobs:
#
# - `forward(x)`: compute the output $y$ and keep what the backward pass
#   will need;
# - `backward(dy)`: given $dy = \partial L / \partial y$ for some scalar loss
#   $L$, return $dx = \partial L / \partial x$ and store
#   $\partial L / \partial w$ for each trainable weight $w$ in `layer.grads`.
#
# Backpropagation is nothing more than calling `backward` on each layer in
# reverse order. In this lesson you will derive the backward pass of the
# fully connected (dense) layer, check it against finite differences with
# `scratch.gradient_check`, compare it with Keras, and train a two-layer
# network with it.
#
# Time: about 40 minutes. Run time: about 15 seconds (most of it importing
# TensorFlow).

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from scratch.gradient_check import check_layer_gradients, numerical_gradient, relative_error
from scratch.layers.dense import Dense
from scratch.sequential import Sequential

OUTPUT_DIR = Path("runs") / "lessons" / "02_dense_and_backprop"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## The forward pass
#
# A dense layer with $n_{in}$ inputs and $n_{out}$ units maps a batch
# $X$ of shape $(m, n_{in})$ (one sample per row) to
#
# $$Z = X W + b, \qquad Y = f(Z),$$
#
# where the **kernel** $W$ has shape $(n_{in}, n_{out})$, the **bias** $b$
# has shape $(n_{out},)$ and is added to every row, and $f$ is an
# element-wise activation (lesson 3), or none. Keras stores the kernel in
# this $(n_{in}, n_{out})$ layout, and so does `scratch.layers.dense.Dense`.

# %%
layer = Dense(units=3, dtype="float64", name="dense_demo")
x = rng.standard_normal((4, 5))  # (batch, n_in)
y = layer.forward(x, training=True)  # (batch, n_out)

print("kernel", layer.params["kernel"].shape, " bias", layer.params["bias"].shape)
print("x", x.shape, "-> y", y.shape)
expected = x @ layer.params["kernel"] + layer.params["bias"]
print("same as x @ kernel + bias:", np.allclose(y, expected))

# %% [markdown]
# ## The backward pass, derived
#
# Write one entry: $Z_{ij} = \sum_k X_{ik} W_{kj} + b_j$. Suppose we are
# given $G = \partial L / \partial Z$, with $G_{ij} = \partial L / \partial Z_{ij}$
# (for no activation, $G$ is `dy`). The chain rule sums over every entry of
# $Z$ that a variable touches:
#
# - $W_{kj}$ appears in $Z_{ij}$ for every row $i$, with coefficient
#   $X_{ik}$: $\;\partial L / \partial W_{kj} = \sum_i X_{ik} G_{ij}$, that is
#   $dW = X^\top G$, of shape $(n_{in}, n_{out})$.
# - $b_j$ appears in every $Z_{ij}$ with coefficient 1:
#   $\;\partial L / \partial b_j = \sum_i G_{ij}$, the column sums of $G$.
# - $X_{ik}$ appears in $Z_{ij}$ for every unit $j$, with coefficient
#   $W_{kj}$: $\;\partial L / \partial X_{ik} = \sum_j G_{ij} W_{kj}$, that is
#   $dX = G W^\top$, of shape $(m, n_{in})$.
#
# A useful habit: each gradient has the shape of the thing it is the
# gradient of, and there is usually only one way to multiply the available
# matrices to get that shape.

# %%
dy = rng.standard_normal(y.shape)
dx = layer.backward(dy)

kernel = layer.params["kernel"]
print("dx      == dy @ kernel.T :", np.allclose(dx, dy @ kernel.T))
print("dkernel == x.T @ dy      :", np.allclose(layer.grads["kernel"], x.T @ dy))
print("dbias   == dy.sum(axis=0):", np.allclose(layer.grads["bias"], dy.sum(axis=0)))

# %% [markdown]
# ## Checking a gradient with finite differences
#
# A derivation can be wrong in a way that still gives the right shapes. The
# defence is to measure the derivative. For a scalar function $f$ of an
# array $a$, the **central difference**
#
# $$\frac{\partial f}{\partial a_i}
#   \approx \frac{f(a + \epsilon e_i) - f(a - \epsilon e_i)}{2\epsilon}$$
#
# has an error of order $\epsilon^2$ (the $\epsilon^1$ terms of the two
# Taylor expansions cancel). `scratch.gradient_check.numerical_gradient`
# computes it one entry at a time. To check a whole backward pass with one
# scalar, the checker uses $L = \sum_{ij} Y_{ij}\, dy_{ij}$ for a fixed random
# $dy$: its gradient with respect to $Y$ is exactly $dy$, so the gradients
# of $L$ are what `backward(dy)` returns.
#
# The two results are compared with
# `relative_error(a, n) = max|a - n| / max(|a| + |n|)`. Around $10^{-9}$ or
# below in float64 means the backward pass is right; a wrong one gives
# errors near $10^{-2}$ to $1$.

# %%
errors = check_layer_gradients(Dense(units=3, dtype="float64"), rng.standard_normal((4, 5)))
for name, error in errors.items():
    print(f"{name:>7}: relative error {error:.2e}")
assert max(errors.values()) < 1e-8


# %% [markdown]
# Now a layer with a typical bug: the bias gradient taken from the first
# sample only instead of summed over the batch. Its shapes are all right.


# %%
class DenseWithBiasBug(Dense):
    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dx = super().backward(grad_output)
        self.grads["bias"] = grad_output[0].copy()  # bug: should be grad_output.sum(axis=0)
        return dx


buggy_layer = DenseWithBiasBug(units=3, dtype="float64")
errors = check_layer_gradients(buggy_layer, rng.standard_normal((4, 5)))
for name, error in errors.items():
    print(f"{name:>7}: relative error {error:.2e}")
assert errors["bias"] > 1e-2

# %% [markdown]
# ## Choosing epsilon, and why the check needs float64
#
# Two errors compete. The Taylor (truncation) error shrinks like
# $\epsilon^2$; the rounding error of computing $f$ in floating point,
# about $u \cdot |f|$ with the unit roundoff $u$, is divided by $2\epsilon$
# and grows as $\epsilon$ shrinks. Let us measure both for a function whose
# derivative we know exactly, $f(a) = \sum \sin(a)$ with $f'(a) = \cos(a)$.

# %%
epsilons = np.logspace(-12, -1, 23)
a_values = rng.uniform(-2, 2, size=20)


def sum_of_sines(a: np.ndarray, dtype: type) -> float:
    """f(a) = sum(sin(a)), evaluated in `dtype` (numerical_gradient itself works in float64)."""
    return float(np.sum(np.sin(a.astype(dtype))))


curves = {}
for dtype in (np.float64, np.float32):
    errors_by_epsilon = []
    for epsilon in epsilons:
        a = a_values.copy()
        numeric = numerical_gradient(lambda a=a, dtype=dtype: sum_of_sines(a, dtype), a, epsilon)
        errors_by_epsilon.append(relative_error(np.cos(a_values), numeric))
    curves[np.dtype(dtype).name] = errors_by_epsilon

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, values in curves.items():
    ax.loglog(epsilons, values, "o-", label=f"f computed in {name}")
ax.set_xlabel("epsilon")
ax.set_ylabel("relative error")
ax.legend()
ax.set_title("Central difference: truncation vs rounding")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "epsilon_sweep.png", dpi=80)
best = epsilons[int(np.argmin(curves["float64"]))]
print(f"best epsilon in float64: {best:.0e}, error {min(curves['float64']):.1e}")

# %% [markdown]
# In float64 ($u \approx 1.1 \times 10^{-16}$) the best $\epsilon$ is near
# $10^{-5}$ and the error reaches about $10^{-10}$ or below, which is why
# `numerical_gradient` defaults to $\epsilon = 10^{-6}$. In float32
# ($u \approx 6 \times 10^{-8}$) the error stays above about $10^{-4}$,
# too coarse to tell a right backward pass from a slightly wrong one. The
# project's checks therefore always run in float64.
#
# ## The same layer in Keras
#
# `keras.layers.Dense` uses the same kernel layout and weight order
# (`[kernel, bias]`), so the weights can be copied across with
# `set_weights`. `keras_impl.reference.keras_forward_backward` runs a Keras
# layer forward and computes the same vector-Jacobian products with
# `tf.GradientTape`.

# %%
import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from keras_impl.reference import keras_forward_backward  # noqa: E402

scratch_layer = Dense(units=3, dtype="float64")
x = rng.standard_normal((4, 5))
dy = rng.standard_normal((4, 3))
y_scratch = scratch_layer.forward(x, training=True)
dx_scratch = scratch_layer.backward(dy)

keras_layer = keras.layers.Dense(3, dtype="float64")
keras_layer.build((None, 5))
keras_layer.set_weights(scratch_layer.get_weights())
keras_pass = keras_forward_backward(keras_layer, x, dy, training=True)

print("max |y  scratch - Keras|     :", np.max(np.abs(y_scratch - keras_pass.output)))
print("max |dx scratch - Keras|     :", np.max(np.abs(dx_scratch - keras_pass.grad_input)))
print(
    "max |dkernel scratch - Keras|:",
    np.max(np.abs(scratch_layer.grads["kernel"] - keras_pass.grad_params["kernel"])),
)

# %% [markdown]
# The differences are at the level of float64 rounding (zero or around
# $10^{-16}$): the two layers compute the same numbers, possibly summed in
# a different order.
#
# ## Backpropagation through a stack
#
# `scratch.sequential.Sequential` runs layers in order and chains their
# backward passes in reverse. Its `params` and `grads` are dictionaries keyed
# `"layer_name/weight_name"`. We fit $y = \sin(x)$ on $[-3, 3]$ with a
# hidden layer of 16 tanh units and a linear output, using the mean squared
# error
#
# $$L = \frac{1}{m}\sum_i (\hat y_i - y_i)^2, \qquad
#   \frac{\partial L}{\partial \hat y_i} = \frac{2}{m}(\hat y_i - y_i),$$
#
# and plain gradient descent $w \leftarrow w - \eta\, \partial L / \partial w$.

# %%
x_train = np.linspace(-3, 3, 64).reshape(-1, 1)  # (64, 1)
y_train = np.sin(x_train)

model = Sequential(
    [
        Dense(16, activation="tanh", dtype="float64", name="hidden"),
        Dense(1, dtype="float64", name="output"),
    ],
    seed=0,
)
model.build((None, 1))
print(model.summary())

learning_rate = 0.05
losses = []
for _step in range(3000):
    y_hat = model.forward(x_train, training=True)
    losses.append(float(np.mean((y_hat - y_train) ** 2)))
    model.backward(2 * (y_hat - y_train) / len(x_train))
    for key, grad in model.grads.items():
        model.params[key] -= learning_rate * grad  # in place: params are the layers' arrays
print(f"MSE: start {losses[0]:.4f}, end {losses[-1]:.5f}")

fig, (ax_fit, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.5))
ax_fit.plot(x_train, y_train, "k.", label="sin(x)")
ax_fit.plot(x_train, model.forward(x_train), "C1", label="network")
ax_fit.legend()
ax_loss.semilogy(losses)
ax_loss.set_xlabel("step")
ax_loss.set_ylabel("MSE")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "fit_sine.png", dpi=80)
assert losses[-1] < 0.01

# %% [markdown]
# One more check closes the loop: the gradient that `model.backward` stored
# for one weight of the *first* layer, which passed through the tanh and the
# second layer, against a finite difference of the whole loss.

# %%
hidden_kernel = model.params["hidden/kernel"]


def mse() -> float:
    return float(np.mean((model.forward(x_train) - y_train) ** 2))


y_hat = model.forward(x_train, training=True)
model.backward(2 * (y_hat - y_train) / len(x_train))
analytic = model.grads["hidden/kernel"].copy()
numeric = numerical_gradient(mse, hidden_kernel)
print(f"relative error of d(MSE)/d(hidden kernel): {relative_error(analytic, numeric):.2e}")
assert relative_error(analytic, numeric) < 1e-7

# %% [markdown]
# ## Exercises
#
# 1. `Dense` also accepts inputs of rank 3, `(batch, time, n_in)`, and
#    applies the same kernel at every time step. Derive `dkernel` for that
#    case (hint: sum over batch *and* time), then confirm it with
#    `check_layer_gradients` on an input of shape `(2, 3, 5)`.
# 2. Write a `DenseWithInputBug` whose `dx` is `dy @ kernel.T` scaled by
#    1.01. What relative error does the check report? How small a scaling
#    error can it still detect in float64?
# 3. In the sine fit, set `learning_rate = 0.1` and look at the loss curve.
#    Then go back to 0.05 and replace `activation="tanh"` by `"relu"` and by
#    `None`. Explain the final loss of the network without activation.
# 4. Add L2 weight decay, $L' = L + \lambda \sum W^2$ over both kernels.
#    Derive the extra gradient term, add it to the update, and check one
#    kernel's gradient with `numerical_gradient`.
