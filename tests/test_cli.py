"""The ``mnistgen train`` and ``sample`` commands: options, messages, exit codes, Ctrl-C."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_ROOT, SHARED_MNIST_DIR
from PIL import Image

from keras_impl import checkpoints, outputs
from keras_impl.cli import main
from keras_impl.schedule import TrainConfig
from keras_impl.training import train


def require_mnist() -> Path:
    if not (SHARED_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST test split not found at {SHARED_MNIST_DIR}")
    return SHARED_MNIST_DIR


def small_run_args(out: Path, *extra: str) -> list[str]:
    return [
        "train", "--data", str(require_mnist()), "--backend", "scratch", "--limit", "64",
        "--batch-size", "16", "--epochs", "1", "--seed", "3", "--out", str(out), "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a 1-epoch scratch run made through the command line."""
    out = tmp_path_factory.mktemp("cli-run")
    assert main(small_run_args(out)) == 0
    return out / "checkpoint.npz"


# ---------------------------------------------------------------------- #
# Option validation
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--epochs", "0"], "--epochs: expected a positive integer, received 0"),
        (["train", "--batch-size", "-4"], "--batch-size: expected a positive integer"),
        (["train", "--limit", "ten"], "--limit: expected a positive integer, received 'ten'"),
        (["train", "--seed", "-1"], "--seed: expected a non-negative integer"),
        (["train", "--learning-rate", "0"], "--learning-rate: expected a positive number"),
        (["train", "--learning-rate", "nan"], "--learning-rate: expected a positive number"),
        (["train", "--backend", "torch"], "--backend: invalid choice: 'torch'"),
        (["train", "--preset", "big"], "--preset: invalid choice: 'big'"),
        (["train", "--loss", "wasserstein"], "--loss: invalid choice"),
        (["train", "--data", "/no/such/mnist"], "/no/such/mnist: no such file or directory"),
        (["sample"], "the following arguments are required: --checkpoint"),
        (["sample", "--checkpoint", "/no/such.npz"], "/no/such.npz: no such file or directory"),
    ],
)
def test_invalid_option_rejected(argv: list[str], expected: str, capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)

    assert raised.value.code == 2
    assert expected in capsys.readouterr().err


def test_sample_out_must_be_png(trained_checkpoint: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(trained_checkpoint), "--out", "grid.jpg"])

    assert "grid.jpg: the output file must end in .png" in capsys.readouterr().err


# ---------------------------------------------------------------------- #
# train
# ---------------------------------------------------------------------- #
def copy_run(checkpoint: Path, tmp_path: Path) -> Path:
    shutil.copytree(checkpoint.parent, tmp_path / "run")
    return tmp_path / "run"


def test_train_prints_outputs(trained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = copy_run(trained_checkpoint, tmp_path)

    status = main(small_run_args(out, "--epochs", "2", "--resume"))

    captured = capsys.readouterr()
    assert status == 0
    assert "Trained 2 epochs (8 steps) with the scratch backend." in captured.out
    assert "for 4 steps" in captured.out
    assert f"Outputs in {out}:" in captured.out
    assert "samples/epoch_002.png" in captured.out
    assert "mnistgen sample --checkpoint" in captured.out
    assert "d_loss=" not in captured.err  # --quiet: no progress bar
    assert checkpoints.load_checkpoint(out / "checkpoint.npz").metadata["step"] == 8


def test_train_progress_bar(trained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = copy_run(trained_checkpoint, tmp_path)
    argv = [arg for arg in small_run_args(out, "--epochs", "2", "--resume") if arg != "--quiet"]

    assert main(argv) == 0

    progress = capsys.readouterr().err
    assert "scratch epoch 2/2" in progress
    assert "8/8" in progress
    assert "<" in progress  # elapsed<remaining: the ETA
    for name in ("d_loss=", "g_loss=", "d_real=", "d_fake="):
        assert name in progress


def test_train_refuses_existing_run(trained_checkpoint: Path, capsys) -> None:
    status = main(small_run_args(trained_checkpoint.parent))

    assert status == 2
    assert "already contains a checkpoint" in capsys.readouterr().err


def test_train_resume_without_checkpoint(tmp_path: Path, capsys) -> None:
    status = main(small_run_args(tmp_path / "new", "--resume"))

    assert status == 1
    assert "--resume: no checkpoint at" in capsys.readouterr().err


def test_train_bad_data_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(6)))  # 3 dims need 12 bytes

    status = main(["train", "--data", str(bad), "--out", str(tmp_path / "run"), "--quiet"])

    error = capsys.readouterr().err
    assert status == 1
    assert str(bad) in error
    assert "truncated header" in error


# ---------------------------------------------------------------------- #
# sample
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("backend", [None, "scratch", "keras"])
def test_sample_writes_grid(trained_checkpoint: Path, tmp_path: Path, backend, capsys) -> None:
    target = tmp_path / "digits.png"
    argv = ["sample", "--checkpoint", str(trained_checkpoint), "--out", str(target),
            "--rows", "2", "--cols", "5", "--seed", "7"]
    if backend is not None:
        argv += ["--backend", backend]

    status = main(argv)

    assert status == 0
    assert f"Saved 2 x 5 digits to {target}" in capsys.readouterr().out
    with Image.open(target) as grid:
        pad = outputs.GRID_PADDING
        expected = ((5 * (28 + pad) + pad) * outputs.GRID_ZOOM, (2 * (28 + pad) + pad) * 2)
        assert grid.size == expected


def test_sample_seed_changes_digits(trained_checkpoint: Path, tmp_path: Path) -> None:
    pictures = []
    for seed in ("1", "1", "2"):
        target = tmp_path / f"seed-{seed}-{len(pictures)}.png"
        main(["sample", "--checkpoint", str(trained_checkpoint), "--out", str(target),
              "--rows", "2", "--cols", "2", "--seed", seed])
        pictures.append(np.asarray(Image.open(target)))

    np.testing.assert_array_equal(pictures[0], pictures[1])
    assert not np.array_equal(pictures[0], pictures[2])


def test_sample_corrupt_checkpoint(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")

    status = main(["sample", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png")])

    assert status == 1
    assert str(bad) in capsys.readouterr().err


def test_scratch_path_imports_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "from keras_impl import cli, sampling, scratch_backend, training\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in "
        "('tensorflow', 'keras')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------- #
# Ctrl-C on a real process
# ---------------------------------------------------------------------- #
def test_sigint_saves_and_resume_matches(tmp_path: Path) -> None:
    data = require_mnist()
    out = tmp_path / "interrupted"
    # 3 steps per epoch, 2 epochs; Ctrl-C comes as soon as step 1 is recorded.
    argv = small_run_args(out, "--epochs", "2", "--limit", "48")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_impl.cli", *argv],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    metrics = out / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Run the same command with --resume" in stdout
    stopped_at = checkpoints.load_checkpoint(out / "checkpoint.npz").metadata["step"]
    assert 1 <= stopped_at < 6

    assert main([*argv, "--resume"]) == 0
    straight = TrainConfig(
        out=tmp_path / "straight", backend="scratch", data=data, limit=48, batch_size=16,
        epochs=2, seed=3, quiet=True,
    )
    train(straight)
    with np.load(straight.out / "checkpoint.npz") as expected, \
            np.load(out / "checkpoint.npz") as actual:
        arrays = [key for key in expected.files if key != "metadata"]
        assert sorted(arrays) == sorted(key for key in actual.files if key != "metadata")
        for key in arrays:
            assert np.array_equal(actual[key], expected[key]), f"{key} differs after resume"


def test_exercises_check_through_main(capsys) -> None:
    """``mnistgen exercises check`` is wired into the main parser and lists the manifest."""
    from keras_impl.cli import main

    status = main(["exercises", "check"])
    output = capsys.readouterr().out
    assert status == 0
    assert "dense_layer" in output
