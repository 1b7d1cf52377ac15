"""The ``mnistgen`` command line.

Subcommands:

- ``compare``: build one network of a preset in Keras and in scratch, and
  copy the Keras weights into the scratch model. Then run both on the same
  random batch and print, layer by layer, the max abs differences of
  outputs, input gradients and weight gradients (see ``keras_impl.compare``).

- ``train`` and ``sample``: train the GAN on MNIST with either backend, and
  save a grid of digits from a checkpoint (see ``keras_impl.cli_train``).

- ``exercises``: make a student copy with the solutions stripped, and grade
  one (see ``keras_impl.exercises`` and ``lessons/TEACHING.md``).

Each subcommand is added by a ``_add_<name>_parser(subparsers)`` function
that sets ``handler`` to the function that runs it, so a new subcommand is
one more such function listed in ``build_parser``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from keras_impl.cli_train import add_sample_parser, add_train_parser
from keras_impl.exercises.command import add_exercises_parser, run_exercises
from scratch.architectures import DEFAULT_NOISE_DIM, PRESETS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def _add_compare_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare a scratch network with its Keras twin, layer by layer",
        description=(
            "Build one network in Keras and in scratch from the same preset, copy the "
            "Keras weights into the scratch model, run both on one random batch and print "
            "the max abs difference of each layer's output, input gradient and weight "
            "gradients. Exits with status 1 when a layer is out of tolerance."
        ),
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="dcgan", help="architecture preset"
    )
    parser.add_argument(
        "--network",
        choices=("generator", "discriminator"),
        default="generator",
        help="which network to compare",
    )
    parser.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="floating type"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=4, help="images (or noise vectors) per batch"
    )
    parser.add_argument(
        "--noise-dim", type=_positive_int, default=DEFAULT_NOISE_DIM, help="size of z"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the weights, the batch and dL/dy"
    )
    parser.add_argument(
        "--training",
        action="store_true",
        help="run in training mode (batch statistics in batch normalization, dropout on)",
    )
    parser.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Print the layer-by-layer comparison table; return 0 if every layer passes, else 1."""
    import numpy as np

    from keras_impl import models as keras_models
    from keras_impl.compare import compare_models, first_failure, format_table
    from scratch import models as scratch_models

    if args.network == "generator":
        keras_model = keras_models.build_generator(
            args.preset, args.noise_dim, args.dtype, seed=args.seed
        )
        scratch_model = scratch_models.build_generator(
            args.preset, args.noise_dim, args.dtype, seed=args.seed
        )
    else:
        keras_model = keras_models.build_discriminator(args.preset, args.dtype, seed=args.seed)
        scratch_model = scratch_models.build_discriminator(args.preset, args.dtype, seed=args.seed)

    rng = np.random.default_rng(args.seed)
    input_shape = (args.batch_size, *keras_model.inputs[0].shape[1:])
    if args.network == "generator":
        x = rng.standard_normal(input_shape)
    else:
        x = rng.uniform(-1.0, 1.0, size=input_shape)
    output_shape = (args.batch_size, *keras_model.outputs[0].shape[1:])
    grad_output = rng.standard_normal(output_shape).astype(args.dtype)

    rows = compare_models(
        keras_model,
        scratch_model,
        x.astype(args.dtype),
        grad_output,
        training=args.training,
        copy_weights=True,
    )
    mode = "training" if args.training else "inference"
    print(
        f"{args.network} of preset {args.preset!r}, {args.dtype}, batch {args.batch_size}, "
        f"{mode} mode"
    )
    print(format_table(rows))
    return 0 if first_failure(rows) is None else 1


def build_parser() -> argparse.ArgumentParser:
    """Return the ``mnistgen`` parser with one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="mnistgen",
        description="A DCGAN on MNIST, written in NumPy and in Keras 3.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages to stderr"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_compare_parser(subparsers)
    add_train_parser(subparsers)
    add_sample_parser(subparsers)
    exercises_parser = add_exercises_parser(subparsers)
    exercises_parser.set_defaults(handler=run_exercises)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand and return its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
