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
# # Lesson 10: training on MNIST
#
# Everything is in place: the two networks (lesson 9), the losses (lesson
# 7), Adam (lesson 8) and the training step that alternates them (lesson 1).
# This lesson trains the DCGAN on MNIST. First a short run that you can
# watch live, with the NumPy implementation. Then, because a useful run
# takes minutes rather than seconds, pictures from longer runs made with the
# project's own training code: how the samples improve, how to read the loss
# curves, and two ways training goes wrong.
#
# Time: about 45 minutes. Run time: about 30 seconds.

# %%
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from keras_impl.checkpoints import load_checkpoint, set_scratch_weights
from keras_impl.outputs import image_grid, read_metrics
from keras_impl.schedule import TrainConfig, fixed_noise
from keras_impl.training import train
from scratch.models import build_generator

OUTPUT_DIR = Path("runs") / "lessons" / "10_training_on_mnist"
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

try:
    LESSON_DIR = Path(__file__).resolve().parent
except NameError:  # Jupyter runs a notebook from its own folder and defines no __file__
    LESSON_DIR = Path.cwd()
IMAGES_DIR = LESSON_DIR / "images"


def mnist_directory() -> Path | None:
    """Return the shared MNIST folder next to the project, or None when it is absent."""
    candidate = LESSON_DIR.parent.parent / "shared" / "data" / "mnist"
    return candidate if candidate.is_dir() else None


# %% [markdown]
# ## How a run is organised
#
# `mnistgen train` (the function `keras_impl.training.train`) runs the
# training step of lesson 9 over the data, epoch after epoch. Both backends,
# Keras and NumPy ("scratch"), follow the same schedule
# (`keras_impl/schedule.py`): each epoch visits the images in a fresh random
# order in batches of `batch_size`, the noise of step $s$ is drawn from a
# generator seeded with $(\text{seed}, s)$, and after every epoch the
# generator draws 64 digits from the *same* fixed noise, so the grids of
# successive epochs can be compared digit by digit. Every step's losses and
# the discriminator's mean outputs go to `metrics.csv`.
#
# ## A live run
#
# Two epochs on 512 images with batches of 32, that is 32 training steps,
# with the NumPy backend: every forward and backward pass is the code of
# lessons 2 to 8. On two CPU cores this takes 10 to 20 seconds.

# %%
live_dir = OUTPUT_DIR / "live_run"
shutil.rmtree(live_dir, ignore_errors=True)  # a fresh run each time the lesson runs
config = TrainConfig(
    out=live_dir,
    backend="scratch",
    epochs=2,
    batch_size=32,
    limit=512,
    data=mnist_directory(),
    quiet=True,
)
result = train(config)
print(result.message, f"({result.seconds:.0f} s)")
print({name: round(value, 3) for name, value in result.last_metrics.items()})

rows = read_metrics(live_dir / "metrics.csv")
assert len(rows) == 32
assert all(np.isfinite(row[name]) for row in rows for name in ("d_loss", "g_loss"))

# %% [markdown]
# The run saved a grid of 64 digits after each epoch, generated in
# inference mode, and a checkpoint. Let us also rebuild the generator from
# the checkpoint and draw the same 64 digits in training mode, with the
# statistics of the batch in batch normalisation.

# %%
checkpoint = load_checkpoint(live_dir / "checkpoint.npz")
generator = build_generator(config.preset, config.noise_dim, config.dtype)
set_scratch_weights(generator, checkpoint.weights["generator"], "generator")
grid_noise = fixed_noise(config.seed, 64, config.noise_dim, config.dtype)
samples_inference = generator.forward(grid_noise, training=False)  # (64, 28, 28, 1)
samples_training = generator.forward(grid_noise, training=True)
print(f"pixel std, inference mode: {samples_inference.std():.3f}")
print(f"pixel std, training mode:  {samples_training.std():.3f}")
assert samples_inference.std() < samples_training.std()

fig, axes = plt.subplots(1, 4, figsize=(13, 3), gridspec_kw={"width_ratios": [1, 1, 1.3, 1.3]})
for ax, images, title in (
    (axes[0], samples_inference, "inference mode (as saved)"),
    (axes[1], samples_training, "training mode"),
):
    ax.imshow(image_grid(images, 8, 8), cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"after step {len(rows)}, {title}", fontsize=9)
    ax.axis("off")
steps = [row["step"] for row in rows]
axes[2].plot(steps, [row["d_loss"] for row in rows], label="D loss")
axes[2].plot(steps, [row["g_loss"] for row in rows], label="G loss")
axes[2].axhline(np.log(4), color="grey", ls=":", lw=1, label="log 4")
axes[3].plot(steps, [row["d_real"] for row in rows], label="mean D(x)")
axes[3].plot(steps, [row["d_fake"] for row in rows], label="mean D(G(z))")
axes[3].set_ylim(0, 1)
for ax in axes[2:]:
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUTPUT_DIR / "live_run.png", dpi=80)

# %% [markdown]
# Thirty-two steps are far too few for digits; the samples are still
# textured noise. Two things are already visible, though.
#
# The inference-mode grid is a nearly uniform grey. Batch normalisation's
# moving statistics start at mean 0 and variance 1 and, with momentum 0.99,
# have moved only $1 - 0.99^{32} \approx 28\,\%$ of the way to the real
# statistics after 32 updates (lesson 6). So in inference mode the
# generator normalises its features with the wrong statistics. In training
# mode the same weights give images with far more contrast. Early grids of
# any run look worse than the generator really is for this reason.
#
# The curves tell the usual opening story. At step 1 both networks are
# random, and $D$'s loss is near or above $\log 4 \approx 1.39$, its value
# when $D$ outputs 1/2 for everything (lesson 7). The discriminator learns
# first, because telling noise from digits is easy: $D(x)$ rises towards
# 1, $D$'s loss drops and $G$'s loss rises. The generator then has to catch
# up, which takes far more than 32 steps.
#
# ## Longer runs: how the samples improve
#
# The pictures below come from real runs of this project on the 10,000
# images of the MNIST test split, with the Keras backend (the two backends
# compute the same steps, lesson 9, and the Keras one is faster). The script
# `images/make_lesson10_images.py` made them; its docstring gives the exact
# settings. The baseline run is `mnistgen train` with the default `dcgan`
# preset (non-saturating loss, Adam with learning rate $2 \times 10^{-4}$ and
# $\beta_1 = 0.5$, batch size 64) for 10 epochs, 1,560 steps.
#
# ![Fixed-noise samples after epochs 1, 2, 5 and 10](images/baseline_samples.png)
#
# After one epoch the samples are blurred grey shapes where a digit would
# be, and hardly any is readable. By epoch 2 they are dark strokes on a
# white background, and most strokes are connected. From epoch 5 on, many samples are recognisable
# digits, still with broken strokes and blots, which a longer run or a
# larger model would reduce. Because the noise is fixed, each position in
# the grid is the same $z$ at every epoch. Watch how one $z$ drifts from
# one digit to another as $G$ and $D$ keep changing.
#
# The numbers behind the pictures are in `images/lesson10_runs.json`:

# %%
summary = json.loads((IMAGES_DIR / "lesson10_runs.json").read_text())
for name, run in summary["runs"].items():
    seconds, load = run["train_seconds"], run["load_average_after"]
    timing = f"{seconds} s at load average {load}" if seconds is not None else "time not recorded"
    print(f"{name:>9}: {run['epochs']:>2} epochs, {run['steps']:>4} steps, {timing}")
    print(f"{'':>11}last step: {run['last_step_metrics']}")
print(f"{summary['cpu_count']} CPU cores; the load average counts the jobs that shared them")
for picture in ("baseline_samples", "baseline_metrics", "failure_d_too_strong", "failure_collapse"):
    path = IMAGES_DIR / f"{picture}.png"
    assert path.is_file(), f"missing {path}"
    print(f"{path.name}: {path.stat().st_size // 1024} KB")

# %% [markdown]
# ## Reading the loss curves
#
# ![Losses and D outputs of the baseline run](images/baseline_metrics.png)
#
# GAN losses do not fall steadily the way a classifier's do, because each
# network's loss is measured against an opponent that keeps improving.
# What to look for instead:
#
# - **The opening.** In the first hundred steps $D$ wins easily: $D(x)$
#   goes towards 1, $D(G(z))$ towards 0, $D$'s loss falls far below
#   $\log 4$ and $G$'s loss climbs. The non-saturating loss keeps $G$'s
#   gradient large exactly then (lesson 7), and $G$ recovers.
# - **The balance.** After a few hundred steps the curves flatten. $D$ is
#   right more often than not ($D(x)$ around 0.7, $D(G(z))$ around 0.3) but
#   far from certain. Neither network wins; the game of lesson 1 has no
#   reason to sit at its ideal point $D = 1/2$ with networks of finite size
#   trained by a few steps at a time.
# - **The noise.** Single steps swing widely (each is one batch of 64), so
#   only averages over many steps mean anything.
#
# Flat curves do not mean that the samples stop improving: compare epoch 5
# and epoch 10 above, where the strokes get cleaner while the average
# losses stay almost the same. To judge a GAN,
# look at its samples, or use a measure computed from many samples (such
# as the Fréchet Inception Distance), not its losses.
#
# ## Failure 1: the discriminator becomes too strong
#
# The run `minimax` differs from the baseline in one setting: the
# generator minimises $\log(1 - D(G(z)))$, the term of the original value
# function, instead of the non-saturating $-\log D(G(z))$
# (`mnistgen train --loss minimax`).
#
# ![Samples and mean D(G(z)) for both losses](images/failure_d_too_strong.png)
#
# The opening is the same: $D$ quickly learns to reject the blobs. But now
# $G$'s gradient with respect to $D$'s logit is $-\sigma(l)$, which vanishes
# as $D(G(z)) = \sigma(l)$ goes to 0 (lesson 7). So $G$ learns very slowly,
# $D$ stays ahead, $D(G(z))$ sinks towards 0 and stays there (note the log
# scale), and after 3 epochs the samples are still faint blobs while the
# baseline's are strokes.
#
# The non-saturating loss weakens this failure but does not remove it. A
# shorter exploratory run (5,000 images, not in the pictures) gave the
# discriminator a learning rate 10 times the generator's. There $D(G(z))$
# fell to about 0.01 during the first epoch and the samples lagged behind
# the baseline's, but the generator caught up within 3 epochs.
#
# ## Failure 2: mode collapse
#
# Nothing in a GAN's losses requires the generator to cover the whole data
# distribution, only to fool the current discriminator. If some output fools $D$ well, $G$
# can send *every* $z$ to (nearly) that output. $D$ then learns to reject
# it, $G$ jumps to another single output, and so on. This is **mode
# collapse**; you saw a one-dimensional version in lesson 1, where the
# generator's spread $|a|$ shrank to almost zero for a while.
#
# The DCGAN with batch normalisation resists collapse well. In short
# exploratory runs for this lesson (3 epochs on 5,000 images), every run
# with $\beta_1 = 0.5$ stayed diverse, even with the generator's learning
# rate 10 times the discriminator's or both at $10^{-3}$. The runs that
# degenerated combined large learning rates with Adam's default
# $\beta_1 = 0.9$, a longer momentum memory. The run `collapse` is one of
# them: on 5,000 images, a generator learning rate 10 times the
# discriminator's ($2 \times 10^{-3}$ against $2 \times 10^{-4}$), and
# $\beta_1 = 0.9$ for both networks.
#
# ![The collapse run, epochs 1 to 3, and the spread](images/failure_collapse.png)
#
# After epochs 1 and 2 every sample is a similar grid of dots two pixels
# apart, the stride of the generator's transposed convolutions (lesson 5).
# After epoch 3 the generator sends every $z$ to almost the same, nearly
# blank image, and the discriminator rejects it ($D(G(z))$ about 0.003 at the
# last step, see the numbers above). This is the extreme case, where
# collapse and a broken game come together.
#
# The right panel measures the spread across the 64 fixed-noise samples:
# the standard deviation across samples, averaged over pixels. It is 0
# when all samples are identical, and close to the value of 64 real digits
# for the healthy baseline. The measure is crude. Low-contrast grey blobs
# (the minimax run) also score low, and random noise scores high, so it
# only helps next to the pictures.
#
# Collapse is also fragile to reproduce. A run with the same settings on
# all 10,000 images did not collapse within 3 epochs; it produced digits
# covered in dots. Whether and when a GAN collapses depends on details as
# small as the data order. The usual remedies are the settings this run
# removed: balanced learning rates, a short Adam memory ($\beta_1 = 0.5$)
# and batch normalisation. Other GAN variants add terms to the loss that
# reward diverse samples directly.
#
# ## Exercises
#
# 1. Run `mnistgen train --backend scratch --limit 2000 --epochs 3` and then
#    the same with `--backend keras` and `--out` another folder. Compare the
#    first rows of the two `metrics.csv` files: why do they agree closely at
#    first, and why do they drift apart later in float32 (lesson 9)?
# 2. Train the minimax run yourself with `--loss minimax --epochs 3
#    --limit 5000`, then resume it with `--resume --epochs 6 --loss
#    non-saturating`. Does `mnistgen` allow the change of loss on resume?
#    Read `RESUME_KEYS` in `keras_impl/schedule.py` and explain why.
# 3. Compute the spread measure of the collapse figure for the 64 samples of
#    your own run (`images/make_lesson10_images.py` shows how to read the
#    saved grid back). Construct a generator output that scores like real
#    digits but contains no digits at all.
# 4. In the live run above, replace `backend="scratch"` by
#    `backend="keras"` and time both. Where does the Keras backend spend its
#    first seconds?
