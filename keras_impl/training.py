"""Run ``mnistgen train``: load data, build or resume a backend, train, report how it ended.

``train(config)`` is the whole application without the command line:

1. Load MNIST (``keras_impl.data``) and fix the schedule (``keras_impl.schedule``).
2. Start fresh (saving a step-0 checkpoint, so a good checkpoint always
   exists) or, with ``resume``, load ``checkpoint.npz`` after checking that
   its settings match the run's.
3. Train with the chosen backend; a ``RunRecorder`` writes the outputs.
4. Return a ``TrainResult``: finished, interrupted by Ctrl-C (checkpoint
   saved at the last complete step), stopped by a non-finite loss (the last
   good checkpoint kept), or already up to date.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from pathlib import Path
from typing import Any

from keras_impl import checkpoints
from keras_impl.data import load_training_images
from keras_impl.recorder import NonFiniteLossError, RunRecorder, StepHook, StopRequest
from keras_impl.schedule import (
    CHECKPOINT_NAME,
    RESUME_KEYS,
    TrainConfig,
    TrainResult,
)

logger = logging.getLogger(__name__)


def _package_version() -> str:
    try:
        return importlib.metadata.version("mnistgen")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_metadata(config: TrainConfig, n_images: int, source: str) -> dict[str, Any]:
    """Return the settings saved in every checkpoint of this run."""
    return {
        "backend": config.backend,
        "preset": config.preset,
        "noise_dim": config.noise_dim,
        "dtype": config.dtype,
        "generator_loss": config.generator_loss,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "limit": config.limit,
        "learning_rate": config.learning_rate,
        "n_images": n_images,
        "data_source": source,
        "mnistgen_version": _package_version(),
    }


def check_resume(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raise ValueError listing every setting that differs from the checkpoint's."""
    differences = [
        f"{key} is {current.get(key)!r} but the checkpoint has {saved.get(key)!r}"
        for key in RESUME_KEYS
        if saved.get(key) != current.get(key)
    ]
    if differences:
        raise ValueError(
            f"Cannot resume from {path}: " + "; ".join(differences) + ". Resume with the "
            "checkpoint's settings, or train from scratch with another --out directory."
        )


def _make_backend(config: TrainConfig, checkpoint: checkpoints.Checkpoint | None) -> Any:
    if config.backend == "keras":
        from keras_impl.keras_backend import KerasBackend

        return KerasBackend(config, checkpoint)
    from keras_impl.scratch_backend import ScratchBackend

    return ScratchBackend(config, checkpoint)


def train(config: TrainConfig, step_hook: StepHook | None = None) -> TrainResult:
    """Train a GAN with the settings in ``config`` and return the outcome.

    ``step_hook(epoch, step)`` runs after every recorded step; raising
    KeyboardInterrupt there acts like Ctrl-C at that step (tests use this).

    Raises:
        ValueError: on an invalid setting or a resume whose settings differ.
        FileExistsError: if ``config.out`` already has a checkpoint and
            ``resume`` is False.
        FileNotFoundError: if ``resume`` is True and there is no checkpoint,
            or the data cannot be found.
    """
    config.validate()
    out = Path(config.out)
    checkpoint_path = out / CHECKPOINT_NAME
    if config.resume and not checkpoint_path.exists():
        raise FileNotFoundError(
            f"--resume: no checkpoint at {checkpoint_path}; run without --resume to start"
        )
    if not config.resume and checkpoint_path.exists():
        raise FileExistsError(
            f"{out} already contains a checkpoint ({checkpoint_path.name}); pass --resume "
            "to continue that run, or choose another --out directory"
        )

    images = load_training_images(config.data, limit=config.limit, dtype=config.dtype)
    n_images = images.x.shape[0]
    steps_per_epoch = n_images // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the {n_images} training images; "
            "lower --batch-size or raise --limit"
        )
    metadata = run_metadata(config, n_images, images.source)

    checkpoint = None
    start_step = 0
    if config.resume:
        checkpoint = checkpoints.load_checkpoint(checkpoint_path)
        check_resume(checkpoint.metadata, metadata, checkpoint_path)
        if not isinstance(checkpoint.metadata.get("step"), int):
            raise checkpoints.CheckpointError(
                f"{checkpoint_path}: metadata has no step count; it is not a training checkpoint"
            )
        start_step = checkpoint.metadata["step"]
    total_steps = steps_per_epoch * config.epochs
    if start_step >= total_steps:
        message = (
            f"{checkpoint_path} has already trained {start_step // steps_per_epoch} epochs "
            f"({start_step} steps); raise --epochs to train longer."
        )
        return TrainResult(
            "up-to-date", start_step // steps_per_epoch, start_step, steps_per_epoch, 0.0, out,
            message,
        )

    backend = _make_backend(config, checkpoint)
    logger.info(
        "Training the %s backend, preset %s, from step %d to %d (%d steps per epoch)",
        config.backend, config.preset, start_step, total_steps, steps_per_epoch,
    )
    started = time.perf_counter()
    with StopRequest() as stop:
        recorder = RunRecorder(
            config, metadata, steps_per_epoch, start_step, backend.generate, backend.snapshot,
            stop, step_hook,
        )
        try:
            if checkpoint is None:
                recorder.save_checkpoint()
            else:
                recorder.last_checkpoint_step = start_step
            backend.run(recorder, images.x)
            status = "finished"
            plural = "s" if config.epochs != 1 else ""
            message = (
                f"Trained {config.epochs} epoch{plural} ({recorder.step} steps) with the "
                f"{config.backend} backend."
            )
        except KeyboardInterrupt:
            if recorder.in_step:
                # A second Ctrl-C inside a step: the weights may be half updated.
                status = "killed"
                message = (
                    f"Stopped inside step {recorder.step + 1} without saving; the last "
                    f"checkpoint is from step {recorder.last_checkpoint_step}."
                )
            else:
                if recorder.step > start_step and recorder.step % steps_per_epoch == 0:
                    # Stopped right after an epoch's last step, before its outputs.
                    recorder.end_epoch()
                else:
                    recorder.save_checkpoint()
                status = "interrupted"
                message = (
                    f"Interrupted after step {recorder.step} "
                    f"(epoch {(recorder.step - 1) // steps_per_epoch + 1}); "
                    f"checkpoint saved to {checkpoint_path}. Run the same command with "
                    "--resume to continue."
                )
        except NonFiniteLossError as error:
            status = "non-finite"
            message = str(error)
        finally:
            recorder.close()
    seconds = time.perf_counter() - started
    logger.info("Training ended (%s) after %.1f s", status, seconds)
    return TrainResult(
        status, recorder.epoch, recorder.step, steps_per_epoch, seconds, out, message,
        dict(recorder.last_metrics), start_step,
    )
