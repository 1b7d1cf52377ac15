"""The GAN training step in Keras: a ``keras.Model`` whose ``fit`` trains G and D.

One call of ``train_step`` does exactly what ``scratch.gan.GAN.train_step``
does, in the same order, so the two stay equal step for step:

1. ``x_fake = G(z, training=True)``: one generator pass, recorded on the
   generator's tape. G's batch normalization uses batch statistics and
   updates its moving statistics once.
2. Discriminator step (not recorded on the generator's tape):
   ``real_logits = D(x_real)`` then ``fake_logits = D(x_fake)``, both in
   training mode, so D's batch normalization normalises each batch with its
   own statistics and updates its moving statistics twice (real, then fake).
   ``d_loss = discriminator_loss(real_logits, fake_logits)``; its gradients
   w.r.t. D's trainable weights go to ``d_optimizer``.
3. Generator step: ``D(x_fake)`` again, in training mode and with the
   updated D. D's moving statistics are updated a third time, because Keras's
   BatchNormalization updates them on every training-mode call of a
   trainable layer. ``g_loss = generator_loss(logits, form)``; its gradients
   flow through D into x_fake and then through the recorded G pass, and only
   G's weights go to ``g_optimizer``. D's weights are not changed by this step.

The metrics ``d_real`` and ``d_fake`` are the mean of ``sigmoid(logits)``,
D's probability that its input is real, from step 2 (before D's update).

NOTE: the step uses ``tf.GradientTape``, so it runs with the TensorFlow
backend only.
"""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

from keras_impl.losses import discriminator_loss, generator_loss
from keras_impl.models import build_discriminator, build_generator, build_optimizers
from scratch.architectures import Preset, get_preset

logger = logging.getLogger(__name__)

GENERATOR_LOSS_FORMS = ("non-saturating", "minimax")


class KerasGAN(keras.Model):
    """A generator and a discriminator trained together by ``fit``.

    Args:
        generator: a model from ``keras_impl.models.build_generator``.
        discriminator: a model from ``keras_impl.models.build_discriminator``.
        noise_dim: the size of z; defaults to the generator's input size.
        generator_loss: ``"non-saturating"`` (default) or ``"minimax"``.
        seed: seed of the ``keras.random.SeedGenerator`` that draws z when
            a batch brings no noise.

    Data for ``fit`` and ``train_step``: either ``x_real`` batches of shape
    ``(batch, 28, 28, 1)``, or ``(x_real, z)`` pairs with ``z`` of shape
    ``(batch, noise_dim)``, so a test can feed the same noise to the scratch GAN.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        noise_dim: int | None = None,
        generator_loss: str = "non-saturating",
        seed: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if generator_loss not in GENERATOR_LOSS_FORMS:
            raise ValueError(
                f"KerasGAN: unknown generator_loss {generator_loss!r}; "
                f"expected one of {list(GENERATOR_LOSS_FORMS)}."
            )

        generator_noise_dim = generator.inputs[0].shape[-1]
        if noise_dim is None:
            noise_dim = generator_noise_dim
        if noise_dim != generator_noise_dim:
            raise ValueError(
                f"KerasGAN: noise_dim {noise_dim} does not match the generator's input "
                f"size {generator_noise_dim}."
            )
        generator_dtype = generator.inputs[0].dtype
        discriminator_dtype = discriminator.inputs[0].dtype
        if generator_dtype != discriminator_dtype:
            raise TypeError(
                f"KerasGAN: the generator's dtype {generator_dtype} does not match the "
                f"discriminator's dtype {discriminator_dtype}."
            )

        self.generator = generator
        self.discriminator = discriminator
        self.noise_dim = int(noise_dim)
        self.generator_loss_form = generator_loss
        self.data_dtype = generator_dtype
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_optimizer: keras.optimizers.Optimizer | None = None
        self.g_optimizer: keras.optimizers.Optimizer | None = None
        # Float64 models keep float64 metrics, so logged losses match the scratch GAN's.
        self.trackers = {
            name: keras.metrics.Mean(name=name, dtype=generator_dtype)
            for name in ("d_loss", "g_loss", "d_real", "d_fake")
        }

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def compile(
        self,
        d_optimizer: keras.optimizers.Optimizer,
        g_optimizer: keras.optimizers.Optimizer,
        **kwargs: object,
    ) -> None:
        """Attach one optimiser per network and create their slots.

        Other keyword arguments (``run_eagerly``, ``jit_compile``, ...) go to
        ``keras.Model.compile``; there is no ``loss`` or ``optimizer`` to pass.
        """
        if d_optimizer is g_optimizer:
            raise ValueError(
                "KerasGAN.compile: d_optimizer and g_optimizer must be two optimiser "
                "instances, because each keeps slots for its own network's weights."
            )
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    def call(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Return ``G(z)``."""
        return self.generator(z, training=training)

    def generate(self, z: object) -> tf.Tensor:
        """Return images ``G(z)`` in inference mode (moving statistics in batch norm)."""
        return self.generator(z, training=False)

    def _unpack(self, data: object) -> tuple[tf.Tensor, tf.Tensor]:
        if isinstance(data, (tuple, list)):
            if len(data) == 1:
                x_real, z = data[0], None
            elif len(data) == 2:
                x_real, z = data
            else:
                raise ValueError(
                    f"KerasGAN.train_step: expected x_real or (x_real, z), received a "
                    f"tuple of {len(data)} elements."
                )
        else:
            x_real, z = data, None
        x_dtype = keras.backend.standardize_dtype(x_real.dtype)
        if x_dtype != self.data_dtype:
            raise TypeError(
                f"KerasGAN.train_step: x_real dtype {x_dtype} does not match the "
                f"models' dtype {self.data_dtype}; cast the images first."
            )
        if z is None:
            batch_size = tf.shape(x_real)[0]
            z = keras.random.normal(
                (batch_size, self.noise_dim), dtype=self.data_dtype, seed=self.seed_generator
            )
        elif keras.backend.standardize_dtype(z.dtype) != self.data_dtype:
            raise TypeError(
                f"KerasGAN.train_step: z dtype {keras.backend.standardize_dtype(z.dtype)} does not "
                f"match the models' dtype {self.data_dtype}; cast the noise first."
            )
        return x_real, z

    def train_step(self, data: object) -> dict[str, tf.Tensor]:
        """Run one discriminator step then one generator step; return the metrics."""
        if self.d_optimizer is None or self.g_optimizer is None:
            raise RuntimeError(
                "KerasGAN: call compile(d_optimizer=..., g_optimizer=...) before training."
            )
        x_real, z = self._unpack(data)
        d_weights = self.discriminator.trainable_weights
        g_weights = self.generator.trainable_weights

        with tf.GradientTape() as g_tape:
            x_fake = self.generator(z, training=True)  # (batch, 28, 28, 1)

            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_logits = self.discriminator(x_real, training=True)  # (batch, 1)
                    fake_logits = self.discriminator(x_fake, training=True)
                    d_loss = discriminator_loss(real_logits, fake_logits)
                d_grads = d_tape.gradient(d_loss, d_weights)
                self.d_optimizer.apply(d_grads, d_weights)

            g_logits = self.discriminator(x_fake, training=True)
            g_loss = generator_loss(g_logits, self.generator_loss_form)
        g_grads = g_tape.gradient(g_loss, g_weights)
        self.g_optimizer.apply(g_grads, g_weights)

        self.trackers["d_loss"].update_state(d_loss)
        self.trackers["g_loss"].update_state(g_loss)
        self.trackers["d_real"].update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.trackers["d_fake"].update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def build_keras_gan(
    preset: str | Preset = "dcgan",
    noise_dim: int = 100,
    dtype: str = "float32",
    generator_loss: str = "non-saturating",
    seed: int | None = None,
    **compile_kwargs: object,
) -> KerasGAN:
    """Build both networks and both optimisers of ``preset`` and return a compiled KerasGAN."""
    preset = get_preset(preset)
    generator = build_generator(preset, noise_dim, dtype, seed)
    discriminator = build_discriminator(preset, dtype, None if seed is None else seed + 1000)
    gan = KerasGAN(generator, discriminator, noise_dim, generator_loss, seed=seed)
    d_optimizer, g_optimizer = build_optimizers(preset)
    gan.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, **compile_kwargs)
    return gan
