"""The scratch backend of ``mnistgen train``: a plain loop over ``scratch.gan.GAN.train_step``.

No TensorFlow is imported. The checkpoint keeps every weight, both Adam
optimisers' step counters and slots, and the state of every NumPy random
generator (the layers' generators draw dropout masks). With the schedule's
data order and noise, which depend only on (seed, epoch, step), a run
interrupted and resumed ends with exactly the weights of an uninterrupted
run.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from keras_impl import checkpoints
from keras_impl.recorder import RunRecorder
from keras_impl.schedule import TrainConfig, epoch_batches
from scratch.gan import GAN
from scratch.models import build_discriminator, build_generator, build_optimizer

logger = logging.getLogger(__name__)

# Sections of GAN.get_state() kept in the checkpoint's training state; the
# weights themselves are stored once, in the backend-neutral section.
_STATE_SECTIONS = ("d_optimizer", "g_optimizer", "rng")


class ScratchBackend:
    """Build or restore a scratch ``GAN`` and train it step by step."""

    name = "scratch"

    def __init__(self, config: TrainConfig, checkpoint: checkpoints.Checkpoint | None) -> None:
        self.config = config
        seed = config.seed
        generator = build_generator(config.preset, config.noise_dim, config.dtype, seed)
        discriminator = build_discriminator(config.preset, config.dtype, seed + 1000)
        d_spec, g_spec = config.optimizer_specs()
        self.gan = GAN(
            generator,
            discriminator,
            build_optimizer(d_spec),
            build_optimizer(g_spec),
            config.generator_loss,
            seed=seed,
        )
        if checkpoint is not None:
            self.restore(checkpoint)

    def snapshot(self) -> tuple[dict, dict]:
        """Return ``(weights, training_state)`` for a checkpoint."""
        state = self.gan.get_state()
        weights = {"generator": state["generator"], "discriminator": state["discriminator"]}
        return weights, {"scratch": {section: state[section] for section in _STATE_SECTIONS}}

    def restore(self, checkpoint: checkpoints.Checkpoint) -> None:
        """Load weights, optimiser slots and random generator states from ``checkpoint``."""
        path = checkpoint.path
        saved: Any = checkpoint.training_state
        if not isinstance(saved, dict) or "scratch" not in saved:
            raise checkpoints.CheckpointError(
                f"{path}: no scratch training state; it was saved by another backend, so it "
                "can be sampled from but not resumed with --backend scratch"
            )
        for network, model in (
            ("generator", self.gan.generator),
            ("discriminator", self.gan.discriminator),
        ):
            expected = set(model.params) | set(model.state)
            checkpoints.check_same_names(expected, set(checkpoint.weights[network]), network, path)
        try:
            self.gan.set_state({**checkpoint.weights, **saved["scratch"]})
        except (KeyError, ValueError, TypeError) as error:
            raise checkpoints.CheckpointError(
                f"{path}: cannot restore the GAN ({error})"
            ) from error

    def generate(self, z: np.ndarray) -> np.ndarray:
        return self.gan.generate(z)

    def run(self, recorder: RunRecorder, x: np.ndarray) -> None:
        """Train from ``recorder.step`` to the last step of ``config.epochs``."""
        batch_size = self.config.batch_size
        steps_per_epoch = recorder.steps_per_epoch
        total = steps_per_epoch * self.config.epochs
        while recorder.step < total:
            epoch, start_batch = divmod(recorder.step, steps_per_epoch)
            x_epoch, z_epoch = epoch_batches(x, self.config, epoch, start_batch)
            for batch in range(steps_per_epoch - start_batch):
                rows = slice(batch * batch_size, (batch + 1) * batch_size)
                recorder.before_step()
                metrics = self.gan.train_step(x_epoch[rows], z_epoch[rows])
                recorder.after_step(metrics)
            recorder.end_epoch()
