"""The Keras backend of ``mnistgen train``: ``KerasGAN.fit`` with callbacks.

Each epoch is one ``fit`` call on that epoch's images and noise, in the
order ``keras_impl.schedule`` fixes (``shuffle=False``, noise passed as the
second element of each batch). ``RecorderCallback`` hands every step's
metrics to the ``RunRecorder`` (CSV, progress bar, non-finite check,
Ctrl-C) and, after a complete epoch, requests the grid, GIF, plot and
checkpoint.

Resuming restores every weight (moving statistics included), both Adam
optimisers' variables (iteration count, first and second moments) and the
state of Keras's seed generators (Dropout masks), then continues with the
same data order and noise. NOTE: the resumed run matches the uninterrupted
one only as far as TensorFlow's kernels are deterministic. With
TensorFlow 2.21 on CPU the final weights were bitwise equal, but unlike the
scratch backend this is not promised (the tests check the float32 tolerance).
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_impl import checkpoints
from keras_impl.gan import KerasGAN
from keras_impl.models import build_discriminator, build_generator, build_optimizer
from keras_impl.recorder import RunRecorder
from keras_impl.schedule import TrainConfig, epoch_batches

logger = logging.getLogger(__name__)


class StepMetricsGAN(KerasGAN):
    """A KerasGAN whose metrics are those of the current step, not means over the epoch.

    The per-step CSV needs each step's own losses; resetting the mean
    trackers before each step makes ``fit``'s batch logs exactly that.
    """

    def train_step(self, data: object) -> dict[str, Any]:
        for tracker in self.metrics:
            tracker.reset_state()
        return super().train_step(data)


class RecorderCallback(keras.callbacks.Callback):
    """Pass each step's metrics to the recorder; after a full epoch, write its outputs."""

    def __init__(self, recorder: RunRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.recorder.before_step()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.recorder.after_step(logs or {})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.recorder.step % self.recorder.steps_per_epoch == 0:
            self.recorder.end_epoch()


class KerasBackend:
    """Build or restore a ``StepMetricsGAN`` and train it epoch by epoch with ``fit``."""

    name = "keras"

    def __init__(self, config: TrainConfig, checkpoint: checkpoints.Checkpoint | None) -> None:
        self.config = config
        seed = config.seed
        generator = build_generator(config.preset, config.noise_dim, config.dtype, seed)
        discriminator = build_discriminator(config.preset, config.dtype, seed + 1000)
        self.gan = StepMetricsGAN(
            generator, discriminator, config.noise_dim, config.generator_loss, seed=seed
        )
        d_spec, g_spec = config.optimizer_specs()
        self.gan.compile(
            d_optimizer=build_optimizer(d_spec, name="d_optimizer"),
            g_optimizer=build_optimizer(g_spec, name="g_optimizer"),
        )
        if checkpoint is not None:
            self.restore(checkpoint)

    def _optimizer_variables(self) -> dict[str, dict[str, Any]]:
        # The learning rate comes from the run's settings, which may change on resume.
        def restorable(optimizer: keras.optimizers.Optimizer) -> dict[str, Any]:
            return {
                v.path: v for v in optimizer.variables if not v.path.endswith("/learning_rate")
            }

        return {
            "d_optimizer": restorable(self.gan.d_optimizer),
            "g_optimizer": restorable(self.gan.g_optimizer),
            # Seed generators are named with a process-wide counter
            # (seed_generator_4, ...), so they are matched by their order.
            "seed_generators": {
                f"{index:03d}": v
                for index, v in enumerate(
                    v for v in self.gan.variables if "seed_generator" in v.path
                )
            },
        }

    def snapshot(self) -> tuple[dict, dict]:
        """Return ``(weights, training_state)`` for a checkpoint."""
        weights = {
            "generator": checkpoints.keras_weights(self.gan.generator),
            "discriminator": checkpoints.keras_weights(self.gan.discriminator),
        }
        state = {
            group: {path: np.array(variable.numpy()) for path, variable in variables.items()}
            for group, variables in self._optimizer_variables().items()
        }
        return weights, {"keras": state}

    def restore(self, checkpoint: checkpoints.Checkpoint) -> None:
        """Load weights, optimiser variables and seed generator states from ``checkpoint``."""
        path = checkpoint.path
        checkpoints.set_keras_weights(
            self.gan.generator, checkpoint.weights["generator"], "generator", path
        )
        checkpoints.set_keras_weights(
            self.gan.discriminator, checkpoint.weights["discriminator"], "discriminator", path
        )
        state = checkpoint.training_state
        if not isinstance(state, dict) or "keras" not in state:
            raise checkpoints.CheckpointError(
                f"{path}: no Keras training state; it was saved by another backend, so it "
                "can be sampled from but not resumed with --backend keras"
            )
        for group, variables in self._optimizer_variables().items():
            saved = state["keras"].get(group, {})
            if set(saved) != set(variables):
                raise checkpoints.CheckpointError(
                    f"{path}: {group} variables {sorted(saved)} do not match the model's "
                    f"{sorted(variables)}"
                )
            for variable_path, variable in variables.items():
                variable.assign(saved[variable_path])

    def generate(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.gan.generate(z))

    def run(self, recorder: RunRecorder, x: np.ndarray) -> None:
        """Train from ``recorder.step`` to the last step of ``config.epochs``."""
        steps_per_epoch = recorder.steps_per_epoch
        total = steps_per_epoch * self.config.epochs
        callback = RecorderCallback(recorder)
        while recorder.step < total:
            epoch, start_batch = divmod(recorder.step, steps_per_epoch)
            x_epoch, z_epoch = epoch_batches(x, self.config, epoch, start_batch)
            # A tf.data pipeline keeps float64 arrays float64; fit() would cast
            # NumPy arrays to keras.config.floatx().
            batches = tf.data.Dataset.from_tensor_slices((x_epoch, z_epoch)).batch(
                self.config.batch_size
            )
            self.gan.fit(
                batches,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                verbose=0,
                callbacks=[callback],
            )
