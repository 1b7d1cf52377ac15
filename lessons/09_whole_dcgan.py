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
# # Lesson 9: the whole DCGAN, twice
#
# The previous lessons built every piece: dense and convolution layers,
# transposed convolutions, batch normalisation, activations, the losses and
# Adam. This lesson assembles them into the DCGAN's generator and
# discriminator. It builds each network both in NumPy (`scratch.models`) and
# in Keras (`keras_impl.models`) from one shared description, copies the
# weights across, and checks that the two agree layer by layer and over
# whole training steps. You will also see how the layer-by-layer table
# points at the one layer that is wrong when something differs.
#
# Time: about 40 minutes. Run time: about 30 seconds.

# %%
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_impl import models as keras_models  # noqa: E402
from keras_impl.compare import compare_models, first_failure, format_table  # noqa: E402
from keras_impl.data import find_mnist  # noqa: E402
from keras_impl.gan import build_keras_gan  # noqa: E402
from keras_impl.model_weights import (  # noqa: E402
    copy_keras_model_to_scratch,
    keras_weights_by_key,
)
from scratch import models as scratch_models  # noqa: E402
from scratch.architectures import get_preset  # noqa: E402
from scratch.data import scale_images  # noqa: E402
from scratch.gan import build_gan  # noqa: E402

OUTPUT_DIR = Path("runs") / "lessons" / "09_whole_dcgan"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)


def mnist_directory() -> Path | None:
    """Return the shared MNIST folder next to the project, or None when it is absent."""
    try:
        lesson_dir = Path(__file__).resolve().parent
    except NameError:  # Jupyter runs a notebook from its own folder and defines no __file__
        lesson_dir = Path.cwd()
    candidate = lesson_dir.parent.parent / "shared" / "data" / "mnist"
    return candidate if candidate.is_dir() else None


# %% [markdown]
# ## One description, two builders
#
# `scratch/architectures.py` describes each network as a list of
# `LayerSpec(kind, name, args)`, with Keras's class names and argument
# names. `scratch.models` turns each spec into the NumPy layer of that name
# and `keras_impl.models` into `keras.layers.<kind>(**args)`. So the two
# networks cannot drift apart: same layers, same names, same weight shapes.
# The `dcgan` preset follows the rules of the DCGAN paper (Radford, Metz and
# Chintala, 2015) at MNIST size:

# %%
preset = get_preset("dcgan")
print(preset.description)
print()
for spec in preset.generator:
    print(f"G  {spec.name:<10} {spec.kind:<19} {dict(spec.args)}")
for spec in preset.discriminator:
    print(f"D  {spec.name:<10} {spec.kind:<19} {dict(spec.args)}")

# %% [markdown]
# The generator maps $z \in \mathbb{R}^{100}$ to a $28 \times 28$ image:
# project to $7 \times 7 \times 128$, then two stride-2 transposed
# convolutions double the size twice (lesson 5). The discriminator mirrors
# it with two stride-2 convolutions (lesson 4) and ends in `Dense(1)`: a
# logit, with no sigmoid (lesson 7). Batch normalisation (lesson 6) sits in
# between, except on G's output and D's input, as the paper recommends.
#
# Both are built in float64 here, so that any real difference is visible
# above rounding. The Keras models are built with a seed; then every Keras
# weight, including the moving statistics, is copied into the scratch
# models.

# %%
keras_generator = keras_models.build_generator("dcgan", dtype="float64", seed=0)
keras_discriminator = keras_models.build_discriminator("dcgan", dtype="float64", seed=1)
scratch_generator = scratch_models.build_generator("dcgan", dtype="float64")
scratch_discriminator = scratch_models.build_discriminator("dcgan", dtype="float64")
copy_keras_model_to_scratch(keras_generator, scratch_generator)
copy_keras_model_to_scratch(keras_discriminator, scratch_discriminator)

print(scratch_generator.summary())
print()
print(scratch_discriminator.summary())
print()
print("Keras parameter counts:", keras_generator.count_params(), keras_discriminator.count_params())
assert keras_generator.count_params() == scratch_generator.count_params()
assert keras_discriminator.count_params() == scratch_discriminator.count_params()

# %% [markdown]
# ## The same digits from both generators
#
# An untrained generator makes noise, not digits, but it must make the
# *same* noise in both implementations. Inference mode uses the moving
# statistics in batch normalisation.

# %%
z = rng.standard_normal((8, 100))
images_keras = np.asarray(keras_generator(z, training=False))  # (8, 28, 28, 1)
images_scratch = scratch_generator.forward(z, training=False)
difference = np.abs(images_scratch - images_keras)
print(f"max |scratch - Keras| over 8 images: {difference.max():.1e}")

fig, axes = plt.subplots(3, 8, figsize=(10, 4))
for column in range(8):
    axes[0, column].imshow(images_keras[column, :, :, 0], cmap="gray", vmin=-1, vmax=1)
    axes[1, column].imshow(images_scratch[column, :, :, 0], cmap="gray", vmin=-1, vmax=1)
    axes[2, column].imshow(difference[column, :, :, 0], cmap="magma")
for row, label in enumerate(["Keras", "scratch", "|difference|"]):
    axes[row, 0].set_ylabel(label)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"untrained generator, float64: largest difference {difference.max():.1e}")
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "generator_both.png", dpi=80)
assert difference.max() < 1e-12

# %% [markdown]
# ## Layer by layer
#
# `keras_impl.compare.compare_models` runs the Keras model once forward and
# backward under `tf.GradientTape`, keeping every layer's input, output and
# gradients. Then each scratch layer is run *on its own*: fed the Keras
# layer's input for the forward pass, and the Keras gradient at the layer's
# output for the backward pass. Each row therefore measures one layer alone,
# and an error shows only in the row of the layer that makes it. The columns
# are the max abs differences of the output, the input gradient and the
# weight gradients; a row passes when each is at most $10^{-10}$ times the
# size of the Keras tensor (float64).
#
# Training mode is the harder case: batch normalisation then uses batch
# statistics and its backward pass goes through them.

# %%
z = rng.standard_normal((8, 100))
rows_generator = compare_models(keras_generator, scratch_generator, z, training=True)
print("generator, training mode")
print(format_table(rows_generator))


mnist = find_mnist(mnist_directory())  # see the first cell
x_real = scale_images(mnist.images[:8], dtype="float64")  # (8, 28, 28, 1)

rows_discriminator = compare_models(
    keras_discriminator, scratch_discriminator, x_real, training=True
)
print("\ndiscriminator, training mode, 8 MNIST digits")
print(format_table(rows_discriminator))
assert first_failure(rows_generator) is None
assert first_failure(rows_discriminator) is None

# %% [markdown]
# The same numbers as a picture: the relative difference (difference
# divided by the size of the Keras tensor) for each layer and each column,
# on a log scale. Zero is drawn at $10^{-18}$. The dashed line is the
# tolerance.

# %%
def relative(difference: float | None, scale: float | None) -> float:
    if difference is None:
        return np.nan
    return max(difference / scale if scale else difference, 1e-18)


fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, (title, rows) in zip(
    axes, [("generator", rows_generator), ("discriminator", rows_discriminator)], strict=True
):
    positions = np.arange(len(rows))
    columns = {
        "output": [relative(r.forward_diff, r.forward_scale) for r in rows],
        "input gradient": [relative(r.grad_input_diff, r.grad_input_scale) for r in rows],
        "weight gradients": [relative(r.grad_params_diff, r.grad_params_scale) for r in rows],
    }
    for offset, (label, values) in zip((-0.25, 0, 0.25), columns.items(), strict=True):
        ax.bar(positions + offset, values, width=0.25, label=label)
    ax.axhline(1e-10, color="k", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_ylim(1e-18, 1e-8)
    ax.set_xticks(positions, [r.name for r in rows], rotation=60, fontsize=8)
    ax.set_title(title)
axes[0].set_ylabel("max |scratch - Keras| / max |Keras|")
axes[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "layer_differences.png", dpi=80)

# %% [markdown]
# ## When something is wrong
#
# Suppose the scratch discriminator's batch normalisation used PyTorch's
# default $\epsilon = 10^{-5}$ instead of Keras's $10^{-3}$, an easy slip when
# porting a model. The table points straight at the layer.

# %%
bn_layer = scratch_discriminator.get_layer("d_bn2")
bn_layer.epsilon = 1e-5
rows_broken = compare_models(keras_discriminator, scratch_discriminator, x_real, training=True)
print(format_table(rows_broken))
failure = first_failure(rows_broken)
assert failure is not None and failure.name == "d_bn2"
bn_layer.epsilon = 1e-3  # restore Keras's default

# %% [markdown]
# Only the `d_bn2` row fails. The rows after it pass, because each layer is
# fed Keras's own input, so the error does not spread down the table.
#
# ## Whole training steps
#
# The last check is the whole training step of lesson 1, as
# `scratch.gan.GAN.train_step` and `keras_impl.gan.KerasGAN.train_step` write
# it: one discriminator update on a real and a fake batch, then one generator
# update through the updated discriminator, both with Adam. Both GANs are
# built in float64, the Keras weights are copied into the scratch GAN, and
# both get the same real images and the same noise at every step.
#
# `KerasGAN` reports running means of its metrics (as `fit` does), so its
# trackers are reset before each step to read that step's own losses.

# %%
keras_gan = build_keras_gan("dcgan", dtype="float64", seed=0)
scratch_gan = build_gan("dcgan", dtype="float64")
copy_keras_model_to_scratch(keras_gan.generator, scratch_gan.generator)
copy_keras_model_to_scratch(keras_gan.discriminator, scratch_gan.discriminator)

images = scale_images(mnist.images[:96], dtype="float64")
print(f"{'step':>4} {'d_loss Keras':>13} {'d_loss scratch':>15} {'g_loss Keras':>13}"
      f" {'g_loss scratch':>15} {'max weight diff':>16}")
worst_weight_difference = 0.0
for step in range(3):
    x_batch = images[32 * step : 32 * (step + 1)]
    z_batch = rng.standard_normal((32, 100))

    for tracker in keras_gan.metrics:
        tracker.reset_state()
    keras_metrics = keras_gan.train_step((tf.constant(x_batch), tf.constant(z_batch)))
    scratch_metrics = scratch_gan.train_step(x_batch, z_batch)

    weight_difference = 0.0
    for keras_model, scratch_model in [
        (keras_gan.generator, scratch_gan.generator),
        (keras_gan.discriminator, scratch_gan.discriminator),
    ]:
        keras_weights = keras_weights_by_key(keras_model)
        scratch_weights = {**scratch_model.params, **scratch_model.state}
        for key, value in keras_weights.items():
            relative_difference = np.max(np.abs(scratch_weights[key] - value))
            relative_difference /= np.max(np.abs(value))
            weight_difference = max(weight_difference, float(relative_difference))
    worst_weight_difference = max(worst_weight_difference, weight_difference)
    d_losses = f"{float(keras_metrics['d_loss']):>13.10f} {scratch_metrics['d_loss']:>15.10f}"
    g_losses = f"{float(keras_metrics['g_loss']):>13.10f} {scratch_metrics['g_loss']:>15.10f}"
    print(f"{step + 1:>4} {d_losses} {g_losses} {weight_difference:>16.1e}")
    assert abs(float(keras_metrics["d_loss"]) - scratch_metrics["d_loss"]) < 1e-10
    assert abs(float(keras_metrics["g_loss"]) - scratch_metrics["g_loss"]) < 1e-10
assert worst_weight_difference < 1e-10

# %% [markdown]
# After three full steps, every weight of both networks (kernels, biases,
# $\gamma$, $\beta$ and the moving statistics) still agrees to better than
# $10^{-12}$ relative, far inside the tolerance. The remaining differences
# are float64 rounding: the two implementations add the same numbers in a
# different order (im2col and a matrix product in NumPy, TensorFlow's own
# convolution kernels in Keras).
#
# The test suite checks the same things with more shapes, both dtypes and
# more steps; `mnistgen compare` prints the layer table from the command
# line.
#
# ## Exercises
#
# 1. Run `mnistgen compare --network discriminator --training` and then with
#    `--dtype float32`. How large are the float32 differences relative to the
#    tensors, and why is $10^{-5}$ a sensible tolerance there?
# 2. Set the scratch `d_lrelu1` layer's `negative_slope` to 0.3 and rerun the
#    discriminator table. Which columns of which rows fail, and why does the
#    weight-gradient column of `d_conv1` still pass?
# 3. Count the parameters of `g_project`, `g_bn0` and `g_up1` by hand and
#    compare with the summary. Why do the convolutions followed by batch
#    normalisation have no bias?
# 4. Build the `tf-tutorial` preset and compare its discriminator in
#    training mode. Its Dropout layers draw random masks in Keras; read
#    `keras_impl/compare.py` to see how the scratch layer is given the same
#    mask.
