"""The GAN training step in NumPy: one discriminator update, then one generator update.

One call of ``GAN.train_step(x_real, z)`` does, in this order (the same
order as ``keras_impl.gan.KerasGAN.train_step``, so the two stay equal step
for step):

1. Generator pass. ``x_fake = G(z)`` in training mode: G's batch
   normalization uses the batch statistics and updates its moving
   statistics once. G's layers keep this pass's caches for step 3.

2. Discriminator step. D's loss is a sum of two terms, one per batch::

       L_D = BCE(1, D(x_real)) + BCE(0, D(x_fake))

   so its gradient w.r.t. D's weights is the sum of the two terms'
   gradients. Each D pass runs in training mode, normalising with its own
   batch's statistics and updating the moving statistics. A layer keeps
   the caches of its last pass only, so each pass is followed at once by
   its backward pass: real pass, real backward, fake pass, fake backward.
   The summed gradients go to ``d_optimizer``. No gradient flows into G here,
   so D's backward passes skip the gradient w.r.t. the images
   (``input_gradient=False``).

3. Generator step. D, with its new weights, runs again on ``x_fake`` in
   training mode and ``L_G = generator_loss(logits, form)``. The backward
   pass goes through D down to ``dL_G/dx_fake`` and then through G, using
   the caches of step 1. Only G's gradients go to ``g_optimizer``. D's
   backward pass skips its weight gradients (``weight_gradients=False``,
   which also empties D's ``grads``), so D's weights do not change in this
   step, and G's skips the gradient w.r.t. z.

Batch normalization's moving statistics in D are updated on every
training-mode pass: twice in step 2 (real, then fake) and once more in
step 3. Keras does the same, because its BatchNormalization updates them
whenever a trainable layer is called with ``training=True``, whatever the
tape is differentiating. They only matter for D in inference mode.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from scratch.architectures import DEFAULT_NOISE_DIM, Preset, get_preset
from scratch.losses import GENERATOR_LOSS_FORMS, BinaryCrossentropy, generator_loss
from scratch.models import build_discriminator, build_generator, build_optimizers
from scratch.optimizers import Optimizer
from scratch.sequential import Sequential

logger = logging.getLogger(__name__)

_BCE_FROM_LOGITS = BinaryCrossentropy(from_logits=True)


def mean_probability(logits: np.ndarray) -> float:
    """Return the mean of ``sigmoid(logits)``: D's average probability that its inputs are real."""
    exp_minus_abs = np.exp(-np.abs(logits))
    # sigmoid(x) = 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for x < 0.
    probabilities = np.where(
        logits >= 0, 1 / (1 + exp_minus_abs), exp_minus_abs / (1 + exp_minus_abs)
    )
    return float(np.mean(probabilities))


class GAN:
    """A generator and a discriminator with one optimiser each.

    Args:
        generator: maps noise ``(batch, noise_dim)`` to images, e.g. from
            ``scratch.models.build_generator``.
        discriminator: maps images to logits ``(batch, 1)``.
        d_optimizer: updates D's weights (an optimiser from ``scratch.optimizers``).
        g_optimizer: updates G's weights; a separate instance from ``d_optimizer``.
        generator_loss: ``"non-saturating"`` (default) or ``"minimax"``
            (see ``scratch.losses.generator_loss``).
        seed: seed of the generator that draws z when ``train_step`` gets none.
    """

    def __init__(
        self,
        generator: Sequential,
        discriminator: Sequential,
        d_optimizer: Optimizer,
        g_optimizer: Optimizer,
        generator_loss: str = "non-saturating",
        seed: int | None = None,
    ) -> None:
        if generator_loss not in GENERATOR_LOSS_FORMS:
            raise ValueError(
                f"GAN: unknown generator_loss {generator_loss!r}; "
                f"expected one of {list(GENERATOR_LOSS_FORMS)}."
            )
        if d_optimizer is g_optimizer:
            raise ValueError(
                "GAN: d_optimizer and g_optimizer must be two optimiser instances, "
                "because each keeps slots for its own network's weights."
            )

        for model in (generator, discriminator):
            if not model.built:
                raise ValueError(f"GAN: model '{model.name}' is not built; call build() first.")
        if tuple(generator.output_shape[1:]) != tuple(discriminator.input_shape[1:]):
            raise ValueError(
                f"GAN: the generator's output shape {generator.output_shape} does not match "
                f"the discriminator's input shape {discriminator.input_shape}."
            )
        g_dtypes = {value.dtype for value in generator.params.values()}
        d_dtypes = {value.dtype for value in discriminator.params.values()}
        if len(g_dtypes | d_dtypes) != 1:
            raise TypeError(
                f"GAN: the generator's weights have dtypes {sorted(map(str, g_dtypes))} and "
                f"the discriminator's {sorted(map(str, d_dtypes))}; expected one dtype."
            )

        self.generator = generator
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.generator_loss = generator_loss
        self.noise_dim = int(generator.input_shape[-1])
        self.dtype = next(iter(g_dtypes))
        self.rng = np.random.default_rng(seed)

    @property
    def iterations(self) -> int:
        """Number of training steps taken (each updates D once and G once)."""
        return self.g_optimizer.iterations

    # ------------------------------------------------------------------ #
    # Inputs
    # ------------------------------------------------------------------ #
    def sample_noise(self, batch_size: int) -> np.ndarray:
        """Draw ``z ~ N(0, 1)`` of shape ``(batch_size, noise_dim)`` from the GAN's generator."""
        return self.rng.standard_normal((batch_size, self.noise_dim)).astype(self.dtype)

    def _check_batch(self, name: str, array: np.ndarray, shape: tuple) -> np.ndarray:
        array = np.asarray(array)
        if array.dtype != self.dtype:
            raise TypeError(
                f"GAN.train_step: {name} dtype {array.dtype} does not match the models' "
                f"dtype {self.dtype}; cast it with .astype({str(self.dtype)!r})."
            )
        if array.ndim != len(shape) or tuple(array.shape[1:]) != tuple(shape[1:]):
            raise ValueError(
                f"GAN.train_step: {name} shape {array.shape} does not match the expected "
                f"{shape} (batch axis first)."
            )
        if array.shape[0] == 0:
            raise ValueError(f"GAN.train_step: {name} is an empty batch.")
        return array

    # ------------------------------------------------------------------ #
    # Training
    # ------------------------------------------------------------------ #
    def train_step(self, x_real: np.ndarray, z: np.ndarray | None = None) -> dict[str, float]:
        """Update D once, then G once; return this step's metrics.

        Args:
            x_real: a batch of real images ``(batch, 28, 28, 1)`` in [-1, 1].
            z: noise ``(batch_z, noise_dim)``; drawn with ``sample_noise`` when None.

        Returns:
            ``d_loss`` and ``g_loss``; ``d_real`` and ``d_fake``, the mean of
            ``sigmoid(D(x))`` on the real and the generated batch, measured
            before D's update.
        """
        G, D = self.generator, self.discriminator
        x_real = self._check_batch("x_real", x_real, D.input_shape)
        if z is None:
            z = self.sample_noise(x_real.shape[0])
        z = self._check_batch("z", z, G.input_shape)

        # 1. One generator pass; G keeps its caches for step 3.
        x_fake = G.forward(z, training=True)  # (batch_z, 28, 28, 1)

        # 2. Discriminator step.
        d_loss, d_grads, real_logits, fake_logits = self.discriminator_gradients(x_real, x_fake)
        self.d_optimizer.apply_gradients(D.params, d_grads)

        # 3. Generator step, through the updated D; only G's weights change.
        g_loss, g_grads = self.generator_gradients(x_fake)
        self.g_optimizer.apply_gradients(G.params, g_grads)

        metrics = {
            "d_loss": float(d_loss),
            "g_loss": float(g_loss),
            "d_real": mean_probability(real_logits),
            "d_fake": mean_probability(fake_logits),
        }
        logger.debug("GAN step %d: %s", self.iterations, metrics)
        return metrics

    def discriminator_gradients(
        self, x_real: np.ndarray, x_fake: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Return D's loss, its gradients w.r.t. D's weights, and D's logits on both batches.

        ``L_D = BCE(1, D(x_real)) + BCE(0, D(x_fake))``. Each D pass (training
        mode) is followed at once by its backward pass, while D's layers
        still hold that pass's caches, and the two gradients are summed.
        """
        D = self.discriminator

        real_logits = D.forward(x_real, training=True)  # (batch, 1)
        ones = np.ones_like(real_logits)
        real_loss = _BCE_FROM_LOGITS(ones, real_logits)
        D.backward(_BCE_FROM_LOGITS.gradient(ones, real_logits), input_gradient=False)
        d_grads = {key: grad.copy() for key, grad in D.grads.items()}

        fake_logits = D.forward(x_fake, training=True)  # (batch_z, 1)
        zeros = np.zeros_like(fake_logits)
        fake_loss = _BCE_FROM_LOGITS(zeros, fake_logits)
        D.backward(_BCE_FROM_LOGITS.gradient(zeros, fake_logits), input_gradient=False)
        for key, grad in D.grads.items():
            d_grads[key] += grad

        return real_loss + fake_loss, d_grads, real_logits, fake_logits

    def generator_gradients(self, x_fake: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Return G's loss on ``D(x_fake)`` and its gradients w.r.t. G's weights.

        ``x_fake`` must be the output of G's last forward pass, because the
        backward pass through G uses the caches of that pass. D runs in
        training mode but skips the gradients of its own weights, so D's
        weights are not changed and ``D.grads`` raises until D's next full
        backward pass.
        """
        G, D = self.generator, self.discriminator

        logits = D.forward(x_fake, training=True)  # (batch_z, 1)
        g_loss, grad_logits = generator_loss(logits, self.generator_loss)
        dx_fake = D.backward(grad_logits, weight_gradients=False)  # (batch_z, 28, 28, 1)
        G.backward(dx_fake, input_gradient=False)
        return g_loss, G.grads

    def generate(self, z: np.ndarray) -> np.ndarray:
        """Return images ``G(z)`` in inference mode (moving statistics in batch norm)."""
        return self.generator.forward(z, training=False)

    # ------------------------------------------------------------------ #
    # Checkpoints
    # ------------------------------------------------------------------ #
    def get_state(self) -> dict[str, Any]:
        """Return everything a resumed run needs, as copies.

        Keys: ``generator`` and ``discriminator`` (every weight, moving
        statistics included, as ``{"layer/weight": array}``), ``d_optimizer``
        and ``g_optimizer`` (their ``get_state()``: iteration counter and
        slots), and ``rng`` (the bit-generator states of the noise generator
        and of every layer).
        """
        return {
            "generator": _copy_weights(self.generator),
            "discriminator": _copy_weights(self.discriminator),
            "d_optimizer": self.d_optimizer.get_state(),
            "g_optimizer": self.g_optimizer.get_state(),
            "rng": {
                "noise": self.rng.bit_generator.state,
                "generator": self.generator.get_rng_state(),
                "discriminator": self.discriminator.get_rng_state(),
            },
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a dict from ``get_state``.

        Raises:
            KeyError: if a section is missing or the weight names differ from the models'.
            ValueError, TypeError: if a weight's shape or dtype differs (from the layers).
        """
        missing = [
            key
            for key in ("generator", "discriminator", "d_optimizer", "g_optimizer", "rng")
            if key not in state
        ]
        if missing:
            raise KeyError(f"GAN.set_state: the state has no {missing} entries.")
        for model in (self.generator, self.discriminator):
            saved = state[model.name]
            expected = [*model.params, *model.state]
            if sorted(saved) != sorted(expected):
                raise KeyError(
                    f"GAN.set_state: the saved {model.name} weights "
                    f"{sorted(set(saved) ^ set(expected))} do not match the model's; "
                    "was the state saved from another preset?"
                )
        self.generator.assign(state["generator"])
        self.discriminator.assign(state["discriminator"])
        self.d_optimizer.set_state(state["d_optimizer"])
        self.g_optimizer.set_state(state["g_optimizer"])
        self.rng.bit_generator.state = state["rng"]["noise"]
        self.generator.set_rng_state(state["rng"]["generator"])
        self.discriminator.set_rng_state(state["rng"]["discriminator"])


def _copy_weights(model: Sequential) -> dict[str, np.ndarray]:
    return {key: value.copy() for key, value in {**model.params, **model.state}.items()}


def build_gan(
    preset: str | Preset = "dcgan",
    noise_dim: int = DEFAULT_NOISE_DIM,
    dtype: str = "float32",
    generator_loss: str = "non-saturating",
    seed: int | None = None,
) -> GAN:
    """Build both networks and both optimisers of ``preset`` and return the GAN.

    The seeds follow ``keras_impl.gan.build_keras_gan``: ``seed`` for G and
    the noise, ``seed + 1000`` for D. (NumPy and Keras draw different
    numbers from the same seed.)
    """
    preset = get_preset(preset)
    generator = build_generator(preset, noise_dim, dtype, seed)
    discriminator = build_discriminator(preset, dtype, None if seed is None else seed + 1000)
    d_optimizer, g_optimizer = build_optimizers(preset)
    return GAN(generator, discriminator, d_optimizer, g_optimizer, generator_loss, seed=seed)
