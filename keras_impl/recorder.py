"""Bookkeeping between training steps, for either backend: metrics, outputs, Ctrl-C.

``RunRecorder`` writes the per-step metrics CSV, drives the progress bar,
stops the run on a non-finite metric, and after each epoch saves the image
grid, the GIF, the metrics plot and the checkpoint. ``StopRequest`` turns
the first Ctrl-C into a stop at the next step boundary, where the model's
state is whole and can be saved.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from keras_impl import checkpoints, outputs
from keras_impl.schedule import (
    CHECKPOINT_NAME,
    GIF_NAME,
    METRICS_CSV_NAME,
    METRICS_PLOT_NAME,
    SAMPLES_DIR,
    TrainConfig,
    fixed_noise,
)

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A loss or D output that became NaN or infinite.

    The message names the step, the bad values and the checkpoint kept.
    """


# ---------------------------------------------------------------------- #
# Ctrl-C: the first SIGINT requests a stop at the next step boundary
# ---------------------------------------------------------------------- #
class StopRequest:
    """Install a SIGINT handler that sets a flag; a second SIGINT raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Ctrl-C: stopping after the current step (press again to quit at once)")

    def __enter__(self) -> StopRequest:
        # Signal handlers can only be set from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


# ---------------------------------------------------------------------- #
# The recorder: what happens after each step and each epoch
# ---------------------------------------------------------------------- #
StepHook = Callable[[int, int], None]


class RunRecorder:
    """Record steps and epochs for either backend and own every output file.

    The backend calls ``before_step()`` and ``after_step(metrics)`` around
    each training step and ``end_epoch()`` after each epoch. It provides
    ``generate(z)`` and ``snapshot()`` (weights and training state for the
    checkpoint). ``after_step`` raises KeyboardInterrupt when Ctrl-C was
    pressed (or ``step_hook`` raises it), and NonFiniteLossError on a NaN or
    infinite metric; both happen between steps, where the state is whole.
    """

    def __init__(
        self,
        config: TrainConfig,
        metadata: dict[str, Any],
        steps_per_epoch: int,
        start_step: int,
        generate: Callable[[np.ndarray], np.ndarray],
        snapshot: Callable[[], tuple[dict, Any]],
        stop: StopRequest,
        step_hook: StepHook | None = None,
    ) -> None:
        self.config = config
        self.metadata = metadata
        self.steps_per_epoch = steps_per_epoch
        self.step = start_step
        self.generate = generate
        self.snapshot = snapshot
        self.stop = stop
        self.step_hook = step_hook
        self.in_step = False
        self.last_metrics: dict[str, float] = {}
        self.last_checkpoint_step: int | None = None
        self.out = Path(config.out)
        self.metrics_log = outputs.MetricsLog(self.out / METRICS_CSV_NAME)
        self.metrics_log.truncate(start_step)
        self.grid_noise = fixed_noise(
            config.seed, config.grid_rows * config.grid_cols, config.noise_dim, config.dtype
        )
        total = steps_per_epoch * config.epochs
        self.progress = tqdm(
            total=total,
            initial=start_step,
            disable=config.quiet,
            unit="step",
            dynamic_ncols=True,
            desc=self._description(),
        )

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    def _description(self) -> str:
        current = min(self.epoch + 1, self.config.epochs)
        return f"{self.config.backend} epoch {current}/{self.config.epochs}"

    def before_step(self) -> None:
        self.in_step = True

    def after_step(self, metrics: dict[str, float]) -> None:
        """Record step ``self.step + 1``; raise on a non-finite metric or a stop request."""
        self.in_step = False
        self.step += 1
        values = {name: float(metrics[name]) for name in outputs.METRIC_NAMES}
        epoch = (self.step - 1) // self.steps_per_epoch + 1
        self.metrics_log.append(epoch, self.step, values)
        self.last_metrics = values
        self.progress.set_postfix(
            d_loss=f"{values['d_loss']:.3f}",
            g_loss=f"{values['g_loss']:.3f}",
            d_real=f"{values['d_real']:.2f}",
            d_fake=f"{values['d_fake']:.2f}",
            refresh=False,
        )
        self.progress.update(1)

        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            self.metrics_log.flush()
            checkpoint_note = (
                f"The last good checkpoint, {self.out / CHECKPOINT_NAME} from step "
                f"{self.last_checkpoint_step}, is kept."
                if self.last_checkpoint_step is not None
                else "No checkpoint was saved yet."
            )
            raise NonFiniteLossError(
                f"Training stopped at epoch {epoch}, step {self.step}: "
                + ", ".join(f"{name} = {values[name]}" for name in bad)
                + f". {checkpoint_note} Try a lower --learning-rate or another --seed."
            )
        if self.step_hook is not None:
            self.step_hook(epoch, self.step)
        if self.stop.requested:
            raise KeyboardInterrupt

    def end_epoch(self) -> None:
        """Write the grid, GIF, plot and checkpoint of the epoch just completed."""
        epoch = self.epoch
        images = self.generate(self.grid_noise)
        samples = self.out / SAMPLES_DIR
        outputs.save_grid(
            images,
            samples / f"epoch_{epoch:03d}.png",
            self.config.grid_rows,
            self.config.grid_cols,
        )
        frames = [samples / f"epoch_{index:03d}.png" for index in range(1, epoch + 1)]
        outputs.save_gif([frame for frame in frames if frame.exists()], self.out / GIF_NAME)
        self.save_checkpoint()
        self.progress.set_description(self._description(), refresh=False)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint.npz`` and ``metrics.png`` for the current step."""
        self.metrics_log.flush()
        rows = outputs.read_metrics(self.out / METRICS_CSV_NAME)
        if rows:
            outputs.plot_metrics(rows, self.out / METRICS_PLOT_NAME)
        weights, training_state = self.snapshot()
        metadata = {
            **self.metadata,
            "epoch": self.epoch,
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs_requested": self.config.epochs,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        path = checkpoints.save_checkpoint(
            self.out / CHECKPOINT_NAME, weights, training_state, metadata
        )
        self.last_checkpoint_step = self.step
        return path

    def close(self) -> None:
        self.progress.close()
        self.metrics_log.close()
