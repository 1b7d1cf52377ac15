"""Make the pictures of lesson 10 from real training runs of this project.

Run from the project root. On a 2-core machine that other jobs kept busy
(load average about 5), the three runs took 4.5, 1 and 0.7 minutes:

    python lessons/images/make_lesson10_images.py --data ../shared/data/mnist

Three runs, all with the Keras backend, the ``dcgan`` preset, batch size 64,
seed 0 and float32, on the 10,000-image MNIST test split:

- ``baseline``: ``mnistgen train`` with its defaults (non-saturating
  generator loss, Adam with learning rate 2e-4 and beta_1 = 0.5 for both
  networks) for 10 epochs, through ``keras_impl.training.train``.
- ``minimax``: the same for 3 epochs with ``--loss minimax``, the
  generator loss ``log(1 - D(G(z)))`` of the original value function.
- ``collapse``: 3 epochs on a fixed subset of 5,000 of those images, with
  the generator's learning rate 10 times the discriminator's (2e-3 against
  2e-4) and beta_1 = 0.9 for both. The
  ``mnistgen train`` options set one learning rate for both networks, so
  this run builds the same ``StepMetricsGAN`` the Keras backend uses and
  runs ``fit`` on the same schedule of images and noise
  (``keras_impl.schedule``).

Each run writes ``samples/epoch_NNN.png`` (64 digits from the same fixed
noise after every epoch) and ``metrics.csv`` (per-step losses and D's mean
outputs) under ``--work``. A run whose last grid already exists is not run
again. The script then writes the PNG figures and ``lesson10_runs.json``
(settings, training time, the machine's load and the last step's metrics)
into this folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from keras_impl.outputs import (  # noqa: E402
    CSV_COLUMNS,
    GRID_PADDING,
    GRID_ZOOM,
    METRIC_NAMES,
    moving_average,
    read_metrics,
    save_grid,
)
from keras_impl.schedule import (  # noqa: E402
    SAMPLES_DIR,
    TrainConfig,
    epoch_batches,
    fixed_noise,
)
from scratch.architectures import OptimizerSpec  # noqa: E402
from scratch.data import load_images, scale_images  # noqa: E402

logger = logging.getLogger(__name__)

IMAGES_DIR = Path(__file__).resolve().parent
SMOOTHING_WINDOW = 31
COMMON = {"backend": "keras", "preset": "dcgan", "batch_size": 64, "seed": 0, "quiet": True}
RUNS = {
    "baseline": {"epochs": 10, "generator_loss": "non-saturating"},
    "minimax": {"epochs": 3, "generator_loss": "minimax"},
    "collapse": {
        "epochs": 3,
        "limit": 5000,
        "generator_loss": "non-saturating",
        "d_optimizer": {"learning_rate": 2e-4, "beta_1": 0.9},
        "g_optimizer": {"learning_rate": 2e-3, "beta_1": 0.9},
    },
}


# ---------------------------------------------------------------------- #
# Runs
# ---------------------------------------------------------------------- #
def last_grid(out: Path, epochs: int) -> Path:
    return out / SAMPLES_DIR / f"epoch_{epochs:03d}.png"


def run_with_cli_code(name: str, settings: dict, data: Path, out: Path) -> float:
    """Train through ``keras_impl.training.train``, the code behind ``mnistgen train``."""
    from keras_impl.training import train

    config = TrainConfig(
        out=out,
        data=data,
        epochs=settings["epochs"],
        generator_loss=settings["generator_loss"],
        **COMMON,
    )
    result = train(config)
    logger.info("%s: %s", name, result.message)
    return result.seconds


def run_with_two_optimizers(name: str, settings: dict, data: Path, out: Path) -> float:
    """Train a ``StepMetricsGAN`` whose two Adam optimisers have different settings."""
    import keras

    from keras_impl.data import load_training_images
    from keras_impl.keras_backend import StepMetricsGAN
    from keras_impl.models import build_discriminator, build_generator, build_optimizer

    config = TrainConfig(
        out=out,
        data=data,
        epochs=settings["epochs"],
        limit=settings.get("limit"),
        generator_loss=settings["generator_loss"],
        **COMMON,
    )
    images = load_training_images(data, limit=config.limit, dtype=config.dtype)
    gan = StepMetricsGAN(
        build_generator(config.preset, config.noise_dim, config.dtype, config.seed),
        build_discriminator(config.preset, config.dtype, config.seed + 1000),
        config.noise_dim,
        config.generator_loss,
        seed=config.seed,
    )
    gan.compile(
        d_optimizer=build_optimizer(OptimizerSpec(**settings["d_optimizer"]), "d_optimizer"),
        g_optimizer=build_optimizer(OptimizerSpec(**settings["g_optimizer"]), "g_optimizer"),
    )
    grid_noise = fixed_noise(config.seed, 64, config.noise_dim, config.dtype)
    steps_per_epoch = images.x.shape[0] // config.batch_size
    rows: list[list] = []

    class CollectMetrics(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            step = len(rows) + 1
            epoch = (step - 1) // steps_per_epoch + 1
            rows.append([epoch, step, *(float(logs[metric]) for metric in METRIC_NAMES)])

    started = time.perf_counter()
    for epoch in range(config.epochs):
        x_epoch, z_epoch = epoch_batches(images.x, config, epoch)
        gan.fit(
            x_epoch, z_epoch, batch_size=config.batch_size, shuffle=False, verbose=0,
            callbacks=[CollectMetrics()],
        )
        save_grid(np.asarray(gan.generate(grid_noise)), last_grid(out, epoch + 1), 8, 8)
    seconds = time.perf_counter() - started

    with (out / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    logger.info("%s: trained %d epochs in %.0f s", name, config.epochs, seconds)
    return seconds


# ---------------------------------------------------------------------- #
# Reading the saved grids back
# ---------------------------------------------------------------------- #
def grid_cells(path: Path) -> np.ndarray:
    """Return the digits of a saved 8 x 8 grid as values in [-1, 1], shape (64, 28, 28).

    The grid is ``255 - pixel`` (ink dark), enlarged ``GRID_ZOOM`` times, with
    ``GRID_PADDING`` pixels between cells (``keras_impl.outputs.image_grid``).
    """
    picture = np.asarray(Image.open(path).convert("L"))[::GRID_ZOOM, ::GRID_ZOOM]
    cell = 28 + GRID_PADDING
    digits = []
    for row in range(8):
        for col in range(8):
            top, left = GRID_PADDING + row * cell, GRID_PADDING + col * cell
            ink = 255 - picture[top : top + 28, left : left + 28].astype(np.float64)
            digits.append(ink / 127.5 - 1.0)
    return np.stack(digits)


def spread(digits: np.ndarray) -> float:
    """Mean over pixels of the standard deviation across the digits: 0 when all are equal."""
    return float(np.mean(np.std(digits, axis=0)))


# ---------------------------------------------------------------------- #
# Figures
# ---------------------------------------------------------------------- #
def show_grid(ax: plt.Axes, path: Path, cells: int, title: str) -> None:
    """Draw the top-left ``cells x cells`` digits of a saved grid."""
    picture = np.asarray(Image.open(path).convert("L"))
    size = (GRID_PADDING + cells * (28 + GRID_PADDING)) * GRID_ZOOM
    ax.imshow(picture[:size, :size], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def smoothed(rows: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    steps = np.array([row["step"] for row in rows])
    values = moving_average([row[name] for row in rows], SMOOTHING_WINDOW)
    return steps, values


def figure_samples_over_time(work: Path) -> Path:
    epochs = [1, 2, 5, 10]
    fig, axes = plt.subplots(1, len(epochs), figsize=(8, 2.3))
    steps_per_epoch = 10_000 // 64
    for ax, epoch in zip(axes, epochs, strict=True):
        title = f"epoch {epoch} (step {epoch * steps_per_epoch})"
        show_grid(ax, last_grid(work / "baseline", epoch), 5, title)
    fig.tight_layout()
    path = IMAGES_DIR / "baseline_samples.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def figure_metrics(work: Path) -> Path:
    rows = read_metrics(work / "baseline" / "metrics.csv")
    fig, (ax_loss, ax_prob) = plt.subplots(1, 2, figsize=(9, 3))
    for name, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
        ax_loss.plot(*smoothed(rows, name), label=label)
    for name, label in (("d_real", "mean D(x)"), ("d_fake", "mean D(G(z))")):
        ax_prob.plot(*smoothed(rows, name), label=label)
    ax_prob.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_prob.set_ylim(0, 1)
    for ax in (ax_loss, ax_prob):
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    ax_loss.set_title(f"losses (mean over {SMOOTHING_WINDOW} steps)", fontsize=9)
    ax_prob.set_title("discriminator outputs", fontsize=9)
    fig.tight_layout()
    path = IMAGES_DIR / "baseline_metrics.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def figure_d_too_strong(work: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.9), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    show_grid(axes[0], last_grid(work / "baseline", 3), 5, "non-saturating, epoch 3")
    show_grid(axes[1], last_grid(work / "minimax", 3), 5, "minimax, epoch 3")
    for run, label in (("baseline", "non-saturating"), ("minimax", "minimax")):
        rows = [row for row in read_metrics(work / run / "metrics.csv") if row["epoch"] <= 3]
        axes[2].plot(*smoothed(rows, "d_fake"), label=f"mean D(G(z)), {label}")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("step")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path = IMAGES_DIR / "failure_d_too_strong.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def figure_collapse(work: Path, real_spread: float) -> Path:
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.7), gridspec_kw={"width_ratios": [1, 1, 1, 1.5]})
    for ax, epoch in zip(axes[:3], (1, 2, 3), strict=True):
        show_grid(ax, last_grid(work / "collapse", epoch), 5, f"collapse run, epoch {epoch}")
    for run in ("baseline", "minimax", "collapse"):
        epochs = [epoch for epoch in range(1, 4) if last_grid(work / run, epoch).exists()]
        values = [spread(grid_cells(last_grid(work / run, epoch))) for epoch in epochs]
        axes[3].plot(epochs, values, "o-", label=run)
    axes[3].axhline(real_spread, color="k", ls="--", lw=1, label="64 real digits")
    axes[3].set_xticks([1, 2, 3])
    axes[3].set_xlabel("epoch")
    axes[3].set_title("spread across the 64 samples", fontsize=9)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    path = IMAGES_DIR / "failure_collapse.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="MNIST file or directory")
    parser.add_argument(
        "--work", type=Path, default=Path("runs") / "lesson10_images",
        help="directory for the training runs (default: runs/lesson10_images)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    summary = {"data": str(args.data), "cpu_count": os.cpu_count(), "runs": {}}
    for name, settings in RUNS.items():
        out = args.work / name
        seconds = None
        final_grid = last_grid(out, settings["epochs"])
        if final_grid.exists():
            logger.info("%s: %s exists; not training again", name, final_grid)
        elif "g_optimizer" in settings:
            seconds = run_with_two_optimizers(name, settings, args.data, out)
        else:
            seconds = run_with_cli_code(name, settings, args.data, out)
        rows = read_metrics(out / "metrics.csv")
        summary["runs"][name] = {
            **settings,
            **COMMON,
            "train_seconds": None if seconds is None else round(seconds),
            # Other jobs on the machine slow a run down; this records how busy it was.
            "load_average_after": None if seconds is None else round(os.getloadavg()[0], 1),
            "steps": len(rows),
            "last_step_metrics": {metric: round(rows[-1][metric], 4) for metric in METRIC_NAMES},
        }

    real = scale_images(load_images(args.data).images[:64], dtype="float64")[..., 0]
    real_spread = spread(real)
    summary["real_digits_spread"] = round(real_spread, 4)
    summary["spread_after_epoch_3"] = {
        name: round(spread(grid_cells(last_grid(args.work / name, 3))), 4) for name in RUNS
    }

    paths = [
        figure_samples_over_time(args.work),
        figure_metrics(args.work),
        figure_d_too_strong(args.work),
        figure_collapse(args.work, real_spread),
    ]
    with (IMAGES_DIR / "lesson10_runs.json").open("w") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    for path in paths:
        logger.info("wrote %s (%d KB)", path, path.stat().st_size // 1024)


if __name__ == "__main__":
    main()
