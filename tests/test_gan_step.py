"""Tests for the GAN training step: scratch ``GAN`` against Keras ``KerasGAN``.

Both GANs start from the same weights (Keras's, copied into scratch) and
get the same real batches and the same noise. The loss gradients are
compared for every weight, then whole training steps (D then G, Adam,
batch normalization in training mode) for every weight, Adam slot,
iteration count and moving statistic.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_close

from keras_impl.gan import KerasGAN, build_keras_gan
from keras_impl.losses import discriminator_loss as keras_discriminator_loss
from keras_impl.losses import generator_loss as keras_generator_loss
from keras_impl.model_weights import (
    copy_keras_model_to_scratch,
    copy_scratch_model_to_keras,
    keras_optimizer_state,
    keras_weights_by_key,
    set_keras_optimizer_state,
)
from keras_impl.models import build_discriminator as build_keras_discriminator
from keras_impl.models import build_generator as build_keras_generator
from scratch.architectures import with_dropout_rate
from scratch.gan import GAN, build_gan
from scratch.losses import discriminator_loss
from scratch.models import build_discriminator, build_generator, build_optimizers

NOISE_DIM = 8
BATCH_SIZE = 4
STEPS = 5
# Keras draws dropout masks from TensorFlow's stateless generator, which
# NumPy cannot reproduce, so the tf-tutorial comparisons switch dropout off
# (rate 0 is the identity on both sides). test_models.py checks dropout in
# training mode with Keras's own masks.
TF_TUTORIAL_NO_DROPOUT = with_dropout_rate("tf-tutorial", 0.0)
PRESETS = {"dcgan": "dcgan", "tf-tutorial": TF_TUTORIAL_NO_DROPOUT}


def build_twin_gans(name, dtype, generator_loss="non-saturating", seed=0):
    """A compiled KerasGAN and a scratch GAN with the same weights (Keras's)."""
    keras_gan = build_keras_gan(PRESETS[name], NOISE_DIM, dtype, generator_loss, seed=seed)
    scratch_gan = build_gan(PRESETS[name], NOISE_DIM, dtype, generator_loss, seed=seed + 1)
    copy_keras_model_to_scratch(keras_gan.generator, scratch_gan.generator)
    copy_keras_model_to_scratch(keras_gan.discriminator, scratch_gan.discriminator)
    return keras_gan, scratch_gan


def make_batches(dtype, steps=STEPS, seed=7):
    """``steps`` pairs (x_real in [-1, 1], z ~ N(0, 1)) shared by both GANs."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.uniform(-1.0, 1.0, (BATCH_SIZE, 28, 28, 1)).astype(dtype),
            rng.standard_normal((BATCH_SIZE, NOISE_DIM)).astype(dtype),
        )
        for _ in range(steps)
    ]


def keras_train_step(keras_gan, x_real, z):
    """Run one eager Keras step and return this step's metrics as floats."""
    keras_gan.reset_metrics()
    logs = keras_gan.train_step((tf.constant(x_real), tf.constant(z)))
    return {name: float(value) for name, value in logs.items()}


def assert_gans_equal(step, scratch_gan, keras_gan, factor):
    """Every weight, moving statistic, Adam slot and iteration count, within ``factor``."""
    networks = (
        (
            scratch_gan.generator,
            keras_gan.generator,
            scratch_gan.g_optimizer,
            keras_gan.g_optimizer,
        ),
        (
            scratch_gan.discriminator,
            keras_gan.discriminator,
            scratch_gan.d_optimizer,
            keras_gan.d_optimizer,
        ),
    )
    for scratch_model, keras_model, scratch_optimizer, keras_optimizer in networks:
        scratch_weights = {**scratch_model.params, **scratch_model.state}
        keras_weights = keras_weights_by_key(keras_model)
        assert sorted(scratch_weights) == sorted(keras_weights)
        for key, value in keras_weights.items():
            assert_close(f"step {step} {key}", scratch_weights[key], value, factor)

        scratch_state = scratch_optimizer.get_state()
        keras_state = keras_optimizer_state(keras_optimizer, keras_model)
        assert sorted(scratch_state) == sorted(keras_state)
        assert int(scratch_state["iterations"]) == int(keras_state["iterations"]) == step + 1
        for key, value in keras_state.items():
            if key != "iterations":
                assert_close(f"step {step} {key}", scratch_state[key], value, factor)


def keras_gradients(loss_fn, keras_model):
    """Return the loss and ``{"layer/weight": gradient}`` of ``loss_fn()`` for ``keras_model``."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    weights = [
        (layer, weight) for layer in keras_model.layers for weight in layer.trainable_weights
    ]
    grads = tape.gradient(loss, [weight for _, weight in weights])
    return float(loss), {
        f"{layer.name}/{weight.name}": np.asarray(grad)
        for (layer, weight), grad in zip(weights, grads, strict=True)
    }


# ---------------------------------------------------------------------- #
# Loss gradients w.r.t. every weight
# ---------------------------------------------------------------------- #
# NOTE: in float32 a chained pass can put a unit on the other side of a ReLU
# kink than Keras does (pre-activations differ by rounding), and at
# initialisation D's logit-bias gradient is a difference of two near-equal
# terms. Both can push a float32 gradient past 1e-5 of its magnitude with
# another seed or CPU, so float32 uses 1e-4; float64 is the exact check.
GRADIENT_FACTOR = {"float64": 1e-10, "float32": 1e-4}


@pytest.mark.equivalence
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_discriminator_loss_gradients_match_keras(name, dtype):
    keras_gan, scratch_gan = build_twin_gans(name, dtype)
    (x_real, z), = make_batches(dtype, steps=1)
    x_fake_keras = keras_gan.generator(z, training=True)
    x_fake = scratch_gan.generator.forward(z, training=True)

    keras_loss, expected = keras_gradients(
        lambda: keras_discriminator_loss(
            keras_gan.discriminator(x_real, training=True),
            keras_gan.discriminator(x_fake_keras, training=True),
        ),
        keras_gan.discriminator,
    )
    d_loss, grads, real_logits, fake_logits = scratch_gan.discriminator_gradients(x_real, x_fake)

    assert d_loss == pytest.approx(discriminator_loss(real_logits, fake_logits).loss, rel=1e-12)
    assert d_loss == pytest.approx(keras_loss, rel=GRADIENT_FACTOR[dtype])
    assert sorted(grads) == sorted(expected)
    for key, value in expected.items():
        assert_close(f"dL_D/d {key}", grads[key], value, GRADIENT_FACTOR[dtype])


@pytest.mark.equivalence
@pytest.mark.parametrize("form", ["non-saturating", "minimax"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_generator_loss_gradients_match_keras(name, form, dtype):
    keras_gan, scratch_gan = build_twin_gans(name, dtype, generator_loss=form)
    (_, z), = make_batches(dtype, steps=1)

    keras_loss, expected = keras_gradients(
        lambda: keras_generator_loss(
            keras_gan.discriminator(keras_gan.generator(z, training=True), training=True), form
        ),
        keras_gan.generator,
    )
    x_fake = scratch_gan.generator.forward(z, training=True)
    d_before = {key: value.copy() for key, value in scratch_gan.discriminator.params.items()}
    g_loss, grads = scratch_gan.generator_gradients(x_fake)

    assert g_loss == pytest.approx(keras_loss, rel=GRADIENT_FACTOR[dtype])
    assert sorted(grads) == sorted(expected)
    for key, value in expected.items():
        assert_close(f"dL_G/d {key} ({form})", grads[key], value, GRADIENT_FACTOR[dtype])
    for key, value in d_before.items():
        assert np.array_equal(scratch_gan.discriminator.params[key], value), key


# ---------------------------------------------------------------------- #
# Whole training steps
# ---------------------------------------------------------------------- #
@pytest.mark.equivalence
@pytest.mark.parametrize("name, form", [("dcgan", "non-saturating"), ("tf-tutorial", "minimax")])
def test_training_steps_match_keras_float64(name, form):
    keras_gan, scratch_gan = build_twin_gans(name, "float64", generator_loss=form)

    for step, (x_real, z) in enumerate(make_batches("float64")):
        keras_metrics = keras_train_step(keras_gan, x_real, z)
        scratch_metrics = scratch_gan.train_step(x_real, z)

        for metric, value in keras_metrics.items():
            assert scratch_metrics[metric] == pytest.approx(value, rel=1e-8), (step, metric)
        assert_gans_equal(step, scratch_gan, keras_gan, factor=1e-8)


def randomize_offsets(model, rng):
    """Give a model the non-zero offsets and moving statistics of a network in training."""
    for key, value in model.params.items():
        if key.endswith("/gamma"):
            value[...] = 1.0 + 0.1 * rng.standard_normal(value.shape)
        elif key.endswith(("/beta", "/bias")):
            value[...] = 0.1 * rng.standard_normal(value.shape)
    model.assign(
        {
            key: (
                rng.normal(0.0, 0.1, value.shape)
                if key.endswith("moving_mean")
                else rng.uniform(0.5, 1.5, value.shape)
            ).astype(value.dtype)
            for key, value in model.state.items()
        }
    )


@pytest.mark.equivalence
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_training_steps_match_keras_float32(name):
    # Float32 GAN training is chaotic. Run with the scratch GAN alone, two
    # copies whose weights differ by one unit in the last place drifted apart
    # by up to 40% on some batch-norm offsets within 5 steps. Adam divides by
    # sqrt(v), so rounding in a near-zero gradient becomes a different step.
    # So in float32 each step starts from the same state on both sides (Keras
    # is set from scratch), and the offsets start non-zero, so that one Adam
    # step of difference is small next to them. The float64 test above runs
    # 5 steps without either measure.
    keras_gan, scratch_gan = build_twin_gans(name, "float32")
    rng = np.random.default_rng(3)
    randomize_offsets(scratch_gan.generator, rng)
    randomize_offsets(scratch_gan.discriminator, rng)

    for step, (x_real, z) in enumerate(make_batches("float32")):
        copy_scratch_model_to_keras(scratch_gan.generator, keras_gan.generator)
        copy_scratch_model_to_keras(scratch_gan.discriminator, keras_gan.discriminator)
        if step:
            set_keras_optimizer_state(
                keras_gan.g_optimizer, keras_gan.generator, scratch_gan.g_optimizer.get_state()
            )
            set_keras_optimizer_state(
                keras_gan.d_optimizer, keras_gan.discriminator, scratch_gan.d_optimizer.get_state()
            )

        keras_metrics = keras_train_step(keras_gan, x_real, z)
        scratch_metrics = scratch_gan.train_step(x_real, z)

        for metric, value in keras_metrics.items():
            assert scratch_metrics[metric] == pytest.approx(value, rel=1e-4), (step, metric)
        assert_gans_equal(step, scratch_gan, keras_gan, factor=1e-4)
        for value in scratch_gan.generator.get_weights():
            assert value.dtype == np.float32


@pytest.mark.equivalence
def test_fit_matches_scratch_steps():
    keras_gan, scratch_gan = build_twin_gans("dcgan", "float64")
    batches = make_batches("float64", steps=2)
    x_real = np.concatenate([x for x, _ in batches])
    z = np.concatenate([noise for _, noise in batches])
    dataset = tf.data.Dataset.from_tensor_slices((x_real, z)).batch(BATCH_SIZE)

    keras_gan.fit(dataset, epochs=1, verbose=0, shuffle=False)
    for x_batch, z_batch in batches:
        scratch_gan.train_step(x_batch, z_batch)

    assert_gans_equal(1, scratch_gan, keras_gan, factor=1e-8)


# ---------------------------------------------------------------------- #
# What one scratch step does
# ---------------------------------------------------------------------- #
def test_generator_step_leaves_discriminator_weights():
    _, gan = build_twin_gans("dcgan", "float64")
    (x_real, z), = make_batches("float64", steps=1)
    after_d_update = {}
    apply_d = gan.d_optimizer.apply_gradients

    def record_d_update(params, grads):
        apply_d(params, grads)
        after_d_update.update({key: value.copy() for key, value in params.items()})
        after_d_update.update({key: value.copy() for key, value in gan.discriminator.state.items()})

    gan.d_optimizer.apply_gradients = record_d_update
    g_before = {key: value.copy() for key, value in gan.generator.params.items()}

    gan.train_step(x_real, z)

    for key, value in gan.discriminator.params.items():
        assert np.array_equal(value, after_d_update[key]), key
    # The G step's pass through D, in training mode, updates D's moving
    # statistics once more, as Keras's BatchNormalization does.
    assert not np.array_equal(
        gan.discriminator.state["d_bn2/moving_mean"], after_d_update["d_bn2/moving_mean"]
    )
    assert not np.array_equal(gan.generator.params["g_up1/kernel"], g_before["g_up1/kernel"])


def test_metrics_and_generator_pass_come_before_updates():
    _, gan = build_twin_gans("dcgan", "float64")
    (x_real, z), = make_batches("float64", steps=1)
    state = gan.get_state()
    x_fake = gan.generator.forward(z, training=True)
    g_moving_mean = gan.generator.state["g_bn1/moving_mean"].copy()
    d_real = np.mean(1 / (1 + np.exp(-gan.discriminator.forward(x_real, training=True))))
    d_fake = np.mean(1 / (1 + np.exp(-gan.discriminator.forward(x_fake, training=True))))
    gan.set_state(state)

    metrics = gan.train_step(x_real, z)

    assert metrics["d_real"] == pytest.approx(d_real, rel=1e-12)
    assert metrics["d_fake"] == pytest.approx(d_fake, rel=1e-12)
    # One generator pass per step: G's moving statistics moved once.
    assert np.array_equal(gan.generator.state["g_bn1/moving_mean"], g_moving_mean)
    assert gan.iterations == 1


def test_state_round_trip_resumes_exactly():
    # Dropout on and noise drawn inside: the state must hold every generator.
    gan = build_gan("tf-tutorial", NOISE_DIM, "float32", seed=4)
    x_first, x_second = (x for x, _ in make_batches("float32", steps=2))
    gan.train_step(x_first)
    state = gan.get_state()

    first = gan.train_step(x_second)
    first_weights = gan.generator.get_weights() + gan.discriminator.get_weights()
    gan.set_state(state)
    second = gan.train_step(x_second)
    second_weights = gan.generator.get_weights() + gan.discriminator.get_weights()

    assert first == second
    for a, b in zip(first_weights, second_weights, strict=True):
        assert np.array_equal(a, b)
    assert gan.iterations == 2


def test_get_state_returns_copies():
    gan = build_gan("dcgan", NOISE_DIM, "float64", seed=0)
    state = gan.get_state()

    state["generator"]["g_up1/kernel"][...] = 0.0

    assert not np.all(gan.generator.params["g_up1/kernel"] == 0.0)


def test_set_state_rejects_other_preset():
    state = build_gan("tf-tutorial", NOISE_DIM, "float64", seed=0).get_state()
    gan = build_gan("dcgan", NOISE_DIM, "float64", seed=0)

    with pytest.raises(KeyError, match="saved generator weights .* do not match"):
        gan.set_state(state)
    with pytest.raises(KeyError, match=r"no \['rng'\] entries"):
        gan.set_state({key: value for key, value in state.items() if key != "rng"})


def test_generate_uses_moving_statistics(dtype):
    keras_gan, gan = build_twin_gans("dcgan", dtype)
    (_, z), = make_batches(dtype, steps=1)
    randomize_offsets(gan.generator, np.random.default_rng(5))
    copy_scratch_model_to_keras(gan.generator, keras_gan.generator)

    images = gan.generate(z)

    assert images.shape == (BATCH_SIZE, 28, 28, 1)
    assert images.dtype == np.dtype(dtype)
    assert np.all(np.abs(images) < 1.0)
    assert_close("generate", images, np.asarray(keras_gan.generate(z)))
    assert_close("inference pass", images, gan.generator.forward(z, training=False))


def test_gan_rejects_bad_configuration():
    generator = build_generator("dcgan", NOISE_DIM, "float32")
    discriminator = build_discriminator("dcgan", "float32")
    d_optimizer, g_optimizer = build_optimizers("dcgan")

    with pytest.raises(ValueError, match="two optimiser instances"):
        GAN(generator, discriminator, d_optimizer, d_optimizer)
    with pytest.raises(ValueError, match="unknown generator_loss 'wasserstein'"):
        GAN(generator, discriminator, d_optimizer, g_optimizer, "wasserstein")
    with pytest.raises(TypeError, match="expected one dtype"):
        GAN(generator, build_discriminator("dcgan", "float64"), d_optimizer, g_optimizer)


def test_train_step_rejects_bad_batches():
    gan = build_gan("dcgan", NOISE_DIM, "float32", seed=0)
    x_real = np.zeros((BATCH_SIZE, 28, 28, 1), dtype=np.float32)

    with pytest.raises(TypeError, match="x_real dtype float64 does not match .* float32"):
        gan.train_step(x_real.astype(np.float64))
    with pytest.raises(ValueError, match=r"x_real shape \(4, 28, 28\) does not match"):
        gan.train_step(x_real[..., 0])
    with pytest.raises(ValueError, match=r"z shape \(4, 5\) does not match .*\(None, 8\)"):
        gan.train_step(x_real, np.zeros((BATCH_SIZE, 5), dtype=np.float32))
    assert gan.iterations == 0


# ---------------------------------------------------------------------- #
# KerasGAN with fit
# ---------------------------------------------------------------------- #
class BatchRecorder(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.logs: list[dict] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.logs.append(dict(logs or {}))


def test_keras_fit_runs_with_callback():
    keras_gan = build_keras_gan("dcgan", NOISE_DIM, "float32", seed=0)
    x_real = np.random.default_rng(0).uniform(-1, 1, (12, 28, 28, 1)).astype(np.float32)
    kernel_before = np.asarray(keras_gan.generator.get_layer("g_up1").kernel).copy()
    recorder = BatchRecorder()

    history = keras_gan.fit(
        x_real, batch_size=BATCH_SIZE, epochs=2, verbose=0, callbacks=[recorder]
    )

    assert len(recorder.logs) == 6
    for logs in recorder.logs:
        assert set(logs) >= {"d_loss", "g_loss", "d_real", "d_fake"}
        assert all(np.isfinite(float(value)) for value in logs.values())
    assert set(history.history) >= {"d_loss", "g_loss", "d_real", "d_fake"}
    assert int(keras_gan.d_optimizer.iterations) == int(keras_gan.g_optimizer.iterations) == 6
    kernel_after = np.asarray(keras_gan.generator.get_layer("g_up1").kernel)
    assert not np.array_equal(kernel_after, kernel_before)


def test_keras_noise_comes_from_seed():
    x_real = np.random.default_rng(0).uniform(-1, 1, (BATCH_SIZE, 28, 28, 1)).astype(np.float32)
    results = []
    for seed in (5, 5, 6):
        keras_gan = build_keras_gan("dcgan", NOISE_DIM, "float32", seed=0)
        keras_gan.seed_generator = keras.random.SeedGenerator(seed)
        keras_gan.train_step(tf.constant(x_real))
        results.append(np.asarray(keras_gan.generator.get_layer("g_project").kernel))

    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


def test_keras_gan_rejects_bad_configuration():
    generator = build_keras_generator("dcgan", NOISE_DIM, "float32")
    discriminator = build_keras_discriminator("dcgan", "float32")
    optimizer = keras.optimizers.Adam()

    with pytest.raises(ValueError, match="unknown generator_loss 'hinge'"):
        KerasGAN(generator, discriminator, generator_loss="hinge")
    with pytest.raises(ValueError, match="noise_dim 16 does not match the generator's input"):
        KerasGAN(generator, discriminator, noise_dim=16)
    with pytest.raises(TypeError, match="dtype float32 does not match the discriminator's dtype"):
        KerasGAN(generator, build_keras_discriminator("dcgan", "float64"))
    gan = KerasGAN(generator, discriminator)
    with pytest.raises(RuntimeError, match="call compile"):
        gan.train_step(tf.zeros((BATCH_SIZE, 28, 28, 1)))
    with pytest.raises(ValueError, match="two optimiser instances"):
        gan.compile(d_optimizer=optimizer, g_optimizer=optimizer)
    gan.compile(d_optimizer=keras.optimizers.Adam(), g_optimizer=keras.optimizers.Adam())
    with pytest.raises(TypeError, match="x_real dtype float64 does not match"):
        gan.train_step(tf.zeros((BATCH_SIZE, 28, 28, 1), dtype=tf.float64))
    with pytest.raises(ValueError, match="tuple of 3 elements"):
        gan.train_step((tf.zeros((BATCH_SIZE, 28, 28, 1)),) * 3)
