"""Training runs on real MNIST with both backends: outputs, resume, Ctrl-C, non-finite losses."""

from __future__ import annotations

import csv
import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MNIST_DIR
from helpers import assert_close
from PIL import Image

from keras_impl import checkpoints, outputs
from keras_impl.sampling import generate_from_checkpoint, sample_noise
from keras_impl.schedule import TrainConfig, epoch_batches, fixed_noise, step_noise
from keras_impl.training import train

BACKENDS = ("scratch", "keras")


def require_mnist() -> Path:
    if not (SHARED_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST test split not found at {SHARED_MNIST_DIR}")
    return SHARED_MNIST_DIR


def small_config(out: Path, backend: str, **overrides: object) -> TrainConfig:
    """4 steps per epoch of 16 images, 2 epochs: the size of the resume tests."""
    settings = dict(
        out=out, backend=backend, data=require_mnist(), limit=64, batch_size=16, epochs=2,
        seed=3, quiet=True, grid_rows=2, grid_cols=3,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def checkpoint_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files if key != "metadata"}


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


# ---------------------------------------------------------------------- #
# Real-data smoke runs, one per backend (shared by several tests)
# ---------------------------------------------------------------------- #
@pytest.fixture(scope="module", params=BACKENDS)
def smoke_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Train 2 epochs of 8 steps (256 images, batch 32) on the MNIST test split."""
    backend = request.param
    config = TrainConfig(
        out=tmp_path_factory.mktemp(f"smoke-{backend}"), backend=backend,
        data=require_mnist(), limit=256, batch_size=32, epochs=2, seed=0, quiet=True,
    )
    return config, train(config)


def test_smoke_run_finishes_finite(smoke_run) -> None:
    config, result = smoke_run
    rows = outputs.read_metrics(config.out / "metrics.csv")

    assert result.status == "finished", result.message
    assert result.step == 16
    assert [row["step"] for row in rows] == list(range(1, 17))
    for row in rows:
        for name in outputs.METRIC_NAMES:
            assert math.isfinite(row[name]), f"step {row['step']}: {name} = {row[name]}"
        assert 0.0 <= row["d_real"] <= 1.0
        assert 0.0 <= row["d_fake"] <= 1.0


def test_smoke_run_d_loss_decreases(smoke_run) -> None:
    # D starts near 2 log 2 (it cannot tell real from fake) and quickly learns to.
    config, _ = smoke_run
    d_loss = [row["d_loss"] for row in outputs.read_metrics(config.out / "metrics.csv")]

    first, late = np.mean(d_loss[:3]), np.mean(d_loss[8:])

    assert late < first, f"mean D loss of steps 1-3 {first:.3f}, of steps 9-16 {late:.3f}"


def test_smoke_run_outputs_readable(smoke_run) -> None:
    config, _ = smoke_run
    out = config.out

    for epoch in (1, 2):
        with Image.open(out / "samples" / f"epoch_{epoch:03d}.png") as grid:
            grid.load()
            assert grid.format == "PNG"
            cell = (28 + outputs.GRID_PADDING) * outputs.GRID_ZOOM
            assert grid.size[0] >= 8 * cell
    with Image.open(out / "progress.gif") as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 2
    with Image.open(out / "metrics.png") as plot:
        plot.load()
        assert plot.format == "PNG"
    header, *body = csv_rows(out / "metrics.csv")
    assert tuple(header) == outputs.CSV_COLUMNS
    assert len(body) == 16
    loaded = checkpoints.load_checkpoint(out / "checkpoint.npz")
    assert loaded.metadata["step"] == 16
    assert loaded.metadata["epoch"] == 2
    assert loaded.metadata["backend"] == config.backend
    assert loaded.metadata["n_images"] == 256


def test_smoke_run_grid_changes(smoke_run) -> None:
    config, _ = smoke_run
    first = np.asarray(Image.open(config.out / "samples" / "epoch_001.png"))
    second = np.asarray(Image.open(config.out / "samples" / "epoch_002.png"))

    assert first.shape == second.shape
    assert np.abs(first.astype(int) - second.astype(int)).max() > 0


@pytest.mark.parametrize("sampler", BACKENDS)
def test_checkpoint_sampled_by_either_backend(smoke_run, sampler: str) -> None:
    config, _ = smoke_run
    loaded = checkpoints.load_checkpoint(config.out / "checkpoint.npz")
    z = sample_noise(1, 6, config.noise_dim, config.dtype)

    own = generate_from_checkpoint(loaded, z)
    other = generate_from_checkpoint(loaded, z, backend=sampler)

    assert own.shape == (6, 28, 28, 1)
    assert np.abs(own).max() <= 1.0
    assert_close(f"G(z) of a {config.backend} checkpoint run by {sampler}", other, own)


# ---------------------------------------------------------------------- #
# Interrupt and resume
# ---------------------------------------------------------------------- #
def interrupt_at(stop_step: int):
    def hook(epoch: int, step: int) -> None:
        if step == stop_step:
            raise KeyboardInterrupt

    return hook


@pytest.fixture(scope="module")
def scratch_straight_run(tmp_path_factory: pytest.TempPathFactory):
    """The uninterrupted scratch run that the resumed runs must reproduce."""
    return train(small_config(tmp_path_factory.mktemp("straight"), "scratch"))


@pytest.mark.parametrize("stop_step", [3, 4])
def test_scratch_resume_bitwise(tmp_path: Path, scratch_straight_run, stop_step: int) -> None:
    straight = scratch_straight_run
    config = small_config(tmp_path / "resumed", "scratch")

    interrupted = train(config, step_hook=interrupt_at(stop_step))
    saved = checkpoints.load_checkpoint(config.out / "checkpoint.npz")
    resumed = train(dataclasses.replace(config, resume=True))

    assert straight.status == "finished"
    assert interrupted.status == "interrupted", interrupted.message
    assert saved.metadata["step"] == stop_step
    assert resumed.status == "finished"
    expected = checkpoint_arrays(straight.out / "checkpoint.npz")
    actual = checkpoint_arrays(config.out / "checkpoint.npz")
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert np.array_equal(actual[key], value), f"{key} differs after resume"
    assert csv_rows(config.out / "metrics.csv") == csv_rows(straight.out / "metrics.csv")
    with Image.open(config.out / "progress.gif") as gif:
        assert gif.n_frames == 2


def test_scratch_resume_bitwise_with_dropout(tmp_path: Path) -> None:
    # tf-tutorial's discriminator has Dropout, whose masks come from the layers'
    # random generators: the checkpoint must restore their states too.
    settings = dict(preset="tf-tutorial", limit=16, batch_size=8)
    straight = train(small_config(tmp_path / "straight", "scratch", **settings))
    config = small_config(tmp_path / "resumed", "scratch", **settings)

    train(config, step_hook=interrupt_at(1))
    train(dataclasses.replace(config, resume=True))

    expected = checkpoint_arrays(straight.out / "checkpoint.npz")
    actual = checkpoint_arrays(config.out / "checkpoint.npz")
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert np.array_equal(actual[key], value), f"{key} differs after resume"


def test_keras_resume_continues(tmp_path: Path) -> None:
    # Keras resume restores weights, optimiser slots and the schedule; equality
    # is checked to the float32 tolerance, not bitwise.
    straight = train(small_config(tmp_path / "straight", "keras"))
    config = small_config(tmp_path / "resumed", "keras")

    interrupted = train(config, step_hook=interrupt_at(3))
    resumed = train(dataclasses.replace(config, resume=True))

    assert interrupted.status == "interrupted", interrupted.message
    assert resumed.status == "finished"
    steps = [row["step"] for row in outputs.read_metrics(config.out / "metrics.csv")]
    assert steps == list(range(1, 9))
    expected = checkpoints.load_checkpoint(straight.out / "checkpoint.npz")
    actual = checkpoints.load_checkpoint(config.out / "checkpoint.npz")
    for network in checkpoints.NETWORKS:
        for name, value in expected.weights[network].items():
            assert_close(f"{network}/{name}", actual.weights[network][name], value)
    for group in ("d_optimizer", "g_optimizer"):
        saved = actual.training_state["keras"][group]
        iterations = [value for path, value in saved.items() if path.endswith("/iteration")]
        assert iterations == [8], f"{group} iteration counter {iterations}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_run_keeps_dtype(tmp_path: Path, backend: str) -> None:
    config = small_config(tmp_path / "run", backend, dtype="float64", limit=32, epochs=1)

    result = train(config)

    assert result.status == "finished", result.message
    saved = checkpoints.load_checkpoint(config.out / "checkpoint.npz")
    for network in checkpoints.NETWORKS:
        for name, value in saved.weights[network].items():
            assert value.dtype == np.float64, f"{network}/{name} is {value.dtype}"


def test_stop_inside_step_keeps_checkpoint(tmp_path: Path, monkeypatch) -> None:
    from scratch.gan import GAN

    config = small_config(tmp_path / "run", "scratch")
    original = GAN.train_step
    calls = []

    def train_step_then_interrupt(self, x_real, z=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a second Ctrl-C inside the step would
        return original(self, x_real, z)

    monkeypatch.setattr(GAN, "train_step", train_step_then_interrupt)
    result = train(config)

    assert result.status == "killed"
    assert "without saving" in result.message
    assert checkpoints.load_checkpoint(config.out / "checkpoint.npz").metadata["step"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_loss_keeps_last_checkpoint(
    one_epoch_run: TrainConfig, tmp_path: Path, backend: str
) -> None:
    if backend == "scratch":
        config = copy_run(one_epoch_run, tmp_path)
    else:
        config = small_config(tmp_path / "run", backend, epochs=1)
        assert train(config).status == "finished"
    good = (config.out / "checkpoint.npz").read_bytes()

    # An absurd learning rate makes the weights overflow within a few steps.
    diverging = dataclasses.replace(config, resume=True, epochs=2, learning_rate=1e30)
    with np.errstate(all="ignore"):
        result = train(diverging)

    assert result.status == "non-finite", result.message
    assert "The last good checkpoint" in result.message
    assert "from step 4" in result.message
    assert (config.out / "checkpoint.npz").read_bytes() == good
    last = outputs.read_metrics(config.out / "metrics.csv")[-1]
    assert not all(math.isfinite(last[name]) for name in outputs.METRIC_NAMES)


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    """A finished 1-epoch scratch run; tests work on copies of its directory."""
    config = small_config(tmp_path_factory.mktemp("one-epoch") / "run", "scratch", epochs=1)
    assert train(config).status == "finished"
    return config


def copy_run(config: TrainConfig, tmp_path: Path) -> TrainConfig:
    shutil.copytree(config.out, tmp_path / "run")
    return dataclasses.replace(config, out=tmp_path / "run")


def test_resume_rejects_other_settings(one_epoch_run: TrainConfig, tmp_path: Path) -> None:
    config = copy_run(one_epoch_run, tmp_path)

    changed = dataclasses.replace(config, resume=True, batch_size=8, seed=4)
    with pytest.raises(ValueError, match="batch_size is 8 but the checkpoint has 16") as raised:
        train(changed)

    assert "seed is 4 but the checkpoint has 3" in str(raised.value)


def test_resume_other_backend_rejected(one_epoch_run: TrainConfig, tmp_path: Path) -> None:
    config = copy_run(one_epoch_run, tmp_path)

    with pytest.raises(ValueError, match="backend is 'keras' but the checkpoint has 'scratch'"):
        train(dataclasses.replace(config, resume=True, backend="keras"))


def test_resume_already_finished(one_epoch_run: TrainConfig, tmp_path: Path) -> None:
    config = copy_run(one_epoch_run, tmp_path)

    result = train(dataclasses.replace(config, resume=True))

    assert result.status == "up-to-date"
    assert "raise --epochs" in result.message


def test_existing_checkpoint_needs_resume(one_epoch_run: TrainConfig, tmp_path: Path) -> None:
    config = copy_run(one_epoch_run, tmp_path)

    with pytest.raises(FileExistsError, match="pass --resume"):
        train(config)


def test_resume_without_checkpoint(tmp_path: Path) -> None:
    config = small_config(tmp_path / "run", "scratch", resume=True)

    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        train(config)


def test_batch_larger_than_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size 128 is larger than the 64 training images"):
        train(small_config(tmp_path / "run", "scratch", batch_size=128))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"backend": "torch"}, "backend must be one of"),
        ({"preset": "resnet"}, "preset must be one of"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
        ({"dtype": "float16"}, "dtype must be one of"),
    ],
)
def test_config_validation(tmp_path: Path, overrides: dict, expected: str) -> None:
    config = TrainConfig(out=tmp_path, **overrides)

    with pytest.raises(ValueError, match=expected):
        config.validate()


# ---------------------------------------------------------------------- #
# Schedule and output helpers
# ---------------------------------------------------------------------- #
def test_epoch_batches_resume_slice() -> None:
    x = np.arange(40, dtype=np.float32).reshape(40, 1, 1, 1)
    config = TrainConfig(batch_size=8, seed=5, noise_dim=3)

    x_full, z_full = epoch_batches(x, config, epoch=2)
    x_tail, z_tail = epoch_batches(x, config, epoch=2, start_batch=3)

    assert x_full.shape == (40, 1, 1, 1)
    np.testing.assert_array_equal(np.sort(x_full.ravel()), x.ravel())
    np.testing.assert_array_equal(x_tail, x_full[24:])
    np.testing.assert_array_equal(z_tail, z_full[24:])
    np.testing.assert_array_equal(z_full[:8], step_noise(5, 11, 8, 3, "float32"))


def test_epoch_orders_differ() -> None:
    x = np.arange(30, dtype=np.float32).reshape(30, 1, 1, 1)
    config = TrainConfig(batch_size=10, seed=0)

    first, _ = epoch_batches(x, config, epoch=0)
    second, _ = epoch_batches(x, config, epoch=1)

    assert not np.array_equal(first, second)


def test_fixed_noise_depends_on_seed_only() -> None:
    np.testing.assert_array_equal(fixed_noise(1, 4, 5, "float64"), fixed_noise(1, 4, 5, "float64"))
    assert not np.array_equal(fixed_noise(1, 4, 5, "float64"), fixed_noise(2, 4, 5, "float64"))


def test_image_grid_layout() -> None:
    images = -np.ones((5, 28, 28, 1))
    images[4] = 1.0  # all ink

    grid = outputs.image_grid(images, rows=2, cols=3)

    pad = outputs.GRID_PADDING
    assert grid.shape == (2 * (28 + pad) + pad, 3 * (28 + pad) + pad)
    assert (grid[pad : pad + 28, pad : pad + 28] == 255).all()  # background is white
    top, left = pad + 28 + pad, pad + 28 + pad
    assert (grid[top : top + 28, left : left + 28] == 0).all()  # ink is black
    assert (grid[top:, 2 * (28 + pad) + pad :] == 255).all()  # unused cell


def test_image_grid_too_many_images() -> None:
    with pytest.raises(ValueError, match="5 images do not fit in 2 x 2"):
        outputs.image_grid(np.zeros((5, 28, 28, 1)), 2, 2)


def test_metrics_log_truncate(tmp_path: Path) -> None:
    log = outputs.MetricsLog(tmp_path / "metrics.csv")
    for step in range(1, 6):
        log.append(1, step, {name: step / 10 for name in outputs.METRIC_NAMES})
    log.close()

    outputs.MetricsLog(tmp_path / "metrics.csv").truncate(3)

    rows = outputs.read_metrics(tmp_path / "metrics.csv")
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert rows[2]["g_loss"] == 0.3


def test_metrics_log_incomplete_last_row(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    log = outputs.MetricsLog(path)
    for step in (1, 2):
        log.append(1, step, {name: 0.5 for name in outputs.METRIC_NAMES})
    log.close()
    with path.open("a") as handle:
        handle.write("1,3,0.4")  # killed while writing step 3

    assert [row["step"] for row in outputs.read_metrics(path)] == [1, 2]

    with path.open("a") as handle:
        handle.write("\n1,4,0.1,0.2,0.3,0.4\n")
    with pytest.raises(ValueError, match="line 4 is not a metrics row"):
        outputs.read_metrics(path)


def test_moving_average_window() -> None:
    np.testing.assert_allclose(
        outputs.moving_average([1.0, 2.0, 3.0, 4.0], window=2), [1.0, 1.5, 2.5, 3.5]
    )
