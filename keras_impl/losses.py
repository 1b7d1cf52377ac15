"""The GAN losses in Keras, twins of ``scratch.losses``, for the Keras training step.

Each function takes D's logits (D ends with ``Dense(1)``, no sigmoid) and
returns a scalar tensor that ``tf.GradientTape`` can differentiate. The math
is stated in ``scratch.losses.discriminator_loss`` and
``scratch.losses.generator_loss``:

    discriminator_loss = BCE(1, real_logits) + BCE(0, fake_logits)
    generator_loss, "non-saturating" = BCE(1, fake_logits)
    generator_loss, "minimax"        = -BCE(0, fake_logits)

with ``BCE = keras.losses.BinaryCrossentropy(from_logits=True)``, the mean
over the batch.

The loss object is built with the logits' dtype. A Keras loss otherwise
computes in ``keras.backend.floatx()`` (float32), so a float64 model would
have its logits cast to float32 without notice.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from scratch.losses import GENERATOR_LOSS_FORMS


def _binary_crossentropy_from_logits(dtype: str) -> keras.losses.BinaryCrossentropy:
    return keras.losses.BinaryCrossentropy(from_logits=True, dtype=dtype)


def _check_float_logits(function: str, argument: str, logits: tf.Tensor) -> str:
    dtype = keras.backend.standardize_dtype(logits.dtype)
    if dtype not in ("float32", "float64"):
        raise TypeError(
            f"{function}: {argument} dtype {dtype} is not supported; "
            "expected float32 or float64 logits."
        )
    return dtype


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Return ``BCE(1, real_logits) + BCE(0, fake_logits)`` as a scalar tensor.

    Minimising it is D maximising ``E[log D(x)] + E[log(1 - D(G(z)))]``.

    Raises:
        TypeError: if the logits are not float32 or float64, or their dtypes differ.
    """
    real_dtype = _check_float_logits("discriminator_loss", "real_logits", real_logits)
    fake_dtype = _check_float_logits("discriminator_loss", "fake_logits", fake_logits)
    if real_dtype != fake_dtype:
        raise TypeError(
            f"discriminator_loss: real_logits dtype {real_dtype} does not match "
            f"fake_logits dtype {fake_dtype}."
        )
    binary_crossentropy = _binary_crossentropy_from_logits(real_dtype)

    real_loss = binary_crossentropy(ops.ones_like(real_logits), real_logits)
    fake_loss = binary_crossentropy(ops.zeros_like(fake_logits), fake_logits)
    return real_loss + fake_loss


def generator_loss(fake_logits: tf.Tensor, form: str = "non-saturating") -> tf.Tensor:
    """Return G's loss on D's logits for generated images, as a scalar tensor.

    ``"non-saturating"`` (default): ``BCE(1, fake_logits) = -E[log D(G(z))]``.
    ``"minimax"``: ``-BCE(0, fake_logits) = E[log(1 - D(G(z)))]``, whose
    gradient vanishes when D confidently rejects the fakes.

    Raises:
        ValueError: if ``form`` is not one of the two.
        TypeError: if the logits are not float32 or float64.
    """
    if form not in GENERATOR_LOSS_FORMS:
        raise ValueError(
            f"generator_loss: unknown form {form!r}; expected one of {list(GENERATOR_LOSS_FORMS)}."
        )
    dtype = _check_float_logits("generator_loss", "fake_logits", fake_logits)
    binary_crossentropy = _binary_crossentropy_from_logits(dtype)

    if form == "non-saturating":
        return binary_crossentropy(ops.ones_like(fake_logits), fake_logits)
    return -binary_crossentropy(ops.zeros_like(fake_logits), fake_logits)
