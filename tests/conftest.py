"""Shared pytest set-up: quiet TensorFlow, deterministic Keras, the MNIST test split."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The benchmarks/ folder is not an installed package. Appending the root (not
# prepending it) lets tests import it while a student's scratch/ copy, put
# first on PYTHONPATH by the exercise grader, still wins over this one.
if str(PROJECT_ROOT) not in sys.path:
    sys.path.append(str(PROJECT_ROOT))
# MNISTGEN_MNIST_DIR points the tests at another copy of the IDX files, e.g.
# from a clone outside the folder that contains ``shared/``.
SHARED_MNIST_DIR = Path(
    os.environ.get("MNISTGEN_MNIST_DIR", PROJECT_ROOT.parent / "shared" / "data" / "mnist")
)


@pytest.fixture
def mnist_test_dir() -> Path:
    """The official MNIST test split in ``../shared/data/mnist``; skips when absent."""
    images = SHARED_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip(f"MNIST test split not found at {SHARED_MNIST_DIR} (expected {images.name})")
    return SHARED_MNIST_DIR


@pytest.fixture(params=["float64", "float32"])
def dtype(request: pytest.FixtureRequest) -> str:
    """Run a test once in float64 and once in float32."""
    return request.param


# Test files that compare scratch code with Keras on shared weights. Their
# tests carry the ``equivalence`` marker, so `pytest -m equivalence` runs just them.
EQUIVALENCE_FILES = {
    "test_activations.py",
    "test_batch_normalization.py",
    "test_conv2d.py",
    "test_conv2d_transpose.py",
    "test_dense.py",
    "test_dropout.py",
    "test_reshaping.py",
    "test_weights.py",
    "test_losses.py",
    "test_optimizers.py",
    "test_models.py",
    "test_gan_step.py",
    "test_compare.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in EQUIVALENCE_FILES:
            item.add_marker(pytest.mark.equivalence)
