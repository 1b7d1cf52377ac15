"""Binary cross-entropy and the GAN losses: scratch against Keras and finite differences."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_close, assert_same_dtype

import keras_impl.losses as keras_losses
from scratch.gradient_check import numerical_gradient, relative_error
from scratch.losses import (
    EPSILON,
    GENERATOR_LOSS_FORMS,
    BinaryCrossentropy,
    discriminator_loss,
    generator_loss,
)

pytestmark = pytest.mark.equivalence

SHAPES = [(8, 1), (4, 3), (6,), (2, 3, 4)]


def keras_value_and_gradient(
    loss_fn: Callable[[np.ndarray, tf.Tensor], tf.Tensor], y_true: np.ndarray, y_pred: object
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``loss_fn(y_true, y_pred)`` and its gradient w.r.t. ``y_pred``, from Keras."""
    y_pred = tf.constant(y_pred) if isinstance(y_pred, np.ndarray) else y_pred
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        loss = loss_fn(y_true, y_pred)
    return np.asarray(loss), np.asarray(tape.gradient(loss, y_pred))


def make_logits(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Logits around +-4, with 50, -50, 20 and 0 in the first entries."""
    logits = rng.normal(0.0, 4.0, size=shape)
    extremes = [50.0, -50.0, 20.0, 0.0]
    logits.flat[: min(len(extremes), logits.size)] = extremes[: logits.size]
    return logits.astype(dtype)


def make_probabilities(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Probabilities in (0, 1), with 0, 1, 1e-9 and 1 - 1e-9 (all clipped) first."""
    probabilities = rng.uniform(0.01, 0.99, size=shape)
    extremes = [0.0, 1.0, 1e-9, 1.0 - 1e-9]
    probabilities.flat[: min(len(extremes), probabilities.size)] = extremes[: probabilities.size]
    return probabilities.astype(dtype)


def make_labels(
    shape: tuple[int, ...], kind: str, dtype: str, rng: np.random.Generator
) -> np.ndarray:
    if kind == "hard":
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.uniform(0.0, 1.0, size=shape).astype(dtype)


# ---------------------------------------------------------------------- #
# BinaryCrossentropy against Keras
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_bce_matches_keras(
    dtype: str,
    shape: tuple[int, ...],
    from_logits: bool,
    label_smoothing: float,
    reduction: str,
    labels: str,
) -> None:
    rng = np.random.default_rng(sum(shape) + 7 * from_logits)
    if from_logits:
        y_pred = make_logits(shape, dtype, rng)
    else:
        y_pred = make_probabilities(shape, dtype, rng)
    y_true = make_labels(shape, labels, dtype, rng)
    arguments = {
        "from_logits": from_logits,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
    }
    scratch_loss = BinaryCrossentropy(**arguments)
    keras_loss = keras.losses.BinaryCrossentropy(**arguments, dtype=dtype)

    keras_value, keras_gradient = keras_value_and_gradient(keras_loss, y_true, y_pred)
    gradient = scratch_loss.gradient(y_true, y_pred)

    assert_close("loss", np.asarray(scratch_loss(y_true, y_pred)), keras_value)
    assert_close("dL/dy_pred", gradient, keras_gradient)
    assert_same_dtype("dL/dy_pred", gradient, dtype)


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_bce_axis_matches_keras(dtype: str, axis: int) -> None:
    rng = np.random.default_rng(axis + 3)
    y_pred = make_logits((3, 4, 2), dtype, rng)
    y_true = make_labels((3, 4, 2), "hard", dtype, rng)
    for reduction in ("sum_over_batch_size", "sum"):
        scratch_loss = BinaryCrossentropy(from_logits=True, axis=axis, reduction=reduction)
        keras_loss = keras.losses.BinaryCrossentropy(
            from_logits=True, axis=axis, reduction=reduction, dtype=dtype
        )

        keras_value, keras_gradient = keras_value_and_gradient(keras_loss, y_true, y_pred)

        assert_close(f"loss, {reduction}", np.asarray(scratch_loss(y_true, y_pred)), keras_value)
        assert_close(
            f"dL/dlogits, {reduction}", scratch_loss.gradient(y_true, y_pred), keras_gradient
        )


@pytest.mark.parametrize(
    ("true_shape", "pred_shape"), [((6,), (6, 1)), ((6, 1), (6,)), ((2, 3, 1), (2, 3))]
)
@pytest.mark.parametrize("from_logits", [True, False])
def test_bce_trailing_axis_rule_matches_keras(
    true_shape: tuple[int, ...], pred_shape: tuple[int, ...], from_logits: bool
) -> None:
    rng = np.random.default_rng(11)
    y_true = rng.integers(0, 2, size=true_shape).astype("float64")
    if from_logits:
        y_pred = make_logits(pred_shape, "float64", rng)
    else:
        y_pred = make_probabilities(pred_shape, "float64", rng)
    scratch_loss = BinaryCrossentropy(from_logits=from_logits)
    keras_loss = keras.losses.BinaryCrossentropy(from_logits=from_logits, dtype="float64")

    keras_value, keras_gradient = keras_value_and_gradient(keras_loss, y_true, y_pred)

    assert_close("loss", np.asarray(scratch_loss(y_true, y_pred)), keras_value)
    assert_close("dL/dy_pred", scratch_loss.gradient(y_true, y_pred), keras_gradient)


def test_bce_clipping_of_probabilities(dtype: str) -> None:
    """A wrong p of 0 or 1 costs about -log(epsilon), and clipped entries get no gradient."""
    y_pred = np.array([[0.0], [1.0], [0.0], [1.0], [0.5]], dtype=dtype)
    y_true = np.array([[1.0], [0.0], [0.0], [1.0], [1.0]], dtype=dtype)
    scratch_loss = BinaryCrossentropy()
    keras_loss = keras.losses.BinaryCrossentropy(dtype=dtype)

    keras_value, keras_gradient = keras_value_and_gradient(keras_loss, y_true, y_pred)
    gradient = scratch_loss.gradient(y_true, y_pred)

    # The clip range is [lower, upper] in the dtype. The two wrong, fully
    # confident entries cost -log(lower) and -log(1 - upper), about 16.1 each
    # in float64. In float32, upper is 1 - 1.19e-7, so the second costs 15.9.
    lower = np.asarray(EPSILON, dtype=dtype)
    upper = np.asarray(1.0 - EPSILON, dtype=dtype)
    entry_losses = [
        -np.log(lower),  # p = 0, z = 1
        -np.log(1 - upper),  # p = 1, z = 0
        -np.log(1 - lower),  # p = 0, z = 0
        -np.log(upper),  # p = 1, z = 1
        -np.log(np.asarray(0.5, dtype=dtype)),  # p = 0.5, z = 1
    ]
    expected = np.asarray(np.mean(entry_losses), dtype=dtype)
    assert_close("loss vs clipped entries", np.asarray(scratch_loss(y_true, y_pred)), expected)
    assert_close("loss", np.asarray(scratch_loss(y_true, y_pred)), keras_value)
    assert np.all(gradient[:4] == 0), (
        f"scratch gradients of clipped entries: {gradient[:4].ravel()}"
    )
    assert np.all(keras_gradient[:4] == 0), (
        f"Keras gradients of clipped entries: {keras_gradient[:4].ravel()}"
    )
    assert_close("dL/dp", gradient, keras_gradient)


def test_bce_clip_bounds_keep_gradient() -> None:
    """A probability exactly on a clip bound keeps its gradient, as tf.clip_by_value gives it."""
    y_pred = np.array([[EPSILON], [1.0 - EPSILON]])
    y_true = np.array([[1.0], [0.0]])
    scratch_loss = BinaryCrossentropy()
    keras_loss = keras.losses.BinaryCrossentropy(dtype="float64")

    _, keras_gradient = keras_value_and_gradient(keras_loss, y_true, y_pred)
    gradient = scratch_loss.gradient(y_true, y_pred)

    assert np.all(gradient != 0), f"scratch gradient on the clip bounds: {gradient.ravel()}"
    assert_close("dL/dp on the clip bounds", gradient, keras_gradient)


def test_bce_keras_uses_logits_of_sigmoid_outputs() -> None:
    """Keras (TF backend) takes the logit path for sigmoid outputs, and the scratch loss cannot.

    ``keras.activations.sigmoid`` stores its input on the output tensor as
    ``_keras_logits``. BinaryCrossentropy(from_logits=False) then computes
    the loss from those logits, without clipping. The same probabilities as
    a plain array go through the clipped probability path.
    """
    logits = np.array([[50.0], [-50.0], [3.0], [-1.5]])
    y_true = np.array([[0.0], [1.0], [1.0], [0.0]])
    sigmoid_output = keras.activations.sigmoid(tf.constant(logits))
    plain_probabilities = np.asarray(sigmoid_output)
    keras_loss = keras.losses.BinaryCrossentropy(dtype="float64")

    keras_from_sigmoid_output = float(keras_loss(y_true, sigmoid_output))
    keras_from_plain_array = float(keras_loss(y_true, plain_probabilities))
    scratch_from_logits = BinaryCrossentropy(from_logits=True)(y_true, logits)
    scratch_from_probabilities = BinaryCrossentropy()(y_true, plain_probabilities)

    assert hasattr(sigmoid_output, "_keras_logits")
    assert_close(
        "sigmoid output vs logit path",
        np.asarray(scratch_from_logits),
        np.asarray(keras_from_sigmoid_output),
    )
    assert_close(
        "plain array vs probability path",
        np.asarray(scratch_from_probabilities),
        np.asarray(keras_from_plain_array),
    )
    # The first two entries are wrong by a logit of 50: 50 each on the logit
    # path, but only -log(1e-7) ~ 16.1 each after clipping.
    assert keras_from_sigmoid_output - keras_from_plain_array > 2 * (50 - 16.2) / 4


# ---------------------------------------------------------------------- #
# BinaryCrossentropy against finite differences
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("shape", [(5, 1), (3, 4)])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_bce_gradient_finite_differences(
    shape: tuple[int, ...], label_smoothing: float, reduction: str
) -> None:
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 2, size=shape).astype("float64")
    logits = rng.normal(0.0, 3.0, size=shape)
    logits.flat[0] = 8.0
    probabilities = rng.uniform(0.05, 0.95, size=shape)

    for from_logits, y_pred in ((True, logits), (False, probabilities)):
        loss = BinaryCrossentropy(
            from_logits=from_logits, label_smoothing=label_smoothing, reduction=reduction
        )

        numeric = numerical_gradient(lambda: loss(y_true, y_pred), y_pred)  # noqa: B023
        error = relative_error(loss.gradient(y_true, y_pred), numeric)

        assert error < 1e-7, f"from_logits={from_logits}: relative error {error:.2e}"


# ---------------------------------------------------------------------- #
# BinaryCrossentropy input checks
# ---------------------------------------------------------------------- #
def test_bce_rejects_mismatched_shapes() -> None:
    with pytest.raises(
        ValueError, match=r"y_true shape \(4, 2\) does not match y_pred shape \(4, 1\)"
    ):
        BinaryCrossentropy()(np.zeros((4, 2)), np.full((4, 1), 0.5))


def test_bce_rejects_integer_predictions() -> None:
    with pytest.raises(TypeError, match="y_pred dtype int64"):
        BinaryCrossentropy().gradient(np.zeros((2, 1)), np.zeros((2, 1), dtype=np.int64))


def test_bce_rejects_text_labels() -> None:
    with pytest.raises(TypeError, match="y_true dtype <U1 is not numeric"):
        BinaryCrossentropy()(np.array([["a"]]), np.array([[0.5]]))


def test_bce_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(0, 1\) is empty"):
        BinaryCrossentropy()(np.zeros((0, 1)), np.zeros((0, 1)))


def test_bce_rejects_axis_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"axis 2 is out of range for y_pred of shape \(3, 1\)"):
        BinaryCrossentropy(axis=2)(np.zeros((3, 1)), np.full((3, 1), 0.5))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"label_smoothing": 1.5},
            ValueError,
            r"label_smoothing must be in \[0, 1\], received 1.5",
        ),
        ({"label_smoothing": -0.1}, ValueError, r"label_smoothing must be in \[0, 1\]"),
        ({"reduction": None}, ValueError, r"reduction None is not supported"),
        ({"reduction": "mean_of_squares"}, ValueError, r"expected one of \['sum_over_batch_size'"),
        ({"from_logits": "yes"}, TypeError, r"from_logits must be True or False, received 'yes'"),
        ({"axis": 1.0}, TypeError, r"axis must be an int, received 1.0"),
    ],
)
def test_bce_rejects_bad_arguments(arguments: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        BinaryCrossentropy(**arguments)


# ---------------------------------------------------------------------- #
# GAN losses
# ---------------------------------------------------------------------- #
def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def test_discriminator_loss_matches_keras(dtype: str) -> None:
    rng = np.random.default_rng(21)
    real_logits = make_logits((8, 1), dtype, rng)
    fake_logits = rng.normal(-1.0, 3.0, size=(6, 1)).astype(dtype)
    real_tensor = tf.constant(real_logits)
    fake_tensor = tf.constant(fake_logits)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real_tensor, fake_tensor])
        keras_loss = keras_losses.discriminator_loss(real_tensor, fake_tensor)
    keras_grad_real = np.asarray(tape.gradient(keras_loss, real_tensor))
    keras_grad_fake = np.asarray(tape.gradient(keras_loss, fake_tensor))
    loss, grad_real_logits, grad_fake_logits = discriminator_loss(real_logits, fake_logits)

    assert keras_loss.dtype == dtype
    assert_close("D loss", np.asarray(loss), np.asarray(keras_loss))
    assert_close("dL_D/d(real_logits)", grad_real_logits, keras_grad_real)
    assert_close("dL_D/d(fake_logits)", grad_fake_logits, keras_grad_fake)
    assert_same_dtype("dL_D/d(real_logits)", grad_real_logits, dtype)
    assert_same_dtype("dL_D/d(fake_logits)", grad_fake_logits, dtype)


@pytest.mark.parametrize("form", GENERATOR_LOSS_FORMS)
def test_generator_loss_matches_keras(dtype: str, form: str) -> None:
    rng = np.random.default_rng(22)
    fake_logits = make_logits((8, 1), dtype, rng)
    fake_tensor = tf.constant(fake_logits)

    with tf.GradientTape() as tape:
        tape.watch(fake_tensor)
        keras_loss = keras_losses.generator_loss(fake_tensor, form)
    keras_gradient = np.asarray(tape.gradient(keras_loss, fake_tensor))
    loss, grad_fake_logits = generator_loss(fake_logits, form)

    assert keras_loss.dtype == dtype
    assert_close(f"G loss ({form})", np.asarray(loss), np.asarray(keras_loss))
    assert_close(f"dL_G/d(fake_logits) ({form})", grad_fake_logits, keras_gradient)
    assert_same_dtype("dL_G/d(fake_logits)", grad_fake_logits, dtype)


def test_gan_losses_equal_value_function_terms() -> None:
    """The losses are the terms of E[log D(x)] + E[log(1 - D(G(z)))] with D = sigmoid(logit)."""
    rng = np.random.default_rng(23)
    real_logits = rng.normal(1.0, 2.0, size=(7, 1))
    fake_logits = rng.normal(-1.0, 2.0, size=(5, 1))
    log_d_real = np.log(sigmoid(real_logits))
    log_one_minus_d_fake = np.log(1 - sigmoid(fake_logits))

    d_loss = discriminator_loss(real_logits, fake_logits).loss
    minimax = generator_loss(fake_logits, "minimax").loss
    non_saturating = generator_loss(fake_logits, "non-saturating").loss

    expected_d_loss = -(np.mean(log_d_real) + np.mean(log_one_minus_d_fake))
    assert_close("D loss", np.asarray(d_loss), np.asarray(expected_d_loss))
    assert_close("minimax G loss", np.asarray(minimax), np.asarray(np.mean(log_one_minus_d_fake)))
    assert_close(
        "non-saturating G loss",
        np.asarray(non_saturating),
        np.asarray(-np.mean(np.log(sigmoid(fake_logits)))),
    )


def test_gan_loss_gradients_finite_differences() -> None:
    rng = np.random.default_rng(24)
    real_logits = rng.normal(1.0, 2.0, size=(6, 1))
    fake_logits = rng.normal(-1.0, 2.0, size=(4, 1))

    _, grad_real_logits, grad_fake_logits = discriminator_loss(real_logits, fake_logits)
    numeric_real = numerical_gradient(
        lambda: discriminator_loss(real_logits, fake_logits).loss, real_logits
    )
    numeric_fake = numerical_gradient(
        lambda: discriminator_loss(real_logits, fake_logits).loss, fake_logits
    )

    assert relative_error(grad_real_logits, numeric_real) < 1e-7
    assert relative_error(grad_fake_logits, numeric_fake) < 1e-7
    for form in GENERATOR_LOSS_FORMS:
        numeric = numerical_gradient(
            lambda: generator_loss(fake_logits, form).loss,  # noqa: B023
            fake_logits,
        )
        error = relative_error(generator_loss(fake_logits, form).grad_fake_logits, numeric)
        assert error < 1e-7, f"generator_loss {form}: relative error {error:.2e}"


def test_minimax_generator_loss_saturates() -> None:
    """When D rejects the fakes (logits near -10), the minimax gradient vanishes.

    The losses are batch means, so ``batch * dL/dl`` is the derivative of
    one example's loss w.r.t. its logit: ``-sigmoid(l)`` for minimax, about
    -4.5e-5 here, and ``sigmoid(l) - 1``, about -1, for the non-saturating form.
    """
    batch = 16
    rng = np.random.default_rng(25)
    fake_logits = rng.normal(-10.0, 0.5, size=(batch, 1))
    fake_tensor = tf.constant(fake_logits)

    per_example = {}
    for form in GENERATOR_LOSS_FORMS:
        with tf.GradientTape() as tape:
            tape.watch(fake_tensor)
            keras_loss = keras_losses.generator_loss(fake_tensor, form)
        keras_gradient = batch * np.asarray(tape.gradient(keras_loss, fake_tensor))
        scratch_gradient = batch * generator_loss(fake_logits, form).grad_fake_logits
        assert_close(f"batch * dL_G/dl ({form})", scratch_gradient, keras_gradient)
        per_example[form] = (scratch_gradient, keras_gradient)

    for gradient in per_example["minimax"]:
        assert np.all(np.abs(gradient) < 1e-3), f"minimax per-example gradients: {gradient.ravel()}"
    for gradient in per_example["non-saturating"]:
        assert np.all(np.abs(gradient + 1) < 1e-3), (
            f"non-saturating per-example gradients: {gradient.ravel()}"
        )


def test_generator_forms_agree_when_d_is_unsure() -> None:
    """At logit 0 (D(G(z)) = 0.5) both forms have gradient -0.5 per example."""
    fake_logits = np.zeros((4, 1))

    minimax = generator_loss(fake_logits, "minimax").grad_fake_logits
    non_saturating = generator_loss(fake_logits, "non-saturating").grad_fake_logits

    assert_close("minimax gradient at logit 0", 4 * minimax, np.full((4, 1), -0.5))
    assert_close("non-saturating gradient at logit 0", 4 * non_saturating, np.full((4, 1), -0.5))


@pytest.mark.parametrize("function", [generator_loss, keras_losses.generator_loss])
def test_generator_loss_rejects_unknown_form(function: object) -> None:
    logits = np.zeros((2, 1))
    if function is keras_losses.generator_loss:
        logits = tf.constant(logits)

    with pytest.raises(
        ValueError,
        match=r"unknown form 'wasserstein'; expected one of "
        r"\['non-saturating', 'minimax'\]",
    ):
        function(logits, "wasserstein")


def test_gan_losses_reject_integer_logits() -> None:
    integer_logits = np.zeros((2, 1), dtype=np.int64)

    with pytest.raises(TypeError, match="discriminator_loss: fake_logits dtype int64"):
        discriminator_loss(np.zeros((2, 1)), integer_logits)
    with pytest.raises(TypeError, match="generator_loss: fake_logits dtype int64"):
        generator_loss(integer_logits)
    with pytest.raises(TypeError, match="generator_loss: fake_logits dtype int64"):
        keras_losses.generator_loss(tf.constant(integer_logits))


def test_keras_discriminator_loss_rejects_mixed_dtypes() -> None:
    with pytest.raises(
        TypeError, match="real_logits dtype float32 does not match fake_logits dtype float64"
    ):
        keras_losses.discriminator_loss(
            tf.constant(np.zeros((2, 1), np.float32)), tf.constant(np.zeros((2, 1)))
        )
