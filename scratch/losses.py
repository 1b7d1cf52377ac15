"""Binary cross-entropy and the two GAN losses built on it, with their gradients.

Keras twin: ``keras.losses.BinaryCrossentropy`` (TensorFlow backend, Keras
3.15). For one entry with label ``z`` the loss is

    from probabilities p:  l = -(z * log(p) + (1 - z) * log(1 - p))
    from logits x:         l = max(x, 0) - x * z + log(1 + exp(-|x|))

The second line is the first with ``p = sigmoid(x)``, rearranged so that
``exp`` never overflows (the form ``tf.nn.sigmoid_cross_entropy_with_logits``
uses). Label smoothing first replaces ``z`` by
``z * (1 - label_smoothing) + 0.5 * label_smoothing``.

Reduction. Keras takes the mean of ``l`` over ``axis`` (the feature axis),
which leaves one loss per sample, then reduces those per-sample losses:
``"sum_over_batch_size"`` takes their mean, ``"sum"`` their sum. With ``K``
entries along ``axis`` and ``M`` samples the loss is therefore

    sum_over_batch_size:  L = sum(l) / (K * M)      (the mean of every entry)
    sum:                  L = sum(l) / K

A 1-D ``y_pred`` of shape ``(n,)`` is one sample of ``K = n`` entries, so
both reductions return the mean there, as Keras does.

Gradients, entry by entry (``l'`` is dl/d(input)):

    from logits:         l' = sigmoid(x) - z
    from probabilities:  l' = -z / p + (1 - z) / (1 - p)    inside the clip range

and ``dL/d(input) = l' / (K * M)`` or ``l' / K``.

Clipping. From probabilities, Keras first clips ``p`` to
``[epsilon, 1 - epsilon]`` with the backend epsilon 1e-7, so a probability
of exactly 0 or 1 costs at most ``-log(1e-7) ~ 16.1`` instead of infinity.
A clipped entry gets a zero gradient, as ``tf.clip_by_value`` gives it.

NOTE: with the TensorFlow backend, Keras does not always take the
probability path when ``from_logits=False``. A tensor made by
``keras.activations.sigmoid`` (or a ``Dense(..., activation="sigmoid")``
layer) carries its logits in a ``_keras_logits`` attribute, and a graph
tensor made by a ``Sigmoid`` op carries them as the op's input. In both cases
Keras computes the loss from those logits, with no clipping. This module
cannot see such attributes. Its probability version matches Keras for plain
probability arrays, and for sigmoid outputs the logit version is the one
that matches.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scratch.layers.base import FLOAT_DTYPES

# keras.backend.epsilon(), the clip margin for probabilities.
EPSILON = 1e-7

REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum")

GENERATOR_LOSS_FORMS = ("non-saturating", "minimax")


# ---------------------------------------------------------------------- #
# Element-wise cross-entropy and its derivative
# ---------------------------------------------------------------------- #
def sigmoid_cross_entropy_with_logits(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Return ``-(z log sigmoid(x) + (1 - z) log(1 - sigmoid(x)))`` entry by entry.

    Written as ``max(x, 0) - x * z + log1p(exp(-|x|))``, which cannot
    overflow for any finite ``x`` because the argument of ``exp`` is never positive.
    """
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def sigmoid_cross_entropy_with_logits_gradient(
    labels: np.ndarray, logits: np.ndarray
) -> np.ndarray:
    """Return ``sigmoid(x) - z``, the derivative of the entry-wise loss w.r.t. ``x``.

    For ``x >= 0`` it is computed as ``(1 - z) - exp(-x) / (1 + exp(-x))``,
    because ``1 - sigmoid(x)`` is then known to full relative precision. So
    ``x = 50, z = 1`` gives ``-1.9e-22``, not 0, as TensorFlow's gradient does.
    """
    # EXERCISE bce_logits_gradient: sigmoid(logits) - labels, never taking exp of a large positive.
    # BEGIN SOLUTION
    exp_minus_abs = np.exp(-np.abs(logits))
    sigmoid_of_minus_abs = exp_minus_abs / (1 + exp_minus_abs)  # sigmoid(-|x|)
    return np.where(
        logits >= 0,
        (1 - labels) - sigmoid_of_minus_abs,
        sigmoid_of_minus_abs - labels,
    )
    # END SOLUTION


def _clip_bounds(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    # Keras computes 1 - epsilon as a Python float, then casts it to the dtype.
    return np.asarray(EPSILON, dtype=dtype), np.asarray(1.0 - EPSILON, dtype=dtype)


def cross_entropy_from_probabilities(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Return ``-(z log p + (1 - z) log(1 - p))`` with ``p`` clipped to ``[1e-7, 1 - 1e-7]``."""
    lower, upper = _clip_bounds(probabilities.dtype)
    p = np.clip(probabilities, lower, upper)

    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def cross_entropy_from_probabilities_gradient(
    labels: np.ndarray, probabilities: np.ndarray
) -> np.ndarray:
    """Return ``-z / p + (1 - z) / (1 - p)`` inside the clip range and 0 outside it.

    An entry exactly on a clip bound keeps its gradient, as in
    ``tf.clip_by_value``. Only entries strictly outside get 0.
    """
    lower, upper = _clip_bounds(probabilities.dtype)
    inside = (probabilities >= lower) & (probabilities <= upper)
    p = np.clip(probabilities, lower, upper)

    dp = -labels / p + (1 - labels) / (1 - p)
    return np.where(inside, dp, 0).astype(probabilities.dtype, copy=False)


# ---------------------------------------------------------------------- #
# The loss class
# ---------------------------------------------------------------------- #
class BinaryCrossentropy:
    """Binary cross-entropy, reduced to one number, with its gradient.

    ``loss(y_true, y_pred)`` returns the loss as a float and
    ``loss.gradient(y_true, y_pred)`` returns dL/d(y_pred), an array of
    ``y_pred``'s shape and dtype. The formulas are in the module docstring.

    Args:
        from_logits: whether ``y_pred`` contains logits (any real number) rather
            than probabilities (default False, as in Keras).
        label_smoothing: in ``[0, 1]``; labels become
            ``z * (1 - label_smoothing) + 0.5 * label_smoothing`` (default 0.0).
        axis: the feature axis the per-sample mean runs over (default -1).
        reduction: ``"sum_over_batch_size"`` (default), or ``"mean"`` and
            ``"mean_with_sample_weight"``, which are the same without sample
            weights, or ``"sum"``.
        name: as in Keras (default ``"binary_crossentropy"``).

    Input shapes: ``y_pred`` any non-empty shape; ``y_true`` the same shape,
    or one that differs only by a trailing axis of size 1, which Keras
    squeezes or adds. Labels may be bool, int or float and are cast to
    ``y_pred``'s dtype, as Keras does.

    Dtype: the loss is computed in ``y_pred``'s dtype (float32 or float64).
    Keras computes in the loss's ``dtype`` argument (``keras.backend.floatx()``,
    float32, unless set), so the Keras twin of a float64 computation is
    ``keras.losses.BinaryCrossentropy(..., dtype="float64")``.

    NOTE: ``sample_weight`` and the reductions ``None`` and ``"none"`` (one
    loss per sample) are not implemented, because ``gradient`` needs a
    scalar loss.
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str = "sum_over_batch_size",
        name: str = "binary_crossentropy",
    ) -> None:
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(
                f"BinaryCrossentropy '{name}': from_logits must be True or False, "
                f"received {from_logits!r}."
            )
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"BinaryCrossentropy '{name}': label_smoothing must be in [0, 1], "
                f"received {label_smoothing}."
            )
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"BinaryCrossentropy '{name}': axis must be an int, received {axis!r}.")
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"BinaryCrossentropy '{name}': reduction {reduction!r} is not supported; "
                f"expected one of {list(REDUCTIONS)}. Per-sample losses (None, 'none') "
                "are not available because gradient() needs a scalar loss."
            )
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = int(axis)
        self.reduction = reduction
        self.name = name

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """Return the reduced loss as a Python float."""
        labels, y_pred = self._prepare(y_true, y_pred)

        if self.from_logits:
            entry_losses = sigmoid_cross_entropy_with_logits(labels, y_pred)
        else:
            entry_losses = cross_entropy_from_probabilities(labels, y_pred)

        sample_losses = np.mean(entry_losses, axis=self.axis)  # y_pred's shape without axis
        if self.reduction == "sum":
            return float(np.sum(sample_losses))
        return float(np.sum(sample_losses) / sample_losses.size)

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Return dL/d(y_pred), with ``y_pred``'s shape and dtype."""
        original_shape = np.shape(y_pred)
        labels, y_pred = self._prepare(y_true, y_pred)

        if self.from_logits:
            entry_gradients = sigmoid_cross_entropy_with_logits_gradient(labels, y_pred)
        else:
            entry_gradients = cross_entropy_from_probabilities_gradient(labels, y_pred)

        # The per-sample mean divides by K, and "sum_over_batch_size" also by M.
        if self.reduction == "sum":
            divisor = y_pred.shape[self.axis]
        else:
            divisor = y_pred.size
        gradient = entry_gradients / divisor
        return gradient.astype(y_pred.dtype, copy=False).reshape(original_shape)

    def _prepare(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Check both inputs and return the smoothed labels and y_pred, at matching ranks."""
        y_pred = np.asarray(y_pred)
        y_true = np.asarray(y_true)
        if y_pred.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"BinaryCrossentropy '{self.name}': y_pred dtype {y_pred.dtype} is not "
                "supported; expected float32 or float64."
            )
        if y_true.dtype.kind not in "biuf":
            raise TypeError(
                f"BinaryCrossentropy '{self.name}': y_true dtype {y_true.dtype} is not "
                "numeric; expected bool, int or float labels."
            )
        if y_pred.size == 0:
            raise ValueError(
                f"BinaryCrossentropy '{self.name}': y_pred of shape {y_pred.shape} is "
                "empty; expected at least one entry."
            )

        y_true, y_pred = _match_trailing_axis(y_true, y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"BinaryCrossentropy '{self.name}': y_true shape {y_true.shape} does not "
                f"match y_pred shape {y_pred.shape}; the shapes must be equal (a trailing "
                "axis of size 1 may differ)."
            )
        if not -y_pred.ndim <= self.axis < y_pred.ndim:
            raise ValueError(
                f"BinaryCrossentropy '{self.name}': axis {self.axis} is out of range for "
                f"y_pred of shape {y_pred.shape}."
            )

        labels = y_true.astype(y_pred.dtype)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return labels, y_pred


def _match_trailing_axis(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squeeze or add a trailing axis of size 1 when the ranks differ by one.

    The same rule as Keras's ``squeeze_or_expand_to_same_rank``: a rank-1
    array gains an axis, otherwise the array with the extra trailing 1 loses it.
    """
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        if y_pred.ndim == 1:
            y_pred = y_pred[:, np.newaxis]
        else:
            y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        if y_true.ndim == 1:
            y_true = y_true[:, np.newaxis]
        else:
            y_pred = y_pred[..., 0]
    return y_true, y_pred


# ---------------------------------------------------------------------- #
# GAN losses on the discriminator's logits
# ---------------------------------------------------------------------- #
class DiscriminatorLoss(NamedTuple):
    """D's loss and its gradients w.r.t. the logits of the real and the fake batch."""

    loss: float
    grad_real_logits: np.ndarray
    grad_fake_logits: np.ndarray


class GeneratorLoss(NamedTuple):
    """G's loss and its gradient w.r.t. D's logits on the fake batch."""

    loss: float
    grad_fake_logits: np.ndarray


_BCE_FROM_LOGITS = BinaryCrossentropy(from_logits=True)


def _check_logits(function: str, argument: str, logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits)
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{function}: {argument} dtype {logits.dtype} is not supported; "
            "expected float32 or float64 logits."
        )
    if logits.size == 0:
        raise ValueError(
            f"{function}: {argument} of shape {logits.shape} is empty; expected at least one logit."
        )
    return logits


def discriminator_loss(real_logits: np.ndarray, fake_logits: np.ndarray) -> DiscriminatorLoss:
    """Return D's loss ``BCE(1, real_logits) + BCE(0, fake_logits)`` and its gradients.

    D outputs a logit ``l`` and ``D(x) = sigmoid(l)`` is its probability
    that ``x`` is real. Since ``BCE(1, l) = -log D(x)`` and
    ``BCE(0, l) = -log(1 - D(x))``, with each BCE a mean over its batch,

        L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]

    so minimising ``L_D`` is D maximising the GAN value function
    ``E[log D(x)] + E[log(1 - D(G(z)))]``. The gradients are

        dL_D/d(real_logits) = (sigmoid(real_logits) - 1) / n_real
        dL_D/d(fake_logits) =  sigmoid(fake_logits)      / n_fake

    Args:
        real_logits: D's logits on real images, e.g. shape ``(batch, 1)``.
        fake_logits: D's logits on generated images; the batch may differ.
    """
    real_logits = _check_logits("discriminator_loss", "real_logits", real_logits)
    fake_logits = _check_logits("discriminator_loss", "fake_logits", fake_logits)
    ones = np.ones_like(real_logits)
    zeros = np.zeros_like(fake_logits)

    real_loss = _BCE_FROM_LOGITS(ones, real_logits)
    fake_loss = _BCE_FROM_LOGITS(zeros, fake_logits)

    grad_real_logits = _BCE_FROM_LOGITS.gradient(ones, real_logits)
    grad_fake_logits = _BCE_FROM_LOGITS.gradient(zeros, fake_logits)
    return DiscriminatorLoss(real_loss + fake_loss, grad_real_logits, grad_fake_logits)


def generator_loss(fake_logits: np.ndarray, form: str = "non-saturating") -> GeneratorLoss:
    """Return G's loss on D's logits for generated images, and its gradient.

    Two forms, with ``D(G(z)) = sigmoid(l)`` and ``n`` the batch size:

    ``"minimax"`` (saturating), G minimises the value function's second term:

        L_G = E[log(1 - D(G(z)))] = -BCE(0, l),    dL_G/dl = -sigmoid(l) / n

    ``"non-saturating"`` (default), G maximises ``log D(G(z))`` instead:

        L_G = -E[log D(G(z))] = BCE(1, l),         dL_G/dl = (sigmoid(l) - 1) / n

    Both push ``l`` up. When D confidently rejects the fakes (``l`` very
    negative), the minimax gradient vanishes with ``sigmoid(l)``, while the
    non-saturating one stays near ``-1 / n``. That is why the
    non-saturating form is used in practice.

    Args:
        fake_logits: D's logits on generated images, e.g. shape ``(batch, 1)``.
        form: ``"non-saturating"`` or ``"minimax"``.

    Raises:
        ValueError: if ``form`` is not one of the two.
    """
    if form not in GENERATOR_LOSS_FORMS:
        raise ValueError(
            f"generator_loss: unknown form {form!r}; expected one of {list(GENERATOR_LOSS_FORMS)}."
        )
    fake_logits = _check_logits("generator_loss", "fake_logits", fake_logits)

    if form == "non-saturating":
        ones = np.ones_like(fake_logits)
        loss = _BCE_FROM_LOGITS(ones, fake_logits)
        grad_fake_logits = _BCE_FROM_LOGITS.gradient(ones, fake_logits)
        return GeneratorLoss(loss, grad_fake_logits)

    zeros = np.zeros_like(fake_logits)
    loss = -_BCE_FROM_LOGITS(zeros, fake_logits)
    grad_fake_logits = -_BCE_FROM_LOGITS.gradient(zeros, fake_logits)
    return GeneratorLoss(loss, grad_fake_logits)
